"""Branched cooldowns on the demo: train FLOPs of the grid against independent anneals (goal ≤ 0.65×), and
what the branched mode changes in the fitted curves.

    python benchmarks/grid_cost.py          # planned FLOPs for the demo budgets (seconds)
    python benchmarks/grid_cost.py --run    # also runs the demo both ways and compares the fits (about 15 min)

`--run` runs the demo (results/demo; nothing reruns if it is complete) and the same config with
`grid.schedule: branched-wsd` as run demo-branched-wsd, seeded with the demo's base model, curated sources,
tokens and base-model scores so only the stable phases, cooldowns and their evaluations run. The fits of
both tables are then made at the same computes, and compared in units of the independent fit's 90%
interval half-width, with the best source at each compute.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from annealscope.analysis import analyse
from annealscope.attribution import attribution_table
from annealscope.config import load_config
from annealscope.fit import FitSettings
from annealscope.grid import plan, planned_as_run

ROOT = Path(__file__).resolve().parents[1]
BRANCHED_RUN = "demo-branched-wsd"
SHARED = ("base", "curate", "tokens", "tasks", "cache", "eval/base")  # what both modes start from


def planned(config: dict) -> None:
    rows = plan(config)
    independent = sum(row.train_flops for row in rows)
    branched = copy.deepcopy(config)
    branched["grid"]["schedule"] = "branched-wsd"
    branched["anneal"]["schedule"] = "wsd"
    flops, hours = planned_as_run(plan(branched))
    print(f"demo budgets {config['grid']['budgets']}, cooldown fraction {config['anneal']['cooldown_fraction']}:")
    print(f"  planned train FLOPs: independent {independent:.4e}, branched-wsd {flops:.4e} "
          f"-> ratio {flops / independent:.3f} (goal <= 0.65)")
    print(f"  planned GPU-hours with replay: {sum(row.gpu_hours for row in rows):.3g} -> {hours:.3g}")


def run_demo(config_path: Path, label: str) -> float:
    started = time.perf_counter()
    command = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(config_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"{label} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def seed_branched(independent: Path, branched: Path) -> None:
    for name in SHARED:
        if not (branched / name).exists() and (independent / name).exists():
            shutil.copytree(independent / name, branched / name, symlinks=True)


def job_seconds(run_dir: Path, prefixes: tuple[str, ...]) -> float:
    """Wall seconds of the jobs whose benchmark files start with `prefixes` (Snakemake's benchmark directive)."""
    return sum(pd.read_csv(path, sep="\t")["s"].iloc[-1] for path in (run_dir / "logs").glob("*.benchmark.tsv")
               if path.name.startswith(prefixes))


def compare_fits(independent: pd.DataFrame, branched: pd.DataFrame, bootstrap: int) -> None:
    """Fit both tables at the same computes (the independent cells'), then compare curves and winners."""
    computes = sorted(independent.loc[independent["budget_tokens"] > 0, "total_flops"].unique())
    settings = FitSettings(bootstrap=bootstrap, target_flops=list(np.geomspace(computes[0], computes[-1], 6)))
    first, second = analyse(independent, settings), analyse(branched, settings)
    keys = ["source", "task", "metric", "total_flops"]
    points = first.result.predictions.merge(second.result.predictions, on=keys, suffixes=("_ind", "_br"))
    points = points[np.isin(points["total_flops"], settings.target_flops)].dropna(subset=["predicted_ind",
                                                                                          "predicted_br"])
    half_width = (points["upper_ind"] - points["lower_ind"]) / 2
    scaled = (points["predicted_br"] - points["predicted_ind"]).abs() / half_width.where(half_width > 0)
    print(f"fitted curves at {len(settings.target_flops)} common computes, {len(points)} points of "
          f"{points.groupby(['source', 'task', 'metric']).ngroups} curves fitted in both modes:")
    print(f"  |branched - independent| / independent 90% half-width: median {scaled.median():.2f}, "
          f"90th percentile {scaled.quantile(0.9):.2f}, max {scaled.max():.2f}; "
          f"inside the independent interval: {(scaled <= 1).mean():.0%}")
    cells = ["source", "budget_tokens", "seed", "task", "metric"]
    observed = independent.merge(branched, on=cells, suffixes=("_ind", "_br"))
    observed = observed[observed["budget_tokens"] > 0]
    noise = np.hypot(observed["stderr_ind"], observed["stderr_br"])
    change = (observed["value_br"] - observed["value_ind"]).abs() / noise.where(noise > 0)
    print(f"  observed cells: |difference| / combined stderr median {change.median():.2f}, "
          f"{(change > 2).mean():.0%} of {len(change)} beyond 2 stderr")
    decided = first.decisions.merge(second.decisions, on=["task", "metric", "kind", "total_flops"],
                                    suffixes=("_ind", "_br"))
    decided = decided[decided["kind"] == "fitted"].dropna(subset=["best_source_ind", "best_source_br"])
    same = (decided["best_source_ind"] == decided["best_source_br"]).mean()
    print(f"  best source at each compute: the same in {same:.0%} of {len(decided)} (task, metric, compute) "
          "decisions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the demo both ways and compare the fits")
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args()
    config = load_config(ROOT / "config" / "config.yaml", ROOT / "resources")
    planned(config)
    if not args.run:
        return
    raw = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    independent_dir, branched_dir = ROOT / "results" / raw["run"], ROOT / "results" / BRANCHED_RUN
    independent_wall = run_demo(ROOT / "config" / "config.yaml", "the demo")
    raw.update(run=BRANCHED_RUN)
    raw["grid"]["schedule"] = "branched-wsd"
    branched_config = ROOT / "results" / f"{BRANCHED_RUN}.yaml"
    branched_config.parent.mkdir(parents=True, exist_ok=True)
    branched_config.write_text(yaml.safe_dump(raw))
    seed_branched(independent_dir, branched_dir)
    branched_wall = run_demo(branched_config, "the branched demo")
    print(f"snakemake wall: demo {independent_wall:.0f} s (0 if it was complete), branched {branched_wall:.0f} s")
    anneal = job_seconds(independent_dir, ("anneal_",))
    branched_train = job_seconds(branched_dir, ("stable_", "cooldown_"))
    print(f"  training job wall seconds: independent {anneal:.0f} s, branched {branched_train:.0f} s "
          f"(ratio {branched_train / anneal:.2f}; each job pays about 10 s of launcher and model start-up)")
    independent = pd.read_csv(independent_dir / "metrics.csv")
    branched = pd.read_csv(branched_dir / "metrics.csv")
    measured = attribution_table(branched).set_index("source").loc["grid"]
    charged = attribution_table(independent).set_index("source").loc["grid"]["train_flops_charged"]
    print(f"measured train FLOPs: independent {charged:.4e}, branched as run {measured['train_flops_as_run']:.4e} "
          f"-> ratio {measured['train_flops_as_run'] / charged:.3f} (goal <= 0.65)")
    compare_fits(independent, branched, args.bootstrap)


if __name__ == "__main__":
    main()
