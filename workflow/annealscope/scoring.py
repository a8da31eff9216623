"""Metrics from per-item log-likelihoods of multiple-choice answers: accuracy, Brier score, gold NLL.

Continuous metrics predict better than accuracy (Schaeffer et al.; DataDecide), so every metric is
computed here from the raw log-likelihoods lm-eval logs, in one place.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

METRICS = ("acc", "brier", "nll")


def item_scores(logliks: list[float], gold: int) -> dict[str, float]:
    """Per-item scores: `acc` (argmax is gold), `brier` (multi-class Brier over the choice
    distribution), `nll` (negative log-likelihood of the gold answer's continuation)."""
    values = np.asarray(logliks, dtype=float)
    probabilities = softmax(values)
    truth = np.zeros_like(probabilities)
    truth[gold] = 1.0
    return {"acc": float(np.argmax(values) == gold), "brier": float(np.sum((probabilities - truth) ** 2)),
            "nll": float(-values[gold]), "p_gold": float(probabilities[gold])}


def aggregate(items: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and standard error of each metric over items."""
    summary = {}
    for metric in METRICS:
        values = np.asarray([item[metric] for item in items], dtype=float)
        stderr = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
        summary[metric] = {"value": float(values.mean()), "stderr": stderr, "n_items": len(values)}
    return summary
