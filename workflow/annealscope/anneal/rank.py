"""The training loop run by every DeepSpeed rank: `python -m annealscope.anneal.rank --spec SPEC.json`.

Reads top to bottom: spec, training order, model, engine, loop, export.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from annealscope.anneal.checkpoints import (
    checkpoint_dir,
    complete_steps,
    complete_tag,
    mark_complete,
    pruned_steps,
    resumable_steps,
    start_fresh,
    tag_of,
)
from annealscope.anneal.deepspeed_config import deepspeed_config, gradient_accumulation
from annealscope.anneal.monitor import close_trackers, name_wandb_run, track
from annealscope.anneal.processes import exit_without_teardown
from annealscope.anneal.spec import TrainSpec
from annealscope.core.branches import Branch, branch_point
from annealscope.core.flops import model_flops_per_token, training_flops
from annealscope.core.integrity import record_export
from annealscope.core.io import atomic_path, write_json, write_jsonl
from annealscope.core.layout import STABLE_BRANCH
from annealscope.core.precision import Precision, export_precision, resolve_precision
from annealscope.core.sampling import REPLAY, SOURCE, stream_order, training_order
from annealscope.core.schedule import CONSTANT, learning_rate
from annealscope.core.tokens import TokenArray
from annealscope.core.versions import package_versions

TRAINING_PACKAGES = ("torch", "deepspeed", "transformers")  # recorded in every anneal's summary.json


class DivergenceError(RuntimeError):
    """The loss became NaN, infinite, or exploded past `max_loss_ratio` times its first value."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="one DeepSpeed rank of an annealscope training job")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--local_rank", type=int, default=int(os.environ.get("LOCAL_RANK", 0)))
    args = parser.parse_args(argv)
    train(TrainSpec.load(args.spec))


def train(spec: TrainSpec) -> None:
    """An anneal, or under a branched schedule a stable phase (`branch_budgets`) or a cooldown (`branch_from`)."""
    import deepspeed
    import torch.distributed as dist

    torch.set_num_threads(spec.threads)
    precision = resolve_precision(spec.dtype)
    spec = replace(spec, dtype=precision.dtype)
    deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(spec.seed)
    if rank == 0:
        print(f"precision: {precision.dtype} ({precision.reason})", flush=True)
        if precision.warning():
            print(precision.warning(), flush=True)
    job = _Job(spec, rank, world_size, precision)
    if spec.branch_budgets:
        _stable_phase(job)
    else:
        _anneal(job)
    close_trackers(job.engine)
    dist.barrier()


