"""Functional forms of a metric against total compute, registered by name.

Every form is written in x = C / C0, with C0 the geometric mean of the curve's grid compute, so its
parameters stay well scaled at any FLOP count. A form predicts from unconstrained parameters
(exponents and scales as logs), so a batched solver can move freely; `natural` maps them back for
reporting. Forms defined at C = 0 are `anchored`: the base model (budget 0) is one of their points.
Starting points come from a grid over the nonlinear parameters with the linear ones solved in
closed form (weighted least squares), the best few of which the solver refines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

EXPONENTS = np.geomspace(0.02, 4.0, 48)
SHIFTS = np.geomspace(1e-3, 10.0, 12)
STARTS = 3


@dataclass(frozen=True)
class Form:
    name: str
    parameters: tuple[str, ...]
    formula: str
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
    natural: Callable[[np.ndarray], np.ndarray]
    starts: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    anchored: bool = False
    accuracy_only: bool = False

    def applies(self, y: np.ndarray, higher: bool) -> str | None:
        """Why this form cannot describe these observations, or None when it can."""
        if self.accuracy_only and not (higher and np.all((y > 0) & (y <= 1))):
            return "needs an accuracy-like metric in (0, 1]"
        return None


def separable_starts(basis: np.ndarray, y: np.ndarray, weights: np.ndarray, intercept: bool = True,
                     count: int = STARTS) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `count` best grid rows of `basis` (K, n) and their linear coefficients (K, 2):
    y ≈ E + A·g solved in closed form by weighted least squares (E = 0 without an intercept)."""
    w = weights / weights.sum()
    s0, s1, s2 = w.sum(), basis @ w, (basis**2) @ w
    sy, sgy = float(w @ y), basis @ (w * y)
    if intercept:
        determinant = s0 * s2 - s1**2
        safe = np.where(np.abs(determinant) > 1e-300, determinant, np.inf)
        scale = (s0 * sgy - s1 * sy) / safe
        level = (sy - scale * s1) / s0
    else:
        scale, level = sgy / np.where(s2 > 0, s2, np.inf), np.zeros(len(basis))
    residual = y[None, :] - level[:, None] - scale[:, None] * basis
    loss = (residual**2) @ weights
    order = np.argsort(np.where(np.isfinite(loss), loss, np.inf))[:count]
    return order, np.stack([level, scale], axis=1)[order]


def _power(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    level, scale, log_exponent = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    return level + scale * x[None, :] ** -np.exp(np.clip(log_exponent, -10.0, 3.0))


def _power_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    order, linear = separable_starts(x[None, :] ** -EXPONENTS[:, None], y, weights)
    return np.column_stack([linear, np.log(EXPONENTS[order])])


def _anchored(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    level, scale, log_exponent, log_shift = (theta[:, i:i + 1] for i in range(4))
    shift = np.exp(np.clip(log_shift, -30.0, 30.0))
    return level + scale * (1.0 + x[None, :] / shift) ** -np.exp(np.clip(log_exponent, -10.0, 3.0))


def _anchored_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    exponents, shifts = (grid.ravel() for grid in np.meshgrid(EXPONENTS[::2], SHIFTS, indexing="ij"))
    basis = (1.0 + x[None, :] / shifts[:, None]) ** -exponents[:, None]
    order, linear = separable_starts(basis, y, weights)
    return np.column_stack([linear, np.log(exponents[order]), np.log(shifts[order])])


def _log_linear(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return theta[:, 0:1] + theta[:, 1:2] * np.log(x)[None, :]


def _log_linear_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    _, linear = separable_starts(np.log(x)[None, :], y, weights, count=1)
    return linear


def _log_accuracy(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    log_scale, log_exponent = theta[:, 0:1], theta[:, 1:2]
    return np.exp(-np.exp(np.clip(log_scale, -30.0, 30.0)) * x[None, :] ** -np.exp(np.clip(log_exponent, -10.0, 3.0)))


def _log_accuracy_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Grid in the transformed space −log(acc) = A·x^−α, weights by the delta method."""
    accuracy = np.clip(y, 1e-6, 1 - 1e-9)
    order, linear = separable_starts(x[None, :] ** -EXPONENTS[:, None], -np.log(accuracy), weights * accuracy**2,
                                     intercept=False)
    return np.column_stack([np.log(np.maximum(linear[:, 1], 1e-12)), np.log(EXPONENTS[order])])


def _constant(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.repeat(theta[:, 0:1], len(x), axis=1)


def _constant_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return np.array([[float(weights @ y / weights.sum())]])


def _exp_columns(*columns: int) -> Callable[[np.ndarray], np.ndarray]:
    def natural(theta: np.ndarray) -> np.ndarray:
        values = np.array(theta, dtype=float, copy=True)
        with np.errstate(over="ignore"):
            values[..., list(columns)] = np.exp(values[..., list(columns)])
        return values
    return natural


FORMS: dict[str, Form] = {form.name: form for form in (
    Form("saturating_power_law", ("E", "A", "alpha"), "E + A·(C/C0)^-alpha", _power, _exp_columns(2),
         _power_starts),
    Form("anchored_power_law", ("E", "A", "alpha", "Cs"), "E + A·(1 + C/(Cs·C0))^-alpha; the base model is C = 0",
         _anchored, _exp_columns(2, 3), _anchored_starts, anchored=True),
    Form("log_linear", ("intercept", "slope"), "intercept + slope·ln(C/C0)", _log_linear, _exp_columns(),
         _log_linear_starts),
    Form("log_accuracy_power_law", ("A", "alpha"), "exp(-A·(C/C0)^-alpha), i.e. -ln acc = A·(C/C0)^-alpha",
         _log_accuracy, _exp_columns(0, 1), _log_accuracy_starts, accuracy_only=True),
    Form("constant", ("value",), "value (a flat curve: no trend beyond evaluation noise)", _constant,
         _exp_columns(), _constant_starts),
)}

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
