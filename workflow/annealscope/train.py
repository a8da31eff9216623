"""The training loop run by every DeepSpeed rank: `python -m annealscope.train --spec SPEC.json`.

Reads top to bottom: spec, data plan, model, engine, loop, export.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from annealscope.data import REPLAY, SOURCE, plan_data
from annealscope.deepspeed_config import deepspeed_config
from annealscope.flops import training_flops
from annealscope.io import atomic_path, write_json, write_jsonl
from annealscope.schedule import learning_rate
from annealscope.spec import TrainSpec
from annealscope.tokens import TokenArray


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one DeepSpeed rank of an annealscope training job")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)))
    args = parser.parse_args(argv)
    train(TrainSpec.load(args.spec))


def train(spec: TrainSpec) -> None:
    import deepspeed
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(spec.threads)
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(spec.seed)

    source = TokenArray.open(spec.source_tokens)
    replay = TokenArray.open(spec.replay_tokens) if spec.replay_tokens else None
    plan = plan_data(spec.source_budget_tokens, spec.replay_fraction if replay else 0.0,
                     source.windows(spec.seq_len), replay.windows(spec.seq_len) if replay else 0,
                     spec.seq_len, spec.global_batch, spec.seed, spec.max_epochs)
    arrays = {SOURCE: source, REPLAY: replay}

    model = AutoModelForCausalLM.from_pretrained(spec.init_model, dtype=torch.float32)
    context = getattr(model.config, "max_position_embeddings", None)
    if context is not None and spec.seq_len > context:
        raise ValueError(f"anneal.seq_len {spec.seq_len} exceeds the model's max_position_embeddings {context}")
    parameters = sum(parameter.numel() for parameter in model.parameters())
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def schedule(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate(step, plan.steps, 1.0, spec.warmup_steps, spec.schedule))

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups,
                                           config=deepspeed_config(spec, world_size), lr_scheduler=schedule)

    log_records = []
    progress = _progress(rank, plan.steps, Path(spec.out_dir).parent.name)
    started = time.perf_counter()
    tokens_done = 0
    for step in range(plan.steps):
        step_started = time.perf_counter()
        rows = plan.batch(step, rank, world_size)
        batch = torch.from_numpy(np.stack([arrays[kind].window(index, spec.seq_len) for kind, index in rows]))
        batch = batch.to(engine.device)
        lr = engine.get_lr()[0]
        mean_loss = train_step(engine, batch).clone()
        dist.all_reduce(mean_loss)
        mean_loss = mean_loss.item() / world_size
        if not math.isfinite(mean_loss):
            raise DivergenceError(f"loss is {mean_loss} at step {step}; lower anneal.lr or check the data")
        tokens_done += spec.global_batch * spec.seq_len
        seconds = time.perf_counter() - step_started
        log_records.append({"step": step, "lr": lr, "loss": mean_loss, "tokens": tokens_done,
                            "tokens_per_s": spec.global_batch * spec.seq_len / seconds})
        if progress is not None:
            progress.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
            progress.update()
    wall = time.perf_counter() - started
    if progress is not None:
        progress.close()

    checkpoint_dir = Path(spec.out_dir).with_name(f".{Path(spec.out_dir).name}.deepspeed")
    engine.save_checkpoint(str(checkpoint_dir), tag="final")
    dist.barrier()
    if rank == 0:
        _export(spec, checkpoint_dir, AutoModelForCausalLM, AutoTokenizer)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        write_jsonl(spec.log_path, log_records)
        write_json(spec.summary_path, {
            "steps": plan.steps, "world_size": world_size, "zero_stage": spec.zero_stage, "dtype": spec.dtype,
            "parameters": parameters, "seq_len": spec.seq_len, "global_batch": spec.global_batch,
            "source_tokens": plan.source_tokens, "replay_tokens": plan.replay_tokens,
            "unique_source_tokens": plan.unique_source_tokens, "source_tokens_available": int(source.tokens.size),
            "epochs": plan.epochs,
            "train_flops": training_flops(parameters, plan.source_tokens),
            "replay_flops": training_flops(parameters, plan.replay_tokens),
            "final_loss": log_records[-1]["loss"], "wall_seconds": wall, "tokens_per_s": tokens_done / wall,
        })
        print(f"trained {plan.steps} steps on {plan.source_tokens:,} source + {plan.replay_tokens:,} replay "
              f"tokens in {wall:.1f} s ({tokens_done / wall:,.0f} tokens/s), final loss "
              f"{log_records[-1]['loss']:.3f} -> {spec.out_dir}", flush=True)
    dist.barrier()


def train_step(engine, batch: torch.Tensor) -> torch.Tensor:
    """One optimizer step of causal-LM loss on `batch`; returns this rank's loss (detached, fp32)."""
    loss = engine(input_ids=batch, labels=batch).loss
    engine.backward(loss)
    engine.step()
    return loss.detach().float()


def _export(spec: TrainSpec, checkpoint_dir: Path, model_class, tokenizer_class) -> None:
    """Gather the fp32 master weights from the DeepSpeed checkpoint and save a Hugging Face model."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag="final")
    model = model_class.from_pretrained(spec.init_model, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"export of {spec.out_dir}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    with atomic_path(spec.out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer_class.from_pretrained(spec.init_model).save_pretrained(tmp)


def _progress(rank: int, total: int, name: str):
    if rank != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=f"train {name}", unit="step")


if __name__ == "__main__":
    main()