class _Job:
    """What every phase shares: the training order and arrays, the model, and the engine once it is built."""

    def __init__(self, spec: TrainSpec, rank: int, world_size: int, precision: Precision) -> None:
        self.spec, self.rank, self.world_size, self.precision = spec, rank, world_size, precision
        source = TokenArray.open(spec.source_tokens)
        replay = TokenArray.open(spec.replay_tokens) if spec.replay_tokens else None
        self.arrays = {SOURCE: source, REPLAY: replay}
        fraction = spec.replay_fraction if replay else 0.0
        windows = (source.windows(spec.seq_len), replay.windows(spec.seq_len) if replay else 0)
        self.branches = sorted({budget: self.branch(budget) for budget in spec.branch_budgets or []}.values(),
                               key=lambda branch: branch.step)
        if spec.branch_budgets or spec.branch_from:
            last = self.branches[-1] if spec.branch_budgets else self.branch(spec.source_budget_tokens)
            steps = last.step if spec.branch_budgets else last.total_steps
            self.data = stream_order(steps, fraction, *windows, spec.seq_len, spec.global_batch, spec.seed,
                                    spec.max_epochs)
        else:
            self.data = training_order(spec.source_budget_tokens, fraction, *windows, spec.seq_len, spec.global_batch,
                                  spec.seed, spec.max_epochs)
        self.directory = checkpoint_dir(spec)
        self.engine = None

    def branch(self, budget: int) -> Branch:
        spec = self.spec
        return branch_point(budget, spec.replay_fraction if spec.replay_tokens else 0.0, spec.seq_len,
                            spec.global_batch, spec.cooldown_fraction)

    def build(self) -> None:
        import deepspeed
        from transformers import AutoConfig, AutoModelForCausalLM

        spec = self.spec
        model_config = AutoConfig.from_pretrained(spec.init_model)  # read once: sizes the buckets, builds the model
        config = deepspeed_config(spec, self.world_size, model_config.hidden_size)
        with partitioned_loading(config):
            model = AutoModelForCausalLM.from_pretrained(spec.init_model, config=model_config, dtype=torch.float32,
                                                         attn_implementation=spec.attention)
        if spec.liger_kernels:
            fuse_liger_kernels(model)
        context = getattr(model.config, "max_position_embeddings", None)
        if context is not None and spec.seq_len > context:
            raise ValueError(f"anneal.seq_len {spec.seq_len} exceeds the model's max_position_embeddings {context}")
        if spec.activation_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        self.parameters = sum(getattr(parameter, "ds_numel", parameter.numel()) for parameter in model.parameters())
        self.held = sum(getattr(parameter, "ds_tensor", parameter).numel() for parameter in model.parameters())
        self.flops_per_token = model_flops_per_token(self.parameters, model.config.num_hidden_layers,
                                                     model.config.hidden_size, spec.seq_len)
        matrices = [len(getattr(parameter, "ds_shape", parameter.shape)) >= 2 for parameter in model.parameters()]
        decay = [p for p, matrix in zip(model.parameters(), matrices, strict=True) if matrix]
        no_decay = [p for p, matrix in zip(model.parameters(), matrices, strict=True) if not matrix]
        groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        steps = self.data.steps

        def schedule(optimizer):
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate(
                step, steps, 1.0, spec.warmup_steps, spec.schedule, spec.cooldown_fraction))

        name_wandb_run(spec)
        self.engine, _, _, _ = deepspeed.initialize(model=model, model_parameters=groups, config=config,
                                                    lr_scheduler=schedule)
        if spec.compile:
            self.engine.compile()
        self.accumulation = gradient_accumulation(spec, self.world_size)

    def load(self, directory: Path, tag: str) -> dict:
        """Load a checkpoint (weights, optimizer, schedule state); the LR is then set from this job's schedule
        at the loaded step, which is what lets a cooldown start from a stable-phase checkpoint."""
        import torch.distributed as dist

        _, client_state = self.engine.load_checkpoint(str(directory), tag=tag)
        scheduler = self.engine.lr_scheduler
        scheduler.last_epoch = client_state["step"] - 1
        scheduler.step()
        dist.barrier()
        if self.rank == 0:
            print(f"resuming from {directory / tag} at step {client_state['step']}", flush=True)
        return {"step": client_state["step"], "log": client_state["log"], "seconds": client_state["seconds"],
                "began": client_state.get("began")}

    def run(self, state: dict, stop: int, keep: set[str] = frozenset()) -> dict:
        """Train from `state` (step, log, seconds, and the step this cell's training began at) up to step `stop`,
        checkpointing every `checkpoint_every` steps (and keeping the tags in `keep`); returns the new state."""
        import torch.distributed as dist

        spec, engine, data = self.spec, self.engine, self.data
        log_records = list(state["log"])
        progress = _progress(self.rank, stop, state["step"], Path(spec.summary_path).parent.name)
        started = time.perf_counter()
        for step in range(state["step"], stop):
            step_started = time.perf_counter()
            rows = data.batch(step, self.rank, self.world_size)
            batch = torch.from_numpy(np.stack([self.arrays[kind].window(index, spec.seq_len) for kind, index in rows]))
            lr = engine.get_lr()[0]
            mean_loss = train_step(engine, batch.to(engine.device), self.accumulation).clone()
            dist.all_reduce(mean_loss)
            mean_loss = mean_loss.item() / self.world_size
            _check_divergence(mean_loss, step, log_records, spec, self.directory)
            seconds = time.perf_counter() - step_started
            step_rows = data.order[step * spec.global_batch:(step + 1) * spec.global_batch, 0]
            tokens_per_s = spec.global_batch * spec.seq_len / seconds
            previous = log_records[-1] if log_records else {"tokens": 0, "source_tokens": 0, "replay_tokens": 0}
            log_records.append({
                "step": step, "lr": lr, "loss": mean_loss, "dtype": spec.dtype,
                "tokens": previous["tokens"] + spec.global_batch * spec.seq_len,
                "source_tokens": previous["source_tokens"] + int((step_rows == SOURCE).sum()) * spec.seq_len,
                "replay_tokens": previous["replay_tokens"] + int((step_rows == REPLAY).sum()) * spec.seq_len,
                "tokens_per_s": tokens_per_s, "mfu": self.mfu(tokens_per_s)})
            track(engine, log_records[-1])
            if progress is not None:
                progress.set_postfix(loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}")
                progress.update()
            done = step + 1
            if spec.checkpoint_every and done % spec.checkpoint_every == 0 and done < stop:
                self.save({**state, "step": done, "log": log_records,
                           "seconds": state["seconds"] + time.perf_counter() - started}, keep)
        if progress is not None:
            progress.close()
        return {**state, "step": stop, "log": log_records, "seconds": state["seconds"] + time.perf_counter() - started}

    def save(self, state: dict, keep: set[str] = frozenset()) -> str:
        """Checkpoint on every rank, then record it complete and drop the older tags not in `keep`."""
        import torch.distributed as dist

        tag = tag_of(state["step"])
        self.engine.save_checkpoint(str(self.directory), tag=tag, client_state=state)
        dist.barrier()
        if self.rank == 0:
            mark_complete(self.directory, tag, keep)
        dist.barrier()
        return tag

    def mfu(self, tokens_per_s: float) -> float | None:
        peak = self.spec.peak_flops
        return tokens_per_s * self.flops_per_token / (peak * self.world_size) if peak else None


