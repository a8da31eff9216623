"""Bootstrap replicates of every observation: over evaluation items, and over seeds.

Evaluation noise is the sampling of benchmark items, and every cell is scored on the same items, so
one replicate draws one multiset of items per task and applies it to every cell at once (a paired
bootstrap: the comparison of two sources keeps its correlation). Rows without per-item results (a
table from elsewhere) are redrawn from their standard errors instead. Seeds are resampled per
(source, budget) when a cell has several.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from annealscope.core.tables import ITEM_COLUMNS

CELL_KEYS = ["source", "budget_tokens", "seed", "metric"]


def check_items(items: pd.DataFrame) -> None:
    missing = [column for column in ITEM_COLUMNS if column not in items.columns]
    if missing:
        raise ValueError(f"per-item table lacks column(s) {missing}; it needs {list(ITEM_COLUMNS)} "
                         "(`annealscope collect` writes it as items.parquet)")


def replicate_values(table: pd.DataFrame, items: pd.DataFrame | None, draws: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Replicates (len(table), draws) of each row's value: from its items where the per-item table has
    them (centred on the row's own value, so the point estimate is the table's), else from its stderr."""
    values = table["value"].to_numpy(float)
    noise = rng.normal(0.0, 1.0, (len(table), draws)) * _stderr(table)[:, None]
    replicates = values[:, None] + noise
    if items is None or items.empty or draws == 0:
        return replicates
    position = pd.Series(np.arange(len(table)), index=pd.MultiIndex.from_frame(table[["task", *CELL_KEYS]]))
    position = position[~position.index.duplicated()]
    for task, task_items in items.groupby("task", sort=True):
        matrix = task_items.pivot_table(index="item", columns=CELL_KEYS, values="value", aggfunc="mean")
        keys = [(task, *key) for key in matrix.columns]
        present = [key in position.index for key in keys]
        if not any(present):
            continue
        matrix = matrix.loc[:, present].to_numpy(float)
        rows = position.loc[[key for key, keep in zip(keys, present, strict=True) if keep]].to_numpy()
        counts = rng.multinomial(len(matrix), np.full(len(matrix), 1.0 / len(matrix)), size=draws).astype(float)
        observed = np.isfinite(matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (counts @ np.where(observed, matrix, 0.0)) / (counts @ observed)
        centre = np.nanmean(matrix, axis=0)
        replicates[rows] = (means - centre).T + values[rows, None]
    return replicates


def _stderr(table: pd.DataFrame) -> np.ndarray:
    stderr = table["stderr"].to_numpy(float)
    return np.where(np.isfinite(stderr) & (stderr > 0), stderr, 0.0)


@dataclass
class Points:
    """One curve's observations: seeds averaged per budget, with their bootstrap replicates."""

    flops: np.ndarray
    value: np.ndarray
    sigma: np.ndarray
    replicates: np.ndarray  # (draws, n)
    seeds: np.ndarray


def budget_points(rows: pd.DataFrame, replicates: np.ndarray, rng: np.random.Generator) -> Points:
    """Average seeds per budget; each replicate resamples a budget's seeds with replacement, the resampled
    deviation scaled by √(n / (n − 1)) so that its variance is the seed mean's (plain resampling of 2 seeds
    gives half of it).

    The weight of a point is the standard error of its seed mean: the larger of the spread between
    seeds and the evaluation noise, over the square root of the number of seeds.
    """
    flops, value, sigma, columns, seeds = [], [], [], [], []
    draws = replicates.shape[1]
    for _, group in rows.groupby("budget_tokens", sort=True):
        index = group.index.to_numpy()
        count = len(index)
        picks = rng.integers(0, count, (draws, count)) if count > 1 else np.zeros((draws, 1), dtype=int)
        if draws:
            every = replicates[index].mean(axis=0)
            picked = replicates[index][picks, np.arange(draws)[:, None]].mean(axis=1)
            columns.append(every + (picked - every) * np.sqrt(count / (count - 1) if count > 1 else 1.0))
        else:
            columns.append(np.empty(0))
        observed = group["value"].to_numpy(float)
        evaluation = float(np.mean(_stderr(group) ** 2))
        spread = float(np.var(observed, ddof=1)) if count > 1 else 0.0
        flops.append(float(group["total_flops"].mean()))
        value.append(float(observed.mean()))
        sigma.append(np.sqrt(max(spread, evaluation) / count))
        seeds.append(count)
    sigma = np.asarray(sigma)
    valid = sigma > 0
    sigma = np.where(valid, sigma, np.median(sigma[valid]) if valid.any() else 1.0)
    return Points(np.asarray(flops), np.asarray(value), sigma,
                  np.stack(columns, axis=1) if draws else np.empty((0, len(flops))), np.asarray(seeds))
