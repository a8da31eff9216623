"""Launching a training job: the `deepspeed` command line built from the spec and the rule's resources."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from annealscope.spec import TrainSpec


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def deepspeed_launcher() -> str:
    """The `deepspeed` launcher beside this interpreter (the active environment), else the one on PATH."""
    launcher = Path(sys.executable).with_name("deepspeed")
    return str(launcher) if launcher.exists() else "deepspeed"


def deepspeed_command(spec_path: str | Path, ranks: int, master_port: int, launcher: str = "deepspeed") -> list[str]:
    """The single-node launch: one process per rank (GPU, or CPU core group)."""
    return [launcher, "--num_gpus", str(ranks), "--master_port", str(master_port),
            "--module", "annealscope.train", "--spec", str(spec_path)]


def run_training(spec: TrainSpec) -> None:
    """Write the spec beside the outputs, launch DeepSpeed, and check that the outputs appeared."""
    spec_path = Path(spec.summary_path).with_name("train_spec.json")
    spec.save(spec_path)
    environment = dict(os.environ, OMP_NUM_THREADS=str(spec.threads), PYTHONUNBUFFERED="1")
    command = deepspeed_command(spec_path, spec.ranks, free_port(), deepspeed_launcher())
    print("launch:", " ".join(command), flush=True)
    completed = subprocess.run(command, env=environment, check=False)
    missing = [path for path in (spec.out_dir, spec.log_path, spec.summary_path) if not Path(path).exists()]
    if completed.returncode != 0 or missing:
        raise RuntimeError(f"training job for {spec.out_dir} failed (exit {completed.returncode}); "
                           f"missing outputs: {missing}; see the log above")