def _anneal(job: _Job) -> None:
    """Train to the last step of the training order, resuming from this cell's newest checkpoint (or, for a
    cooldown, from its stable-phase branch point), then export and verify the model."""
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, data = job.spec, job.data
    job.build()
    resumable = resumable_steps(job.directory, spec)
    branch = job.branch(spec.source_budget_tokens) if spec.branch_from else None
    if resumable:
        state = job.load(job.directory, resumable[max(resumable)])
    else:
        if job.rank == 0:
            start_fresh(job.directory, spec)
        dist.barrier()
        start = _branch_checkpoint(spec, branch.step) if branch else None
        state = job.load(*start) if start else {"step": 0, "log": [], "seconds": 0.0}
        state["began"] = state["step"]  # saved in its checkpoints: a resumed cooldown counts what it retrained
    resumed_from = state["step"] if resumable else None
    began = state["began"]  # None in a checkpoint written before it was recorded
    retrained = max(branch.step - began, 0) if branch and began is not None else 0  # its branch was pruned
    state = job.run(state, data.steps)
    memory = peak_memory(job.held)  # loading and training, before the export
    log_records, wall = state["log"], state["seconds"]
    job.engine.save_checkpoint(str(job.directory), tag="final", client_state={"step": data.steps})
    dist.barrier()
    if job.rank == 0:
        export_dtype = export_precision(spec.export_dtype, spec.dtype, torch.cuda.is_available(),
                                        trained_from=spec.schedule == CONSTANT)  # an export at the peak LR: the base
        _export(spec, job.directory, AutoModelForCausalLM, AutoTokenizer, export_dtype)
        if not spec.keep_checkpoints:
            shutil.rmtree(job.directory, ignore_errors=True)
        tokens_done = log_records[-1]["tokens"]
        write_jsonl(spec.log_path, log_records)
        write_json(spec.summary_path, {
            "steps": data.steps, "world_size": job.world_size, "zero_stage": spec.zero_stage, "dtype": spec.dtype,
            "dtype_reason": job.precision.reason, "export_dtype": export_dtype,
            "gradient_accumulation": job.accumulation, "resumed_from_step": resumed_from,
            "parameters": job.parameters, "seq_len": spec.seq_len, "global_batch": spec.global_batch,
            "source_tokens": data.source_tokens, "replay_tokens": data.replay_tokens,
            "unique_source_tokens": data.unique_source_tokens,
            "source_tokens_available": job.arrays[SOURCE].size, "epochs": data.epochs,
            "train_flops": training_flops(job.parameters, data.source_tokens),
            "replay_flops": training_flops(job.parameters, data.replay_tokens),
            "branch_step": branch.step if branch else None, "stable_steps_retrained": retrained,
            "retrained_flops": training_flops(job.parameters, data.source_tokens_before(branch.step)
                                              - data.source_tokens_before(branch.step - retrained)) if branch else 0.0,
            "shared_flops": training_flops(job.parameters, data.source_tokens_before(branch.step)) if branch else 0.0,
            "final_loss": log_records[-1]["loss"], "wall_seconds": wall, "tokens_per_s": tokens_done / wall,
            "mfu": job.mfu(tokens_done / wall), "peak_flops": spec.peak_flops, **memory,
            "software": package_versions(*TRAINING_PACKAGES),
        })
        resumed = f", resumed at step {resumed_from}" if resumed_from else ""
        branched = f", branched from the stable phase at step {branch.step}" if branch else ""
        print(f"trained {data.steps} steps on {data.source_tokens:,} source + {data.replay_tokens:,} replay "
              f"tokens in {wall:.1f} s ({tokens_done / wall:,.0f} tokens/s{resumed}{branched}), final loss "
              f"{log_records[-1]['loss']:.3f} -> {spec.out_dir}", flush=True)


