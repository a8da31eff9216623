"""How sure a curve is when none of the fitted forms is the true curve.

Three parts, each estimated from the grid itself:

- Forms are averaged, not chosen. Each form's weight is its predictive likelihood at the largest compute when
  fitted without it (pseudo-Bayesian model averaging on a leave-future-out point, which under misspecification
  holds up better than marginal-likelihood weights; Yao et al. 2018), and every bootstrap replicate follows one
  form drawn by weight, so the intervals hold the uncertainty of which form as well as the noise given a form.
- Scatter the forms do not explain (seed-to-seed variation that one seed cannot show, and misfit): the excess of
  the mixture's in-sample residuals over the evaluation noise, per degree of freedom. A curve takes the larger
  of its own and the median over the sources of its (task, metric): a few points cannot show a curve's scatter
  alone, so the typical one is its floor, and a curve the forms cannot follow (a source whose metric worsens
  once it repeats) keeps its own misfit without lending it to the others. The bootstrap adds it to every
  replicate before refitting (a residual bootstrap).
- Extrapolation error: each source's mixture is refitted without its largest budget (its weights taken from
  the second-largest, so the held-out point is never used) and predicts it; the excess of those residuals over
  what noise explains calibrates an error whose standard deviation grows linearly with the distance beyond the
  data in ln compute (conformal in spirit: calibrated on held-out residuals of the same procedure, not
  assumed), again the larger of the curve's own and the median over the sources. Each replicate carries one
  standard-normal shock per curve, so a replicate's curve stays a smooth function of compute and bends away
  from the data the further it extrapolates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annealscope.fit.forms import FORMS, Form
from annealscope.fit.resample import Points

MIN_WEIGHT = 0.01  # forms lighter than this are not bootstrapped; the rest are renormalised
GROWTH = 1.0  # the extrapolation error's sd grows as (distance beyond the data)^GROWTH
ROUNDS = 3  # fixed-point rounds: the weights' scale depends on the scatter and slope they help estimate


@dataclass(frozen=True, eq=False)
class HeldOut:
    """A form refitted without a curve's largest computes: prediction − observation at each of them (ascending
    compute), and the bootstrap variance of those predictions."""

    errors: np.ndarray
    variances: np.ndarray


@dataclass(eq=False)  # holds arrays: compared by identity
class FormFit:
    """One form fitted to one curve, with its held-out refits, and after the bootstrap its weight and draws."""

    name: str
    theta: np.ndarray
    rmse: float
    residuals: np.ndarray  # observation − prediction at the curve's own points
    without_largest: HeldOut | None  # None: too few points to refit without it
    without_two: HeldOut | None  # without the two largest computes
    weight: float = 1.0
    draws: np.ndarray | None = None

    @property
    def form(self) -> Form:
        return FORMS[self.name]

    @property
    def held_out(self) -> float:
        """Prediction − observation at the largest compute, fitted without it (NaN: too few points)."""
        return float(self.without_largest.errors[-1]) if self.without_largest else np.nan

    @property
    def free_parameters(self) -> int:
        """Parameters spent on the curve's own points (an anchored form spends one on the base model)."""
        return len(self.form.parameters) - int(self.form.anchored)


@dataclass(frozen=True)
class Calibration:
    """The error terms of one curve."""

    scatter: float = 0.0  # sd of what the forms leave unexplained at each point, beyond evaluation noise
    slope: float = 0.0  # sd of the extrapolation error per unit of ln compute beyond the data


def extrapolation_distance(flops: np.ndarray, lowest: float, highest: float) -> np.ndarray:
    """How far each compute lies outside [lowest, highest], in ln compute (0 inside)."""
    flops = np.maximum(np.asarray(flops, float), 1e-300)
    return np.maximum(np.log(flops / highest), 0.0) + np.maximum(np.log(lowest / flops), 0.0)


def extrapolation_variance(slope: float, distance: float | np.ndarray) -> float | np.ndarray:
    """The variance of the extrapolation error at a distance beyond the data."""
    return (slope * np.asarray(distance) ** GROWTH) ** 2


