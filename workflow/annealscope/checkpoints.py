"""Resumable training state: DeepSpeed checkpoints every N steps in the cell's `checkpoints/` folder.

The folder is not a Snakemake output, so it survives a failed or killed job; a rerun of the same spec
resumes from its newest checkpoint, and a changed spec starts afresh. Once the export is verified the
folder is removed, unless the config keeps it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

from annealscope.io import write_json
from annealscope.spec import TrainSpec

FINGERPRINT = "fingerprint.json"
RESUMABLE = "resumable.json"  # names the newest tag that every rank has finished writing
RESUME_INDEPENDENT = {"threads", "checkpoint_every", "keep_checkpoints", "max_loss_ratio", "peak_flops"}


def checkpoint_dir(spec: TrainSpec) -> Path:
    return Path(spec.out_dir).parent / "checkpoints"


def fingerprint(spec: TrainSpec) -> str:
    """What a checkpoint must share with the spec to be resumed: every setting that changes the weights."""
    relevant = {key: value for key, value in asdict(spec).items() if key not in RESUME_INDEPENDENT}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def complete_tag(directory: Path) -> str | None:
    """The newest tag whose files every rank has finished writing, if any."""
    marker = directory / RESUMABLE
    return json.loads(marker.read_text())["tag"] if marker.is_file() else None


def resumable_tag(directory: Path, spec: TrainSpec) -> str | None:
    """The newest complete checkpoint tag in `directory` if it was written for this spec, else None."""
    tag, stamp = complete_tag(directory), directory / FINGERPRINT
    if tag is None or not stamp.is_file() or json.loads(stamp.read_text())["fingerprint"] != fingerprint(spec):
        return None
    return tag if (directory / tag).is_dir() else None


def mark_complete(directory: Path, tag: str) -> None:
    """Record `tag` as resumable (rank 0, after a barrier past every rank's save), atomically."""
    write_json(directory / RESUMABLE, {"tag": tag})


def start_fresh(directory: Path, spec: TrainSpec) -> None:
    """Empty `directory` and stamp it with the spec's fingerprint (rank 0 only)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / FINGERPRINT).write_text(json.dumps({"fingerprint": fingerprint(spec)}))


def prune(directory: Path, keep: str) -> None:
    """Remove every checkpoint tag but `keep` (rank 0 only, once `keep` is marked complete)."""
    for path in directory.iterdir():
        if path.is_dir() and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
