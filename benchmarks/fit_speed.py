"""Fit speed: 50 sources × 8 budgets × 3 metrics with 1,000 bootstrap replicates over items (goal ≤ 10 s on 2 cores).

Times the whole analysis (item resampling, every form per curve, leave-largest-out, bootstrap refits,
decisions, pairwise probabilities, crossovers) on a simulated grid with per-item results, and, as the
baseline measured in the same run, the per-replicate scipy `least_squares` refit that batching replaced,
timed on a few curves and scaled to the grid.

    python benchmarks/fit_speed.py [--sources 50 --budgets 8 --bootstrap 1000 --items 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from annealscope.fit.analysis import analyse
from annealscope.fit.curves import FitSettings
from annealscope.fit.forms import FORMS

METRICS = ("acc", "brier", "nll")


def simulated_grid(sources: int, budgets: int, items: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item results of sources whose accuracy rises as a saturating power law in compute (each with its
    own asymptote, scale and exponent), and the tidy table they aggregate to; the base model at budget 0."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1, items)
    rows, item_frames = [], []
    cells = [("base", 0, 0.0, 0.3)]
    for index in range(sources):
        ceiling, scale, exponent = rng.uniform(0.5, 0.8), rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.8)
        flops_per_token = 6e9 * rng.uniform(1, 3)
        for budget in 2 ** np.arange(budgets) * 1_000_000:
            flops = budget * flops_per_token
            accuracy = ceiling - scale * (flops / 1e15) ** -exponent
            cells.append((f"source{index:02d}", int(budget), flops, accuracy))
    for source, budget, flops, accuracy in cells:
        p = 1 / (1 + np.exp(-(np.log(accuracy / (1 - accuracy)) - difficulty)))
        correct = (rng.uniform(size=items) < p).astype(float)
        values = {"acc": correct, "brier": (1 - p) ** 2 + rng.normal(0, 0.02, items),
                  "nll": -np.log(p) + rng.normal(0, 0.05, items)}
        for metric, value in values.items():
            item_frames.append(pd.DataFrame({"source": source, "budget_tokens": budget, "seed": 0, "task": "bench",
                                             "metric": metric, "item": np.arange(items), "value": value}))
            rows.append({"source": source, "budget_tokens": budget, "seed": 0, "total_flops": flops, "task": "bench",
                         "metric": metric, "value": value.mean(), "stderr": value.std(ddof=1) / np.sqrt(items)})
    return pd.DataFrame(rows), pd.concat(item_frames, ignore_index=True)


def scipy_refits(table: pd.DataFrame, curves: int, bootstrap: int) -> float:
    """Seconds for per-replicate scipy Huber refits of the saturating power law on `curves` curves."""
    form = FORMS["saturating_power_law"]
    rng = np.random.default_rng(1)
    annealed = table[(table["source"] != "base") & (table["metric"] == "acc")]
    start = time.perf_counter()
    for _, rows in list(annealed.groupby("source"))[:curves]:
        flops, y, sigma = (rows[column].to_numpy(float) for column in ("total_flops", "value", "stderr"))
        x = flops / np.exp(np.mean(np.log(flops)))
        theta = form.starts(x, y, sigma**-2.0)[0]
        for _ in range(bootstrap):
            noisy = y + rng.normal(0, sigma)
            least_squares(_residuals, theta, args=(form, x, noisy, sigma), loss="huber", max_nfev=2000)
    return time.perf_counter() - start


def _residuals(theta: np.ndarray, form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    return (form.predict(theta[None, :], x)[0] - y) / sigma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--budgets", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--baseline-curves", type=int, default=3)
    args = parser.parse_args()
    table, items = simulated_grid(args.sources, args.budgets, args.items)
    settings = FitSettings(bootstrap=args.bootstrap, target_flops=[3e16, 1e17, 3e17], metrics=None)
    start = time.perf_counter()
    analysis = analyse(table, settings, items)
    elapsed = time.perf_counter() - start
    curves = len(analysis.result.fits)
    baseline = scipy_refits(table, args.baseline_curves, args.bootstrap) / args.baseline_curves * curves
    fitted = int(analysis.result.fits["form"].notna().sum())
    print(f"grid: {args.sources} sources × {args.budgets} budgets × {len(METRICS)} metrics, {args.items} items per "
          f"cell ({len(items):,} item rows), {args.bootstrap} bootstrap replicates")
    print(f"annealscope analysis: {elapsed:.2f} s for {curves} curves ({fitted} fitted; every form, leave-largest-out, "
          f"bootstrap, {len(analysis.pairwise):,} pairwise rows, {len(analysis.crossovers)} crossovers)")
    print(f"baseline (scipy least_squares per replicate, one form, bootstrap only, scaled from "
          f"{args.baseline_curves} curves): {baseline:.1f} s")
    print(f"ratio annealscope / baseline: {elapsed / baseline:.4f} ({baseline / elapsed:.0f}x faster); "
          f"goal ≤ 10 s: {'met' if elapsed <= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
