"""Functional forms of metric against total compute, registered by name.

x is log(C / C0) with C0 a reference compute, so parameters stay well scaled at any FLOP count.
`sign` is +1 when lower is better (the metric falls towards E) and -1 when higher is better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Form:
    name: str
    parameters: tuple[str, ...]
    predict: Callable[[np.ndarray, np.ndarray, float], np.ndarray]
    initial: Callable[[np.ndarray, np.ndarray, float], list[np.ndarray]]
    bounds: Callable[[float], tuple[list[float], list[float]]]


def _saturating(params: np.ndarray, x: np.ndarray, sign: float) -> np.ndarray:
    asymptote, scale, exponent = params
    return asymptote + sign * scale * np.exp(-exponent * x)


def _saturating_initial(x: np.ndarray, y: np.ndarray, sign: float) -> list[np.ndarray]:
    span = max(float(np.ptp(y)), 1e-6)
    best = float(y.min() if sign > 0 else y.max())
    starts = []
    for exponent in (0.1, 0.3, 0.7, 1.5):
        for gap in (0.5, 2.0):
            asymptote = best - sign * gap * span
            scale = max(sign * (float(np.mean(y)) - asymptote) / float(np.mean(np.exp(-exponent * x))), 1e-6)
            starts.append(np.array([asymptote, scale, exponent]))
    return starts


def _log_linear(params: np.ndarray, x: np.ndarray, sign: float) -> np.ndarray:
    intercept, slope = params
    return intercept + slope * x


def _log_linear_initial(x: np.ndarray, y: np.ndarray, sign: float) -> list[np.ndarray]:
    slope, intercept = np.polyfit(x, y, 1) if np.ptp(x) > 0 else (0.0, float(np.mean(y)))
    return [np.array([intercept, slope])]


FORMS: dict[str, Form] = {
    "saturating_power_law": Form(
        "saturating_power_law", ("E", "A", "alpha"), _saturating, _saturating_initial,
        lambda sign: ([-np.inf, 0.0, 1e-3], [np.inf, np.inf, 5.0])),
    "log_linear": Form(
        "log_linear", ("intercept", "slope"), _log_linear, _log_linear_initial,
        lambda sign: ([-np.inf, -np.inf], [np.inf, np.inf])),
}

LOWER_IS_BETTER_PREFIXES = ("brier", "nll", "bpb", "loss", "perplexity", "ppl")
HIGHER_IS_BETTER_PREFIXES = ("acc", "exact_match", "f1", "p_gold", "mcc")


def higher_is_better(metric: str, overrides: dict[str, bool] | None = None) -> bool:
    """Direction of a metric by its name; unknown names need `fit.higher_is_better`."""
    if overrides and metric in overrides:
        return overrides[metric]
    if metric.startswith(LOWER_IS_BETTER_PREFIXES):
        return False
    if metric.startswith(HIGHER_IS_BETTER_PREFIXES):
        return True
    raise ValueError(f"metric {metric!r}: direction unknown; set fit.higher_is_better: {{{metric}: true|false}} "
                     "(or --higher-is-better on the command line)")