def _branch_checkpoint(spec: TrainSpec, step: int) -> tuple[Path, str] | None:
    """The stable-phase checkpoint a cooldown starts from. Where `prune` removed it, the newest one below it, or
    None for the base model: the cooldown then trains the stable stretch up to its branch point itself, the
    same steps at the same peak LR. An error naming the fix if it is missing otherwise."""
    directory = Path(spec.branch_from)
    complete = complete_steps(directory)
    if step in complete:
        return directory, complete[step]
    if step not in pruned_steps(directory):
        raise FileNotFoundError(f"no complete stable-phase checkpoint at step {step} in {directory}; rerun its "
                                "stable job (snakemake --forcerun stable)")
    below = [done for done in complete if done < step]
    start = max(below, default=0)
    print(f"the branch checkpoint at step {step} was pruned; training the stable stretch from step {start} to it "
          f"({step - start} steps) first", flush=True)
    return (directory, complete[start]) if below else None


def _stable_phase(job: _Job) -> None:
    """Train the stable phase to every branch point that has no checkpoint yet, each from the nearest
    checkpoint below it: a new larger budget extends the phase, a new smaller one retrains only its stretch."""
    import torch.distributed as dist

    spec, directory = job.spec, job.directory
    have = resumable_steps(directory, spec)
    pruned = pruned_steps(directory) if have else set()  # their cooldowns finished; a fresh phase trains all
    missing = sorted({branch.step for branch in job.branches} - set(have) - pruned)
    keep = {tag_of(branch.step) for branch in job.branches}
    trained, resumed_from, seconds, state = 0, None, 0.0, None
    if missing:
        job.build()
        if not have:
            if job.rank == 0:
                start_fresh(directory, spec)
            dist.barrier()
        for step in missing:
            start = max((done for done in have if done <= step), default=0)
            if state is None or start > state["step"]:
                state = job.load(directory, have[start]) if start else {"step": 0, "log": [], "seconds": 0.0}
                resumed_from = start if resumed_from is None else resumed_from
            began, began_seconds = state["step"], state["seconds"]
            state = job.run(state, step, keep)
            have[step] = job.save(state, keep)
            trained, seconds = trained + step - began, seconds + state["seconds"] - began_seconds
    if job.rank == 0:
        branches = [{"budget": branch.budget, "step": branch.step, "total_steps": branch.total_steps,
                     "tag": tag_of(branch.step), "source_tokens": job.data.source_tokens_before(branch.step),
                     "checkpoints": str(directory)} for branch in job.branches]
        markers = {budget: {"budget": budget, "step": None, "note": "not a budget of this (source, seed)"}
                   for budget in spec.marker_budgets or []} | {branch["budget"]: branch for branch in branches}
        for budget, marker in markers.items():  # one per budget: what its cooldown waits for
            write_json(Path(spec.summary_path).with_name(Path(STABLE_BRANCH).name.format(budget=budget)), marker)
        write_json(spec.summary_path, {"branches": branches, "trained_steps": trained,
                                       "resumed_from_step": resumed_from or None, "wall_seconds": seconds})
        print(f"stable phase: trained {trained} steps in {seconds:.1f} s to branch points "
              f"{[branch.step for branch in job.branches]} ({len(missing)} new) -> {directory}", flush=True)


