"""Tokens/s of annealscope's DeepSpeed anneal step against a bare PyTorch loop, same model and data.

Both sides train the demo's Llama shape on the same batches for the same number of steps, in the same
process, alternating rounds so machine noise hits both; the best round of each is compared.
Goal: ratio >= 0.95.  Run: python benchmarks/anneal_throughput.py [--steps 40] [--rounds 3] [--dtype auto|bf16|fp32]
(auto, the default, is what anneal jobs choose: bf16 where the CPU computes it natively, else fp32.)
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from annealscope.anneal.deepspeed_config import deepspeed_config
from annealscope.anneal.rank import train_step
from annealscope.anneal.spec import TrainSpec
from annealscope.core.precision import DTYPES, resolve_precision
from annealscope.core.schedule import learning_rate

SHAPE = dict(vocab_size=4096, hidden_size=128, intermediate_size=352, num_layers=4, num_heads=4)


def build_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=SHAPE["vocab_size"], hidden_size=SHAPE["hidden_size"],
                         intermediate_size=SHAPE["intermediate_size"], num_hidden_layers=SHAPE["num_layers"],
                         num_attention_heads=SHAPE["num_heads"], num_key_value_heads=SHAPE["num_heads"],
                         max_position_embeddings=512, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def batches(count: int, batch: int, seq_len: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(0, SHAPE["vocab_size"], (batch, seq_len), generator=generator) for _ in range(count)]


def bare_loop(data: list[torch.Tensor], spec: TrainSpec) -> float:
    """The baseline: plain PyTorch AdamW, clipping and schedule; bf16 through autocast with fp32 weights."""
    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.95), weight_decay=spec.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate(step, len(data), 1.0, spec.warmup_steps, spec.schedule))
    started = time.perf_counter()
    for batch in data:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec.dtype == "bf16"):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec.gradient_clipping)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
    return sum(batch.numel() for batch in data) / (time.perf_counter() - started)


def deepspeed_loop(data: list[torch.Tensor], spec: TrainSpec) -> float:
    """annealscope's step: the same engine configuration and `train_step` the anneal jobs use."""
    import deepspeed

    model = build_model()
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=model.parameters(), config=deepspeed_config(spec, 1, model.config.hidden_size),
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate(step, len(data), 1.0, spec.warmup_steps, spec.schedule)))
    started = time.perf_counter()
    for batch in data:
        train_step(engine, batch)
    return sum(batch.numel() for batch in data) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", choices=DTYPES, default="auto")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo")
    precision = resolve_precision(args.dtype)
    print(f"precision: {precision.dtype} ({precision.reason}); torch CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}")
    spec = TrainSpec(init_model="", out_dir="", log_path="", summary_path="", source_tokens="", replay_tokens=None,
                     source_budget_tokens=0, replay_fraction=0.0, seed=0, seq_len=128, global_batch=16, lr=3e-3,
                     warmup_steps=5, schedule="linear_decay", weight_decay=0.1, gradient_clipping=1.0, zero_stage=1,
                     dtype=precision.dtype, ranks=1, threads=args.threads)
    data = batches(args.steps, spec.global_batch, spec.seq_len)
    bare_loop(data[:3], spec)
    bare, ours = [], []
    for _ in range(args.rounds):
        bare.append(bare_loop(data, spec))
        ours.append(deepspeed_loop(data, spec))
    print(f"bare PyTorch loop : {max(bare):10,.0f} tokens/s (rounds: {', '.join(f'{v:,.0f}' for v in bare)})")
    print(f"annealscope step  : {max(ours):10,.0f} tokens/s (rounds: {', '.join(f'{v:,.0f}' for v in ours)})")
    print(f"ratio annealscope / bare = {max(ours) / max(bare):.3f} (goal >= 0.95), {precision.dtype}, "
          f"{args.steps} steps x {spec.global_batch * spec.seq_len} tokens, {args.threads} threads")


if __name__ == "__main__":
    main()
