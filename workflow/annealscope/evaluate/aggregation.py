"""A task's per-item scores averaged per metric, with standard errors from a bootstrap over items: what the
evaluation reports for each (cell, task) and `collect` recomputes for a screened task without its excluded
items. Apart from `scoring`, so that `collect` imports numpy alone (its code digest then follows no scipy)."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_REPLICATES = 1000


def aggregate(items: list[dict[str, float]], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean of each metric over items, with its standard error from a bootstrap over items."""
    rng = np.random.default_rng(seed)
    count = len(items)
    resamples = rng.integers(0, count, size=(BOOTSTRAP_REPLICATES, count)) if count > 1 else None
    summary = {}
    for metric in items[0]:
        values = np.asarray([item[metric] for item in items], dtype=float)
        stderr = float(values[resamples].mean(axis=1).std(ddof=1)) if resamples is not None else float("nan")
        summary[metric] = {"value": float(values.mean()), "stderr": stderr, "n_items": count}
    return summary
