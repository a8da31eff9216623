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
    gradient: Callable[[np.ndarray, np.ndarray], np.ndarray]  # d predict / d theta, (R, n, p)
    anchored: bool = False
    accuracy_only: bool = False

    def applies(self, y: np.ndarray, higher: bool) -> str | None:
        """Why this form cannot describe these observations, or None when it can."""
        if self.accuracy_only and not (higher and np.all((y > 0) & (y <= 1))):
            return "needs an accuracy-like metric in (0, 1]"
        return None


def separable_starts(basis: np.ndarray, y: np.ndarray, weights: np.ndarray, intercept: bool = True,
                     count: int = STARTS) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `count` best grid rows of `basis` (K, n) for each row of `y` (R, n), shape (R, count), and
    their linear coefficients (R, count, 2): y ≈ E + A·g solved in closed form by weighted least squares (E = 0
    without an intercept)."""
    w = weights / weights.sum()
    s0, s1, s2 = w.sum(), basis @ w, (basis**2) @ w
    sy, syy, sgy = y @ w, (y**2) @ w, (y * w) @ basis.T
    if intercept:
        determinant = s0 * s2 - s1**2
        safe = np.where(np.abs(determinant) > 1e-300, determinant, np.inf)
        scale = (s0 * sgy - s1 * sy[:, None]) / safe
        level = (sy[:, None] - scale * s1) / s0
    else:
        scale, level = sgy / np.where(s2 > 0, s2, np.inf), np.zeros_like(sgy)
    loss = syy[:, None] - 2 * level * sy[:, None] - 2 * scale * sgy + level**2 * s0 + 2 * level * scale * s1 \
        + scale**2 * s2
    order = np.argsort(np.where(np.isfinite(loss), loss, np.inf), axis=1)[:, :count]
    pick = np.take_along_axis
    return order, np.stack([pick(level, order, 1), pick(scale, order, 1)], axis=-1)


def _rows(starts: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
          ) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """A starts function for y of shape (n,) giving (count, p), or (R, n) giving each row's best start (R, p)."""
    def wrapped(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if np.ndim(y) == 1:
            return starts(x, np.asarray(y, float)[None, :], weights, STARTS)[0]
        return starts(x, np.asarray(y, float), weights, 1)[:, 0]
    return wrapped


def _power(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    level, scale, log_exponent = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
    return level + scale * x[None, :] ** -np.exp(np.clip(log_exponent, -10.0, 3.0))


@_rows
def _power_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    order, linear = separable_starts(x[None, :] ** -EXPONENTS[:, None], y, weights, count=count)
    return np.concatenate([linear, np.log(EXPONENTS[order])[..., None]], axis=-1)


def _power_gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    scale, log_exponent = theta[:, 1:2], theta[:, 2:3]
    exponent = np.exp(np.clip(log_exponent, -10.0, 3.0))
    basis = x[None, :] ** -exponent
    inside = (log_exponent > -10.0) & (log_exponent < 3.0)
    return np.stack([np.ones_like(basis), basis, -scale * basis * np.log(x)[None, :] * exponent * inside], axis=-1)


def _anchored(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    level, scale, log_exponent, log_shift = (theta[:, i:i + 1] for i in range(4))
    shift = np.exp(np.clip(log_shift, -30.0, 30.0))
    return level + scale * (1.0 + x[None, :] / shift) ** -np.exp(np.clip(log_exponent, -10.0, 3.0))


def _anchored_gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    scale, log_exponent, log_shift = theta[:, 1:2], theta[:, 2:3], theta[:, 3:4]
    exponent, shift = np.exp(np.clip(log_exponent, -10.0, 3.0)), np.exp(np.clip(log_shift, -30.0, 30.0))
    ratio = x[None, :] / shift
    basis = (1.0 + ratio) ** -exponent
    by_exponent = -scale * basis * np.log1p(ratio) * exponent * ((log_exponent > -10.0) & (log_exponent < 3.0))
    by_shift = scale * exponent * basis * ratio / (1.0 + ratio) * ((log_shift > -30.0) & (log_shift < 30.0))
    return np.stack([np.ones_like(basis), basis, by_exponent, by_shift], axis=-1)


ANCHORED_GRID = tuple(grid.ravel() for grid in np.meshgrid(EXPONENTS[::2], SHIFTS, indexing="ij"))


@_rows
def _anchored_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    exponents, shifts = ANCHORED_GRID
    basis = (1.0 + x[None, :] / shifts[:, None]) ** -exponents[:, None]
    order, linear = separable_starts(basis, y, weights, count=count)
    return np.concatenate([linear, np.log(exponents[order])[..., None], np.log(shifts[order])[..., None]], axis=-1)


def _log_linear(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return theta[:, 0:1] + theta[:, 1:2] * np.log(x)[None, :]


def _log_linear_gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    logs = np.broadcast_to(np.log(x)[None, :], (len(theta), len(x)))
    return np.stack([np.ones_like(logs), logs], axis=-1)


@_rows
def _log_linear_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    return separable_starts(np.log(x)[None, :], y, weights, count=1)[1]


def _log_accuracy(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    log_scale, log_exponent = theta[:, 0:1], theta[:, 1:2]
    return np.exp(-np.exp(np.clip(log_scale, -30.0, 30.0)) * x[None, :] ** -np.exp(np.clip(log_exponent, -10.0, 3.0)))


def _log_accuracy_gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    log_scale, log_exponent = theta[:, 0:1], theta[:, 1:2]
    exponent = np.exp(np.clip(log_exponent, -10.0, 3.0))
    inner = np.exp(np.clip(log_scale, -30.0, 30.0)) * x[None, :] ** -exponent
    value = np.exp(-inner)
    by_scale = -value * inner * ((log_scale > -30.0) & (log_scale < 30.0))
    by_exponent = value * inner * np.log(x)[None, :] * exponent * ((log_exponent > -10.0) & (log_exponent < 3.0))
    return np.stack([by_scale, by_exponent], axis=-1)


@_rows
def _log_accuracy_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    """Grid in the transformed space −log(acc) = A·x^−α, weights by the delta method (at the mean accuracy)."""
    accuracy = np.clip(y, 1e-6, 1 - 1e-9)
    order, linear = separable_starts(x[None, :] ** -EXPONENTS[:, None], -np.log(accuracy),
                                     weights * accuracy.mean(axis=0) ** 2, intercept=False, count=count)
    return np.stack([np.log(np.maximum(linear[..., 1], 1e-12)), np.log(EXPONENTS[order])], axis=-1)


def _constant(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.repeat(theta[:, 0:1], len(x), axis=1)


def _constant_gradient(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.ones((len(theta), len(x), 1))


@_rows
def _constant_starts(x: np.ndarray, y: np.ndarray, weights: np.ndarray, count: int) -> np.ndarray:
    return (y @ weights / weights.sum())[:, None, None]


def _exp_columns(*columns: int) -> Callable[[np.ndarray], np.ndarray]:
    def natural(theta: np.ndarray) -> np.ndarray:
        values = np.array(theta, dtype=float, copy=True)
        with np.errstate(over="ignore"):
            values[..., list(columns)] = np.exp(values[..., list(columns)])
        return values
    return natural


FORMS: dict[str, Form] = {form.name: form for form in (
    Form("saturating_power_law", ("E", "A", "alpha"), "E + A·(C/C0)^-alpha", _power, _exp_columns(2),
         _power_starts, _power_gradient),
    Form("anchored_power_law", ("E", "A", "alpha", "Cs"), "E + A·(1 + C/(Cs·C0))^-alpha; the base model is C = 0",
         _anchored, _exp_columns(2, 3), _anchored_starts, _anchored_gradient, anchored=True),
    Form("log_linear", ("intercept", "slope"), "intercept + slope·ln(C/C0)", _log_linear, _exp_columns(),
         _log_linear_starts, _log_linear_gradient),
    Form("log_accuracy_power_law", ("A", "alpha"), "exp(-A·(C/C0)^-alpha), i.e. -ln acc = A·(C/C0)^-alpha",
         _log_accuracy, _exp_columns(0, 1), _log_accuracy_starts, _log_accuracy_gradient, accuracy_only=True),
    Form("constant", ("value",), "value (a flat curve: no trend beyond evaluation noise)", _constant,
         _exp_columns(), _constant_starts, _constant_gradient),
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
