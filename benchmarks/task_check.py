"""What the evaluation-task check costs a Snakemake process, for a config naming lm-eval's own tasks.

Times `snakemake -n` of config/examples/math-7b.yaml (gsm8k, minerva_math, mathqa and three MMLU subjects) in
the main process with the cache of lm-eval's task names empty, which builds lm-eval's index as every process
did before the cache, then with the cache filled; and the same dry run as a job's own process runs it
(`--mode remote`, as on SLURM), which leaves the check to the main process. Best of N rounds, each starting
from an empty cache (a scratch XDG_CACHE_HOME). Prints the seconds and the ratios to the empty-cache run.

    python benchmarks/task_check.py [--config config/examples/math-7b.yaml --rounds 3]

The executor plugin for SLURM asks `scontrol show config` in every Snakemake process; where scontrol is
installed but no controller answers, that waits about 9 s, so run this where none is installed or with the
cluster up (tests/slurm/start_cluster.sh).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from plan_speed import ROOT, dry_run  # benchmarks/plan_speed.py, beside this script


def timed(config: str, *extra: str) -> float:
    """Seconds of one `snakemake -n` of `config` through the workflow."""
    return dry_run(ROOT, ROOT / "Snakefile", config, *extra)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/examples/math-7b.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cold, warm, job = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["XDG_CACHE_HOME"] = scratch  # the dry runs' cache of lm-eval's task names
        for _ in range(args.rounds):
            shutil.rmtree(Path(scratch, "annealscope"), ignore_errors=True)
            cold.append(timed(args.config))
            warm.append(timed(args.config))
            job.append(timed(args.config, "--mode", "remote"))
    cold_s, warm_s, job_s = min(cold), min(warm), min(job)
    print(f"{args.config}, best of {args.rounds}: main process, empty cache {cold_s:.1f} s; filled cache "
          f"{warm_s:.1f} s (ratio {cold_s / warm_s:.2f}); a job's process {job_s:.1f} s (ratio {cold_s / job_s:.2f})")


if __name__ == "__main__":
    main()
