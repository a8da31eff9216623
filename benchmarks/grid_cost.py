"""Branched cooldowns on the demo: train FLOPs of the grid against independent anneals (goal ≤ 0.65×), and
what the branched mode changes in the fitted curves.

    python benchmarks/grid_cost.py          # planned FLOPs for the demo budgets (seconds)
    python benchmarks/grid_cost.py --run    # also runs the demo three ways and compares the fits (about 25 min)

`--run` runs the demo (results/demo; nothing reruns if it is complete), the same config with
`grid.schedule: branched-wsd` (run demo-branched-wsd), and, to tell the schedule's effect from the
branching's, independent anneals with `anneal.schedule: wsd` (run demo-wsd). The latter two are seeded with
the demo's base model, curated sources, tokens and base-model scores, so only training and evaluation run.
The fits of each table are made at the same computes and compared with the demo's in units of its 90%
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

from annealscope.core.attribution import attribution_table
from annealscope.core.grid import planned_as_run, planned_cells
from annealscope.fit.analysis import analyse
from annealscope.fit.curves import FitSettings
from annealscope.validation import load_config

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"demo-branched-wsd": {"grid": {"schedule": "branched-wsd"}}, "demo-wsd": {"anneal": {"schedule": "wsd"}}}
SHARED = ("base", "curate", "tokens", "tasks", "cache", "eval/base")  # what both modes start from


def planned(config: dict) -> None:
    rows = planned_cells(config)
    independent = sum(row.train_flops for row in rows)
    branched = copy.deepcopy(config)
    branched["grid"]["schedule"] = "branched-wsd"
    branched["anneal"]["schedule"] = "wsd"
    flops, hours = planned_as_run(planned_cells(branched))
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


def seed_variant(independent: Path, variant: Path) -> None:
    """Copy what every variant starts from (the demo's base, sources, tokens, base scores) into its run."""
    for name in SHARED:
        if not (variant / name).exists() and (independent / name).exists():
            shutil.copytree(independent / name, variant / name, symlinks=True)


def job_seconds(run_dir: Path, prefixes: tuple[str, ...]) -> float:
    """Wall seconds of the jobs whose benchmark files start with `prefixes` (Snakemake's benchmark directive)."""
    return sum(pd.read_csv(path, sep="\t")["s"].iloc[-1] for path in (run_dir / "logs").glob("*.benchmark.tsv")
               if path.name.startswith(prefixes))


def compare_fits(independent: pd.DataFrame, branched: pd.DataFrame, bootstrap: int) -> None:
    """Fit both tables at the same computes (the first table's span), then compare curves and winners."""
    computes = sorted(independent.loc[independent["budget_tokens"] > 0, "total_flops"].unique())
    settings = FitSettings(bootstrap=bootstrap, target_flops=list(np.geomspace(computes[0], computes[-1], 6)))
    first, second = analyse(independent, settings), analyse(branched, settings)
    keys = ["source", "task", "metric", "total_flops"]
    points = first.result.predictions.merge(second.result.predictions, on=keys, suffixes=("_ind", "_br"))
    points = points[np.isin(points["total_flops"], settings.target_flops)].dropna(subset=["predicted_ind",
                                                                                          "predicted_br"])
    half_width = (points["upper_ind"] - points["lower_ind"]) / 2
    scaled = (points["predicted_br"] - points["predicted_ind"]).abs() / half_width.where(half_width > 0)
    scaled = scaled.dropna()
    print(f"  fitted curves at {len(settings.target_flops)} common computes, {len(scaled)} points of "
          f"{points.groupby(['source', 'task', 'metric']).ngroups} curves fitted in both:")
    print(f"  |difference| / the demo's 90% half-width: median {scaled.median():.2f}, 90th percentile "
          f"{scaled.quantile(0.9):.2f}; inside the demo's interval: {(scaled <= 1).mean():.0%}")
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


def run_variant(name: str, changes: dict, demo: dict, independent_dir: Path) -> Path:
    """Run the demo with `changes` merged into its config as run `name`; its results directory."""
    config = copy.deepcopy(demo)
    config["run"] = name
    for key, values in changes.items():
        config[key] = {**config.get(key, {}), **values}
    path = ROOT / "results" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    run_dir = ROOT / "results" / name
    seed_variant(independent_dir, run_dir)
    print(f"{name}: snakemake {run_demo(path, name):.0f} s")
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the demo both ways and compare the fits")
    parser.add_argument("--bootstrap", type=int, default=300)
    args = parser.parse_args()
    config = load_config(ROOT / "config" / "config.yaml", ROOT / "resources")
    planned(config)
    if not args.run:
        return
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    independent_dir = ROOT / "results" / demo["run"]
    print(f"demo: snakemake {run_demo(ROOT / 'config' / 'config.yaml', 'the demo'):.0f} s (about 10 if complete)")
    branched_dir, wsd_dir = (run_variant(name, changes, demo, independent_dir) for name, changes in RUNS.items())
    anneal, wsd = job_seconds(independent_dir, ("anneal_",)), job_seconds(wsd_dir, ("anneal_",))
    branched_train = job_seconds(branched_dir, ("stable_", "cooldown_"))
    print(f"training jobs, wall seconds: independent {anneal:.0f} (wsd {wsd:.0f}), branched {branched_train:.0f}, "
          f"ratio {branched_train / anneal:.2f} (every job pays about 10 s of launcher and model start-up)")
    independent = pd.read_csv(independent_dir / "metrics.csv")
    branched = pd.read_csv(branched_dir / "metrics.csv")
    measured = attribution_table(branched).set_index("source").loc["grid"]
    charged = attribution_table(independent).set_index("source").loc["grid"]["train_flops_charged"]
    print(f"measured train FLOPs: independent {charged:.4e}, branched as run {measured['train_flops_as_run']:.4e} "
          f"-> ratio {measured['train_flops_as_run'] / charged:.3f} (goal <= 0.65)")
    wsd_table = pd.read_csv(wsd_dir / "metrics.csv")
    comparisons = {"branched-wsd against the demo (linear decay)": (independent, branched),
                   "independent wsd against the demo (the schedule alone)": (independent, wsd_table),
                   "branched-wsd against independent wsd (the branching and data order alone)": (wsd_table, branched)}
    for label, (first, second) in comparisons.items():
        print(label + ":")
        compare_fits(first, second, args.bootstrap)


if __name__ == "__main__":
    main()
