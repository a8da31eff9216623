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

from annealscope.checkpoints import checkpoint_dir, complete_tag, mark_complete, prune, resumable_tag, start_fresh
from annealscope.data import REPLAY, SOURCE, plan_data
from annealscope.deepspeed_config import deepspeed_config, gradient_accumulation
from annealscope.flops import training_flops
from annealscope.io import atomic_path, write_json, write_jsonl
from annealscope.schedule import learning_rate
from annealscope.spec import TrainSpec
from annealscope.tokens import TokenArray


class DivergenceError(RuntimeError):
    """The loss became NaN, infinite, or exploded past `max_loss_ratio` times its first value."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one DeepSpeed rank of an annealscope training job")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)))
    args = parser.parse_args(argv)
    train(TrainSpec.load(args.spec))


def model_flops_per_token(parameters: int, config, seq_len: int) -> float:
    """Training FLOPs per token for MFU: 6·N plus attention's 12·L·d·seq (PaLM, Chowdhery et al. 2022)."""
    return 6.0 * parameters + 12.0 * config.num_hidden_layers * config.hidden_size * seq_len


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
    if spec.activation_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    parameters = sum(parameter.numel() for parameter in model.parameters())
    flops_per_token = model_flops_per_token(parameters, model.config, spec.seq_len)
    decay = [p for name, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for name, p in model.named_parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    def schedule(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(
            step, plan.steps, 1.0, spec.warmup_steps, spec.schedule, spec.cooldown_fraction))

    engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups,
                                           config=deepspeed_config(spec, world_size), lr_scheduler=schedule)
    accumulation = gradient_accumulation(spec, world_size)
    directory = checkpoint_dir(spec)
    state = _resume_or_start(engine, directory, spec, rank)
    dist.barrier()

    log_records: list[dict] = state["log"]
    progress = _progress(rank, plan.steps, state["step"], Path(spec.out_dir).parent.name)
    started = time.perf_counter()
    for step in range(state["step"], plan.steps):
        step_started = time.perf_counter()
        rows = plan.batch(step, rank, world_size)
        batch = torch.from_numpy(np.stack([arrays[kind].window(index, spec.seq_len) for kind, index in rows]))
        lr = engine.get_lr()[0]
        mean_loss = train_step(engine, batch.to(engine.device), accumulation).clone()
        dist.all_reduce(mean_loss)
        mean_loss = mean_loss.item() / world_size
        _check_divergence(mean_loss, step, log_records, spec, directory)
        seconds = time.perf_counter() - step_started
        step_rows = plan.order[step * spec.global_batch:(step + 1) * spec.global_batch, 0]
        tokens_per_s = spec.global_batch * spec.seq_len / seconds
        previous = log_records[-1] if log_records else {"tokens": 0, "source_tokens": 0, "replay_tokens": 0}
        log_records.append({
            "step": step, "lr": lr, "loss": mean_loss, "tokens": previous["tokens"] + spec.global_batch * spec.seq_len,
            "source_tokens": previous["source_tokens"] + int((step_rows == SOURCE).sum()) * spec.seq_len,
            "replay_tokens": previous["replay_tokens"] + int((step_rows == REPLAY).sum()) * spec.seq_len,
            "tokens_per_s": tokens_per_s,
            "mfu": tokens_per_s * flops_per_token / (spec.peak_flops * world_size) if spec.peak_flops else None})
        if progress is not None:
            progress.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
            progress.update()
        done = step + 1
        if spec.checkpoint_every and done % spec.checkpoint_every == 0 and done < plan.steps:
            _save(engine, directory, f"step{done}", done, log_records,
                  state["seconds"] + time.perf_counter() - started, rank)
    wall = state["seconds"] + time.perf_counter() - started
    if progress is not None:
        progress.close()

    engine.save_checkpoint(str(directory), tag="final", client_state={"step": plan.steps})
    dist.barrier()
    if rank == 0:
        _export(spec, directory, AutoModelForCausalLM, AutoTokenizer)
        if not spec.keep_checkpoints:
            shutil.rmtree(directory, ignore_errors=True)
        tokens_done = log_records[-1]["tokens"]
        write_jsonl(spec.log_path, log_records)
        write_json(spec.summary_path, {
            "steps": plan.steps, "world_size": world_size, "zero_stage": spec.zero_stage, "dtype": spec.dtype,
            "gradient_accumulation": accumulation, "resumed_from_step": state["step"] or None,
            "parameters": parameters, "seq_len": spec.seq_len, "global_batch": spec.global_batch,
            "source_tokens": plan.source_tokens, "replay_tokens": plan.replay_tokens,
            "unique_source_tokens": plan.unique_source_tokens, "source_tokens_available": int(source.tokens.size),
            "epochs": plan.epochs,
            "train_flops": training_flops(parameters, plan.source_tokens),
            "replay_flops": training_flops(parameters, plan.replay_tokens),
            "final_loss": log_records[-1]["loss"], "wall_seconds": wall, "tokens_per_s": tokens_done / wall,
            "mfu": tokens_done / wall * flops_per_token / (spec.peak_flops * world_size) if spec.peak_flops else None,
            "peak_flops": spec.peak_flops,
        })
        resumed = f", resumed at step {state['step']}" if state["step"] else ""
        print(f"trained {plan.steps} steps on {plan.source_tokens:,} source + {plan.replay_tokens:,} replay "
              f"tokens in {wall:.1f} s ({tokens_done / wall:,.0f} tokens/s{resumed}), final loss "
              f"{log_records[-1]['loss']:.3f} -> {spec.out_dir}", flush=True)
    dist.barrier()


