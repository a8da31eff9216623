"""Experiment trackers for training jobs: DeepSpeed's TensorBoard, CSV and Weights & Biases monitors
(`anneal.monitor`), each job's run named by its cell.

A job's run is named by its folder under `results/<run>/` (`anneal/<source>/<budget>/seed<seed>`,
`stable/<source>/seed<seed>`, `base`; `core/tracking.run_names`), grouped by the run. TensorBoard and CSV
write into the job's folder (`monitor/tensorboard`, `monitor/csv`), so `tensorboard --logdir results/<run>`
shows every cell by its path; Weights & Biases gets the group and the name (and keeps its offline files there).
Beside DeepSpeed's own events (per-rank `Train/Samples/train_loss` and `lr`, by samples), each step's record of
the training log goes out under `annealscope/` by optimizer step: the loss averaged over ranks, the learning
rate, tokens, tokens/s, MFU.
"""

from __future__ import annotations

import os
from pathlib import Path

from annealscope.anneal.spec import TrainSpec
from annealscope.core.tracking import run_names

TRACKED = ("loss", "lr", "tokens", "source_tokens", "replay_tokens", "tokens_per_s", "mfu")


def monitor_folder(spec: TrainSpec) -> Path:
    """Where a job's trackers write: `monitor/` in the job's folder."""
    return Path(spec.out_dir).resolve().parent / "monitor"


def monitor_config(spec: TrainSpec) -> dict:
    """The DeepSpeed config keys of the trackers `spec.monitor` turns on (none by default)."""
    settings = spec.monitor or {}
    backends = settings.get("backends", [])
    folder = str(monitor_folder(spec))
    config = {}
    if "tensorboard" in backends:
        config["tensorboard"] = {"enabled": True, "output_path": folder, "job_name": "tensorboard"}
    if "csv" in backends:
        config["csv_monitor"] = {"enabled": True, "output_path": folder, "job_name": "csv"}
    if "wandb" in backends:
        group, _ = run_names(spec.out_dir)
        config["wandb"] = {"enabled": True, "group": group, "project": settings.get("project", "annealscope"),
                           "team": settings.get("team")}
    return config


def name_wandb_run(spec: TrainSpec) -> None:
    """Name the Weights & Biases run by the job's cell and keep its files in the job's folder (DeepSpeed's
    monitor passes neither); a name or folder already set in the environment wins."""
    if "wandb" in (spec.monitor or {}).get("backends", []):
        _, name = run_names(spec.out_dir)
        folder = monitor_folder(spec)
        folder.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_NAME", name)
        os.environ.setdefault("WANDB_DIR", str(folder))


def track(engine, record: dict) -> None:
    """One step's training-log record to the engine's trackers (rank 0 writes; no-op when none is on)."""
    monitor = getattr(engine, "monitor", None)
    if monitor is None or not monitor.enabled:
        return
    monitor.write_events([(f"annealscope/{key}", float(record[key]), record["step"]) for key in TRACKED
                          if record.get(key) is not None])


def close_trackers(engine) -> None:
    """Flush TensorBoard's events and finish the Weights & Biases run, so nothing is lost at exit."""
    monitor = getattr(engine, "monitor", None)
    if monitor is None or not monitor.enabled:
        return
    if getattr(monitor, "tb_monitor", None) is not None:
        monitor.tb_monitor.flush()
    if getattr(monitor, "wandb_monitor", None) is not None:
        import wandb

        wandb.finish()