def likelihood_weights(errors: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """Weights ∝ each form's predictive density of the held-out point, N(error; 0, variance): a flexible form
    whose held-out prediction is uncertain gains less from a small error. A form without a held-out error
    gets the mean log weight of the rest."""
    errors, variances = np.asarray(errors, float), np.maximum(np.asarray(variances, float), 1e-300)
    known = np.isfinite(errors) & np.isfinite(variances)
    with np.errstate(all="ignore"):
        log_density = np.where(known, -0.5 * errors**2 / variances - 0.5 * np.log(variances), 0.0)
    log_weights = np.where(known, log_density, log_density[known].mean() if known.any() else 0.0)
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()


def _predictive(refits: list[HeldOut | None], index: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Errors and predictive variances (the refit's own plus `noise`) of each form at one held-out compute."""
    errors = np.array([refit.errors[index] if refit else np.nan for refit in refits])
    variances = np.array([refit.variances[index] if refit else np.nan for refit in refits]) + noise
    return errors, variances


def form_weights(points: Points, fits: list[FormFit], calibration: Calibration) -> np.ndarray:
    """Each form's weight from its prediction of the largest compute when fitted without it."""
    order = np.argsort(points.flops)
    step = np.log(points.flops[order[-1]] / points.flops[order[-2]]) if len(order) > 1 else 0.0
    noise = points.sigma[order[-1]] ** 2 + calibration.scatter**2 + extrapolation_variance(calibration.slope, step)
    return likelihood_weights(*_predictive([fit.without_largest for fit in fits], -1, noise))


def held_out_residuals(points: Points, fits: list[FormFit], calibration: Calibration
                       ) -> list[tuple[float, float, float]]:
    """(residual, distance, predictable variance) of the mixture predicting the largest compute one and two
    budgets ahead (refitted without the largest, and without the two largest), with weights from each form's
    prediction of the second-largest compute in the refit without the two largest, so the largest point is
    never used; the variance is the noise of the prediction (its own and the spread between forms) and of the
    observation. Empty where the curve has fewer than three budgets."""
    if len(points.flops) < 3:
        return []
    order = np.argsort(points.flops)
    last, second, third = order[-1], order[-2], order[-3]
    step = np.log(points.flops[second] / points.flops[third])
    noise = points.sigma[second] ** 2 + calibration.scatter**2 + extrapolation_variance(calibration.slope, step)
    weights = likelihood_weights(*_predictive([fit.without_two for fit in fits], 0, noise))
    observation = points.sigma[last] ** 2 + calibration.scatter**2
    residuals = []
    for held_out, start in (("without_largest", second), ("without_two", third)):
        refits = [(weight, refit) for weight, refit in zip(weights, (getattr(fit, held_out) for fit in fits),
                                                              strict=True)
                  if refit is not None and np.isfinite(refit.variances[-1])]
        if not refits:
            continue
        share = np.array([weight for weight, _ in refits])
        share = share / share.sum() if share.sum() > 0 else np.full(len(refits), 1 / len(refits))
        errors = np.array([refit.errors[-1] for _, refit in refits])
        spread = np.array([refit.variances[-1] for _, refit in refits])
        mean = float(share @ errors)
        predictable = float(share @ (spread + (errors - mean) ** 2)) + observation
        residuals.append((mean, float(np.log(points.flops[last] / points.flops[start])), predictable))
    return residuals


def calibrate(curves: list[tuple[Points, list[FormFit]]]) -> list[Calibration]:
    """The error terms of each curve of one (task, metric): for each of scatter and extrapolation slope, the
    larger of the curve's own and the median over the curves. A curve without fitted forms gets none."""
    calibrations = [Calibration()] * len(curves)
    fitted = [index for index, (_, fits) in enumerate(curves) if fits]
    for _ in range(ROUNDS):
        own = np.array([(_own_scatter(*curves[index], calibrations[index]),
                         _own_slope(*curves[index], calibrations[index])) for index in fitted], float).reshape(-1, 2)
        scatters, slopes = _at_least_typical(own[:, 0]), _at_least_typical(own[:, 1])
        for index, variance, rate in zip(fitted, scatters, slopes, strict=True):
            calibrations[index] = Calibration(float(np.sqrt(variance)), float(np.sqrt(rate)))
    return calibrations


def _own_scatter(points: Points, fits: list[FormFit], calibration: Calibration) -> float:
    """The excess of the mixture's in-sample residuals over the evaluation noise, per degree of freedom
    (a variance; NaN without a degree of freedom)."""
    weights = form_weights(points, fits, calibration)
    residuals = weights @ np.stack([fit.residuals for fit in fits])
    dof = len(points.flops) - float(weights @ [fit.free_parameters for fit in fits])
    return _excess_per(float(residuals @ residuals) - dof * float(np.mean(points.sigma**2)), dof)


def _own_slope(points: Points, fits: list[FormFit], calibration: Calibration) -> float:
    """The excess of the held-out residuals over what noise explains, per squared distance beyond the data
    (a variance per unit of ln compute; NaN where the curve has too few budgets to hold any out)."""
    held_out = held_out_residuals(points, fits, calibration)
    return _excess_per(sum(residual**2 - predictable for residual, _, predictable in held_out),
                       sum(extrapolation_variance(1.0, distance) for _, distance, _ in held_out))


def _excess_per(excess: float, amount: float) -> float:
    """A non-negative excess per unit of `amount` (NaN where there is none of it)."""
    return max(excess, 0.0) / amount if amount > 0 else np.nan


def _at_least_typical(values: np.ndarray) -> np.ndarray:
    """Each value raised to the median of the known ones (unknown ones take the median; 0 if none is known)."""
    known = np.isfinite(values)
    typical = float(np.median(values[known])) if known.any() else 0.0
    return np.where(known, np.maximum(values, typical), typical)