def train_step(engine, batch: torch.Tensor, accumulation: int = 1) -> torch.Tensor:
    """One optimizer step of causal-LM loss on this rank's `batch`, in `accumulation` micro-batches;
    returns the rank's mean loss (detached, fp32)."""
    losses = []
    for micro_batch in batch.chunk(accumulation):
        loss = engine(input_ids=micro_batch, labels=micro_batch).loss
        engine.backward(loss)
        engine.step()
        losses.append(loss.detach().float())
    return torch.stack(losses).mean()


def _resume_or_start(engine, directory: Path, spec: TrainSpec, rank: int) -> dict:
    """Load the newest checkpoint written for this spec, if any; else start from step 0."""
    tag = resumable_tag(directory, spec)
    if tag is None:
        if rank == 0:
            start_fresh(directory, spec)
        return {"step": 0, "log": [], "seconds": 0.0}
    _, client_state = engine.load_checkpoint(str(directory), tag=tag)
    if rank == 0:
        print(f"resuming from {directory / tag} at step {client_state['step']}", flush=True)
    return {"step": client_state["step"], "log": client_state["log"], "seconds": client_state["seconds"]}


def _save(engine, directory: Path, tag: str, step: int, log_records: list[dict], seconds: float, rank: int) -> None:
    """Checkpoint on every rank, then keep only this tag (the previous one is dropped once this is whole)."""
    import torch.distributed as dist

    engine.save_checkpoint(str(directory), tag=tag, client_state={"step": step, "log": log_records,
                                                                   "seconds": seconds})
    dist.barrier()
    if rank == 0:
        mark_complete(directory, tag)
        prune(directory, keep=tag)


def _check_divergence(loss: float, step: int, log_records: list[dict], spec: TrainSpec, directory: Path) -> None:
    first = log_records[0]["loss"] if log_records else None
    exploded = first is not None and loss > spec.max_loss_ratio * first
    if math.isfinite(loss) and not exploded:
        return
    tag = complete_tag(directory)
    kept = (f"the last good checkpoint is {directory / tag}" if tag
            else "no checkpoint was written yet (set anneal.checkpoint_every)")
    why = (f"is {loss}" if not math.isfinite(loss)
           else f"{loss:.3f} exceeds {spec.max_loss_ratio} x the first ({first:.3f})")
    raise DivergenceError(f"training diverged at step {step}: the loss {why}; {kept}. Lower anneal.lr, "
                          "raise anneal.warmup_steps or check the data")


def _export(spec: TrainSpec, checkpoint_dir: Path, model_class, tokenizer_class) -> None:
    """Gather the fp32 master weights from the DeepSpeed checkpoint, save a Hugging Face model, and verify
    that it loads back with exactly those weights before it is renamed into place."""
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
        reloaded = dict(model_class.from_pretrained(tmp, dtype=torch.float32).named_parameters())
        differing = [name for name, tensor in state.items() if name in reloaded
                     and not torch.equal(reloaded[name].detach(), tensor.float())]
        if differing:
            raise RuntimeError(f"export of {spec.out_dir}: the saved model differs from the checkpoint in "
                               f"{differing[:3]}; the checkpoint is kept")


def _progress(rank: int, total: int, initial: int, name: str):
    if rank != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="step")


if __name__ == "__main__":
    main()
