"""An lm-eval group's panels: `annealscope fit` of an mmlu-shaped table with its groups, against its subjects alone.

The table is simulated: 57 subjects of 100-399 items each (about mmlu's 14,042 in all), 4 sources at 4 budgets
(0.5B-4B tokens of a 7B model) with 2 seeds and the base model, per-item accuracy. `task_groups.json` holds
`mmlu` and 4 categories of 14-15 subjects, each weighted by size, as lm-eval's mmlu is. Both runs are the
`annealscope fit` command with per-item results and 1,000 bootstrap replicates; the baseline, measured in the
same run, is the fit without `--groups` (a panel per subject). It prints each run's wall time, tasks fitted,
curves.png's pixel size, and the ratio of the times.

    python benchmarks/group_panels.py [--out /tmp/group_panels]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SUBJECTS = [f"mmlu_subject{index:02d}" for index in range(57)]
CATEGORIES = ("mmlu_stem", "mmlu_humanities", "mmlu_social_sciences", "mmlu_other")
SOURCES = {"web": 0.02, "textbook": 0.035, "synthetic": 0.025, "papers": 0.015}  # accuracy gained per doubling
BUDGETS = (500_000_000, 1_000_000_000, 2_000_000_000, 4_000_000_000)
FLOPS_PER_TOKEN = 6 * 7.2e9


def simulated_table(out: Path, rng: np.random.Generator) -> None:
    """metrics.csv, items.parquet and task_groups.json of the simulated grid, in `out`."""
    sizes = {subject: int(rng.integers(100, 400)) for subject in SUBJECTS}
    rows, items = [], []
    cells = [("base", 0, 0, 0.0)] + [(source, budget, seed, gain) for source, gain in SOURCES.items()
                                      for budget in BUDGETS for seed in (0, 1)]
    for source, budget, seed, gain in cells:
        for subject, size in sizes.items():
            chance = np.clip(0.45 + gain * np.log2(budget / BUDGETS[0] + 1) + rng.normal(0, 0.02), 0, 1)
            correct = (rng.uniform(size=size) < chance) * 1.0
            rows.append({"source": source, "curation": "base" if source == "base" else "filter",
                         "budget_tokens": budget, "seed": seed, "train_tokens": budget, "unique_tokens": budget,
                         "epochs": 1.0, "train_flops": FLOPS_PER_TOKEN * budget, "acquisition_flops": 0.0,
                         "total_flops": FLOPS_PER_TOKEN * budget, "task": subject, "metric": "acc",
                         "value": correct.mean(), "stderr": correct.std() / np.sqrt(size), "n_items": size,
                         "checkpoint": f"{source}/{budget}/{seed}"})
            items.append(pd.DataFrame({"source": source, "budget_tokens": budget, "seed": seed, "task": subject,
                                       "metric": "acc", "item": np.arange(size).astype(str), "value": correct}))
    pd.DataFrame(rows).to_csv(out / "metrics.csv", index=False)
    pd.concat(items, ignore_index=True).to_parquet(out / "items.parquet", index=False)
    groups = {"mmlu": {"tasks": SUBJECTS, "weight_by_size": True}}
    groups |= {name: {"tasks": sorted(SUBJECTS[index::4]), "weight_by_size": True}
               for index, name in enumerate(CATEGORIES)}
    (out / "task_groups.json").write_text(json.dumps(groups))
    print(f"simulated {len(SUBJECTS)} subjects, {sum(sizes.values()):,} items, {len(cells)} cells")


def timed_fit(out: Path, name: str, groups: bool) -> float:
    command = ["annealscope", "fit", str(out / "metrics.csv"), "--items", str(out / "items.parquet"),
               "--out", str(out / name)] + (["--groups", str(out / "task_groups.json")] if groups else [])
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    decisions = pd.read_csv(out / name / "decisions.csv")
    width, height = Image.open(out / name / "curves.png").size
    print(f"{name:12s}: {seconds:6.1f} s, {decisions['task'].nunique()} tasks fitted, curves.png {width}x{height} px")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/group_panels"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    simulated_table(args.out, np.random.default_rng(0))
    subjects = timed_fit(args.out, "subjects", groups=False)
    grouped = timed_fit(args.out, "groups", groups=True)
    print(f"ratio (with groups / subjects alone): {grouped / subjects:.2f}")


if __name__ == "__main__":
    main()