@contextmanager
def partitioned_loading(config: dict) -> Iterator[None]:
    """Under ZeRO-3, `from_pretrained` within this builds the model under `deepspeed.zero.Init` (transformers'
    `HfDeepSpeedConfig`), so each rank materialises about 1/world of the weights instead of the whole model.
    Outside it, loading is plain again: rank 0's export loads the whole model alone."""
    if config["zero_optimization"]["stage"] != 3:
        yield
        return
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    settings = HfDeepSpeedConfig(config)  # transformers holds only a weak reference to it
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del settings


def fuse_liger_kernels(model) -> None:
    """Liger's Triton kernels in place of the model's RMSNorm, rotary embedding, SwiGLU and cross-entropy."""
    if not torch.cuda.is_available():
        raise ValueError("anneal.liger_kernels: Liger's kernels are Triton kernels for GPUs and this rank has "
                         "none; set anneal.liger_kernels: false")
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model)


def peak_memory(held: int) -> dict:
    """The most model parameters any rank held once loaded (all of them but under ZeRO-3), and the largest peak
    resident memory of any rank so far and of any GPU where there is one, in MB."""
    import resource

    import torch.distributed as dist

    peaks = [held, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]  # KB on Linux
    if torch.cuda.is_available():
        peaks.append(torch.cuda.max_memory_allocated() / 2**20)
    values = torch.tensor(peaks, dtype=torch.float64, device="cuda" if torch.cuda.is_available() else "cpu")
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    names = ["parameters_per_rank", "peak_rss_mb", "peak_gpu_mb"][:len(peaks)]
    return {name: round(value, 1) if name.endswith("_mb") else int(value)
            for name, value in zip(names, values.tolist(), strict=True)}


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


def _export(spec: TrainSpec, checkpoint_dir: Path, model_class, tokenizer_class, dtype: str) -> None:
    """Gather the fp32 master weights from the DeepSpeed checkpoint into a model built on the meta device (one
    copy of the weights in memory), rounded to bf16 tensor by tensor where `dtype` asks, save a Hugging Face
    model, and verify that the written tensors are exactly those weights before it is renamed into place."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    from transformers import AutoConfig

    state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint_dir), tag="final")
    if dtype == "bf16":
        state = {name: state.pop(name).to(torch.bfloat16) for name in list(state)}
    with torch.device("meta"):
        model = model_class.from_config(AutoConfig.from_pretrained(spec.init_model))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"export of {spec.out_dir}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    with atomic_path(spec.out_dir, directory=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer_class.from_pretrained(spec.init_model).save_pretrained(tmp)
        differing, saved = compare_saved(tmp, state)
        absent = set(state) - tied - saved
        if differing or absent:
            raise RuntimeError(f"export of {spec.out_dir}: the saved model differs from the checkpoint in "
                               f"{differing[:3]}, lacks {sorted(absent)[:3]}; the checkpoint is kept")
        record_export(tmp)  # what evaluation checks the files against


def compare_saved(directory: Path, state: dict[str, torch.Tensor]) -> tuple[list[str], set[str]]:
    """The names of the saved model's tensors that differ from `state`, and the names of all it saved, read
    from its safetensors files one tensor at a time."""
    from safetensors import safe_open

    differing, saved = [], set()
    for path in sorted(Path(directory).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            names = handle.keys()
            for name in names:
                saved.add(name)
                if name in state and not torch.equal(handle.get_tensor(name), state[name]):
                    differing.append(name)
    return differing, saved


def _progress(rank: int, total: int, initial: int, name: str):
    if rank != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", unit="step")


if __name__ == "__main__":
    main()
    exit_without_teardown()
