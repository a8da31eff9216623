"""Tokens/s and model FLOPs utilisation of annealscope's anneal step on one GPU, for a 1B-parameter Llama
at sequence length 2048 (the shape of TinyLlama-1.1B / Llama 3.2 1B class models), bf16, ZeRO-1 or ZeRO-3.

MFU = tokens/s x (6N + 12·L·d·seq) / peak, with the peak of the GPU in dense bf16 (default: H100/H200,
989 TFLOP/s). The model is built from a config (no download) and trained on random tokens with the same
DeepSpeed configuration and `train_step` the anneal jobs use, and optionally with the anneal's throughput knobs
(`anneal.liger_kernels`, `anneal.compile`). Goal: MFU >= 50% on an H200.
`--profile-steps N` then profiles N more steps and prints the operators that took the most GPU time.
Run (GPU only): python benchmarks/gpu_mfu.py [--zero-stage 1] [--micro-batch 8] [--steps 30] [--peak-flops 9.89e14]
    [--liger-kernels] [--compile] [--profile-steps 1]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from annealscope.anneal.deepspeed_config import deepspeed_config
from annealscope.anneal.rank import fuse_liger_kernels, train_step
from annealscope.anneal.spec import TrainSpec
from annealscope.core.flops import model_flops_per_token

SHAPE = dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
             num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per forward pass")
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="measured optimizer steps, after 5 warm-up steps")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--peak-flops", type=float, default=9.89e14)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=1)
    parser.add_argument("--liger-kernels", action="store_true", help="Liger's fused kernels (anneal.liger_kernels)")
    parser.add_argument("--compile", action="store_true", help="torch.compile through the engine (anneal.compile)")
    parser.add_argument("--profile-steps", type=int, default=0, help="steps to profile after the measured ones")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU; on CPU use benchmarks/anneal_throughput.py")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29534", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    import deepspeed
    from transformers import LlamaConfig, LlamaForCausalLM

    deepspeed.init_distributed(dist_backend="nccl")
    torch.manual_seed(0)
    config = LlamaConfig(**SHAPE, tie_word_embeddings=False, attn_implementation="sdpa")
    with torch.device("cuda"):  # built on the GPU: a CPU initialisation of 1.1B parameters takes longer than the steps
        model = LlamaForCausalLM(config)
    if args.liger_kernels:
        fuse_liger_kernels(model)
    if args.activation_checkpointing:
        model.gradient_checkpointing_enable()
    parameters = sum(parameter.numel() for parameter in model.parameters())
    global_batch = args.micro_batch * args.accumulation
    spec = TrainSpec(init_model="", out_dir="", log_path="", summary_path="", source_tokens="", replay_tokens=None,
                     source_budget_tokens=0, replay_fraction=0.0, seed=0, seq_len=args.seq_len,
                     global_batch=global_batch, lr=3e-4, warmup_steps=0, schedule="linear_decay", weight_decay=0.1,
                     gradient_clipping=1.0, zero_stage=args.zero_stage, dtype="bf16", ranks=1, threads=8,
                     micro_batch=args.micro_batch)
    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(),
                                           config=deepspeed_config(spec, 1, config.hidden_size))
    if args.compile:
        engine.compile()
    batch = torch.randint(0, SHAPE["vocab_size"], (global_batch, args.seq_len), device=engine.device)
    for _ in range(5):
        train_step(engine, batch, args.accumulation)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step(engine, batch, args.accumulation)
    loss.item()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens_per_s = args.steps * global_batch * args.seq_len / seconds
    flops_per_token = model_flops_per_token(parameters, config.num_hidden_layers, config.hidden_size, args.seq_len)
    mfu = tokens_per_s * flops_per_token / args.peak_flops
    knobs = "".join(f", {name}" for name, wanted in (("Liger kernels", args.liger_kernels),
                                                       ("torch.compile", args.compile)) if wanted)
    print(f"{torch.cuda.get_device_name()}: {parameters / 1e9:.2f}B-parameter Llama, ZeRO-{args.zero_stage}{knobs}, "
          f"seq {args.seq_len}, "
          f"micro-batch {args.micro_batch} x {args.accumulation}: {tokens_per_s:,.0f} tokens/s, "
          f"MFU {mfu:.1%} of {args.peak_flops:.3g} FLOP/s (goal >= 50%), "
          f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
    if args.profile_steps:
        try:
            print(profiled(engine, batch, args.accumulation, args.profile_steps))
        except RuntimeError as error:  # the measurement above stands without it
            print(f"the profile failed: {error}")


def profiled(engine, batch: torch.Tensor, accumulation: int, steps: int) -> str:
    """The operators of `steps` more optimizer steps that took the most GPU time, from PyTorch's profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
        for _ in range(steps):
            train_step(engine, batch, accumulation)
        torch.cuda.synchronize()
    return profiler.key_averages().table(sort_by="self_device_time_total", row_limit=20)


if __name__ == "__main__":
    main()
