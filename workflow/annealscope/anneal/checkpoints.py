"""Resumable training state: DeepSpeed checkpoints in the job's `checkpoints/` folder, tagged `step<N>`.

The folder is not a Snakemake output, so it survives a failed or killed job; a rerun of the same spec
resumes from its newest checkpoint, and a changed spec starts afresh. An anneal keeps only its newest
checkpoint and removes the folder once its export is verified, unless the config keeps it; a stable
phase (branched schedules) keeps one checkpoint per branch point, which its cooldowns start from, until
`annealscope prune-branches` removes those whose cooldowns have finished (`prune`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from annealscope.anneal.spec import TrainSpec
from annealscope.core.io import read_json, write_json

FINGERPRINT = "fingerprint.json"
COMPLETE = "complete.json"  # the tags that every rank has finished writing
PRUNED = "pruned.json"  # a stable phase's branch steps removed after their cooldowns: never trained again
RESUME_INDEPENDENT = {"threads", "checkpoint_every", "keep_checkpoints", "max_loss_ratio", "peak_flops",
                      "branch_budgets", "marker_budgets", "export_dtype"}


def checkpoint_dir(spec: TrainSpec) -> Path:
    return Path(spec.summary_path).parent / "checkpoints"


def tag_of(step: int) -> str:
    return f"step{step}"


def fingerprint(spec: TrainSpec) -> str:
    """What a checkpoint must share with the spec to be resumed: every setting that changes the weights."""
    relevant = {key: value for key, value in asdict(spec).items() if key not in RESUME_INDEPENDENT}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def complete_steps(directory: Path) -> dict[int, str]:
    """Step → tag of every checkpoint in `directory` that every rank finished writing and that is still there."""
    marker = directory / COMPLETE
    tags = read_json(marker)["tags"] if marker.is_file() else []
    return {int(tag.removeprefix("step")): tag for tag in tags if (directory / tag).is_dir()}


def complete_tag(directory: Path) -> str | None:
    """The newest complete tag, if any."""
    steps = complete_steps(directory)
    return steps[max(steps)] if steps else None


def resumable_steps(directory: Path, spec: TrainSpec) -> dict[int, str]:
    """The complete checkpoints in `directory` if they were written for this spec, else none."""
    stamp = directory / FINGERPRINT
    if not stamp.is_file() or read_json(stamp)["fingerprint"] != fingerprint(spec):
        return {}
    return complete_steps(directory)


def mark_complete(directory: Path, tag: str, keep: set[str] = frozenset()) -> None:
    """Record `tag` as complete (rank 0, after a barrier past every rank's save) and remove every other
    tag but those in `keep`: the record is rewritten atomically before anything is deleted."""
    write_json(directory / COMPLETE, {"tags": sorted({tag, *(set(complete_steps(directory).values()) & keep)})})
    for path in directory.iterdir():
        if path.is_dir() and path.name != tag and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def start_fresh(directory: Path, spec: TrainSpec) -> None:
    """Empty `directory` and stamp it with the spec's fingerprint (rank 0 only)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    write_json(directory / FINGERPRINT, {"fingerprint": fingerprint(spec)})


def pruned_steps(directory: Path) -> set[int]:
    """The steps whose checkpoints `prune` removed from `directory`."""
    marker = directory / PRUNED
    return set(read_json(marker)["steps"]) if marker.is_file() else set()


def prune(directory: Path, steps: set[int]) -> None:
    """Remove the checkpoints of `steps` (rank 0 of no job: the grid's cooldowns of them have finished). They are
    recorded as pruned and struck from the complete tags before any file goes, so an interrupted prune leaves
    no half-deleted checkpoint that reads as complete."""
    complete = complete_steps(directory)
    write_json(directory / PRUNED, {"steps": sorted(pruned_steps(directory) | steps)})
    write_json(directory / COMPLETE, {"tags": sorted(tag for step, tag in complete.items() if step not in steps)})
    for step in steps:
        shutil.rmtree(directory / tag_of(step), ignore_errors=True)
