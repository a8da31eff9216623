"""Fitting: a pure function from a metrics table (and optionally its per-item results) to curves.

Per (source, task, metric): seeds are averaged per budget; every configured form is fitted by robust least
squares (Huber loss, residuals in units of each point's standard error, several starts), and refitted without
the largest budget and without the two largest. The forms are then averaged, not chosen, and two error terms
are estimated per curve, with the median over the sources of its (task, metric) as their floor (see
`mixture`). A curve whose trend and curvature over the grid are both within noise is reported as flat,
and a constant joins its forms. Uncertainty: every replicate of the paired bootstrap (items, and seeds where
present; see `resample`) follows one form drawn by weight and is refitted in it, its scatter added, all of a
form's replicates in one batch; beyond the data each replicate also carries its extrapolation error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from annealscope.core.config import schema_default
from annealscope.core.layout import BASE_SOURCE
from annealscope.core.tables import ROW_KEY, check_table
from annealscope.fit.forms import FORMS, Form, higher_is_better
from annealscope.fit.mixture import (
    MIN_WEIGHT,
    Calibration,
    FormFit,
    HeldOut,
    calibrate,
    extrapolation_distance,
    extrapolation_variance,
    form_weights,
    held_out_residuals,
)
from annealscope.fit.resample import Points, budget_points, check_items, replicate_values
from annealscope.fit.solver import huber, huber_lm
from annealscope.fit.suites import with_suites

INTERVAL = (5.0, 95.0)
DEFAULT_DECISION_POINTS = 8
DENSE_POINTS = 60  # per curve, for the figures
REFIT_ITERATIONS, REFIT_TOLERANCE = 30, 1e-6  # a replicate's refit stops there: its error is far below its spread


@dataclass
class FitSettings:
    """The `fit:` block of the config, with the schema's defaults, plus the grid's micro-anneal budget."""

    forms: list[str] = schema_default("fit", "forms")
    target_flops: list[float] = schema_default("fit", "target_flops")
    bootstrap: int = schema_default("fit", "bootstrap")
    micro_anneal_budget: int | None = None  # grid.micro_anneal_budget; None: the table's smallest budget
    higher_is_better: dict[str, bool] = schema_default("fit", "higher_is_better")
    seed: int = 0
    metrics: list[str] | None = schema_default("fit", "metrics")  # None: every metric of the table
    allocate_flops: list[float] = schema_default("fit", "allocate_flops")
    allocate_usd: list[float] = schema_default("fit", "allocate_usd")
    max_tokens: dict[str, float] = schema_default("fit", "max_tokens")
    suites: dict[str, list[str]] = schema_default("fit", "suites")
    groups: dict[str, dict] = field(default_factory=dict)  # lm-eval's groups, from task_groups.json: suites too


@dataclass
class CurveFit:
    source: str
    task: str
    metric: str
    higher: bool
    reference: float
    n_points: int
    status: str
    forms_tried: str
    form: str | None = None  # the heaviest form, whose parameters fits.csv reports
    theta: np.ndarray | None = None
    draws: np.ndarray | None = None
    in_sample_rmse: float = np.nan
    leave_largest_out_error: float = np.nan
    lowest: float = np.nan
    highest: float = np.nan
    usd_per_flop: float = np.nan
    flops_per_token: float = np.nan
    available_tokens: float = np.nan
    floor: float = 0.0  # the source's acquisition compute: no decision buys it with less in all
    noise: float = np.nan  # a typical point's standard error: what one more observation would carry
    components: list[FormFit] = field(default_factory=list)  # the forms averaged, heaviest first
    choice: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=int))  # each replicate's form
    shocks: np.ndarray = field(default_factory=lambda: np.zeros(1))  # each replicate's extrapolation error, in sds
    scatter: float = 0.0
    extrapolation_sd: float = 0.0  # per unit of ln compute beyond the data

    @property
    def usable(self) -> bool:
        return bool(self.components)

    @property
    def better(self) -> float:
        """+1 when higher is better, −1 when lower is: multiply a metric by it to make larger better."""
        return 1.0 if self.higher else -1.0

    @property
    def anchored(self) -> bool:
        """Every form averaged is anchored at the base model, so the curve may be read below its grid."""
        return all(fit.form.anchored for fit in self.components)

    @property
    def weights(self) -> np.ndarray:
        return np.array([fit.weight for fit in self.components])

    def affords(self, flops: np.ndarray) -> np.ndarray:
        """Whether each compute covers the source's acquisition (its floor): below it the source cannot be
        bought, whatever its curve says there."""
        return np.asarray(flops, float) >= self.floor * (1 - 1e-9)

    def form_weights(self) -> dict[str, float]:
        return {fit.name: round(fit.weight, 3) for fit in self.components}

    def predict(self, flops: np.ndarray) -> np.ndarray:
        """The weighted average of the forms' point fits."""
        return self.weights @ self.form_predictions(flops)

    def form_predictions(self, flops: np.ndarray) -> np.ndarray:
        """Every form's point fit, shape (forms, len(flops))."""
        x = np.asarray(flops, float) / self.reference
        return np.stack([fit.form.predict(fit.theta[None, :], x)[0] for fit in self.components])

    def form_draws(self, flops: np.ndarray) -> np.ndarray:
        """Every form's bootstrap refits, shape (forms, draws, len(flops)), without the extrapolation error."""
        x = np.asarray(flops, float) / self.reference
        with np.errstate(all="ignore"):
            return np.stack([fit.form.predict(fit.draws, x) for fit in self.components])

    def extrapolation_error(self, flops: np.ndarray) -> np.ndarray:
        """Each replicate's extrapolation error at each compute (draws, len(flops)), beyond [lowest, highest]."""
        distance = extrapolation_distance(flops, self.lowest, self.highest)
        return self.shocks[:, None] * np.sqrt(extrapolation_variance(self.extrapolation_sd, distance))[None, :]

    def predict_draws(self, flops: np.ndarray) -> np.ndarray:
        """Predictions of every replicate, shape (draws, len(flops)): its form's refit plus its extrapolation
        error; NaN rows where a refit failed."""
        x = np.asarray(flops, float) / self.reference
        predictions = np.full((len(self.choice), len(x)), np.nan)
        with np.errstate(all="ignore"):
            for index, fit in enumerate(self.components):
                rows = self.choice == index
                predictions[rows] = fit.form.predict(fit.draws[rows], x)
        return predictions + self.extrapolation_error(flops)


@dataclass
class FitResult:
    fits: pd.DataFrame
    predictions: pd.DataFrame
    curves: list[CurveFit]
    decision_flops: np.ndarray
    base_values: dict[tuple[str, str], float]
    curve_frame: pd.DataFrame
    table: pd.DataFrame  # the rows fitted, those of suites and groups included


def zero_stderr_rows(table: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """Rows whose standard error is zero and whose items the bootstrap cannot redraw: they carry no evaluation
    noise into the intervals, which then understate it."""
    zero = table[(table["stderr"] == 0) & np.isfinite(table["value"])]
    if items is None or zero.empty:
        return zero
    itemised = items[ROW_KEY].drop_duplicates()
    return zero.merge(itemised, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")


def check_settings(settings: FitSettings) -> None:
    unknown = [form for form in settings.forms if form not in FORMS]
    if unknown:
        raise ValueError(f"unknown fit form(s) {unknown}; registered: {sorted(FORMS)}")


def fit_table(table: pd.DataFrame, settings: FitSettings, items: pd.DataFrame | None = None,
              every_form: bool = False) -> FitResult:
    """Fit every (source, task, metric) of a metrics table; predictions at every grid and target compute.
    `every_form` refits every replicate in every form, not only in its own (for the planner)."""
    check_table(table)
    check_settings(settings)
    if items is not None:
        check_items(items)
    table = _fitted_rows(table, settings).reset_index(drop=True)
    rng = np.random.default_rng(settings.seed)
    table, replicates = with_suites(table, settings.suites, replicate_values(table, items, settings.bootstrap, rng),
                                    settings.groups)
    curves, base_values = [], {}
    for (task, metric), group in table.groupby(["task", "metric"], sort=True):
        higher = higher_is_better(metric, settings.higher_is_better)
        base_rows = group[group["source"] == BASE_SOURCE]
        base = budget_points(base_rows, replicates, rng) if len(base_rows) else None
        if base is not None:
            base_values[(task, metric)] = float(base.value[0])
        drafts = [draft_curve(rows, replicates, base, source, task, metric, higher, settings, rng)
                  for source, rows in group[group["source"] != BASE_SOURCE].groupby("source", sort=True)]
        calibrations = calibrate([(draft.points, draft.fits) for draft in drafts])
        curves += [finish_curve(draft, calibration, base, rng, every_form)
                   for draft, calibration in zip(drafts, calibrations, strict=True)]
    decision_flops = decision_points(table, settings.target_flops)
    grid = np.unique(np.concatenate([table.loc[table["total_flops"] > 0, "total_flops"].to_numpy(float),
                                     np.asarray(settings.target_flops, float)]))
    predictions, dense = [], []
    for curve in (curve for curve in curves if curve.usable):  # the grid and the figure's dense line in one pass
        affordable = grid[curve.affords(grid)]
        line = np.geomspace(curve.lowest, max(curve.highest, grid.max()), DENSE_POINTS)
        rows = prediction_rows(curve, np.concatenate([affordable, line]))
        predictions.append(rows.iloc[:len(affordable)])
        dense.append(rows.iloc[len(affordable):])
    return FitResult(fits=fits_frame(curves), predictions=_concat(predictions), curves=curves,
                     decision_flops=decision_flops, base_values=base_values,
                     curve_frame=_concat(dense).reset_index(drop=True), table=table)


def _fitted_rows(table: pd.DataFrame, settings: FitSettings) -> pd.DataFrame:
    if settings.metrics is None:
        return table
    chosen = table[table["metric"].isin(settings.metrics)]
    if chosen.empty:
        raise ValueError(f"none of the metrics {settings.metrics} is in the table; it has "
                         f"{sorted(set(table['metric']))}")
    return chosen


@dataclass
class Draft:
    """A curve before its bootstrap: every form that applies, fitted to the observations."""

    curve: CurveFit
    points: Points | None
    fits: list[FormFit]


def draft_curve(rows: pd.DataFrame, replicates: np.ndarray, base: Points | None, source: str, task: str,
                metric: str, higher: bool, settings: FitSettings, rng: np.random.Generator) -> Draft:
    """One source's observations for one (task, metric), fitted in every form; when nothing can be fitted,
    the status says why."""
    finite = np.isfinite(rows["value"].to_numpy(float)) & (rows["total_flops"].to_numpy(float) > 0)
    tried = [f"{int((~finite).sum())} non-finite value(s) or zero-compute row(s) dropped"] if (~finite).any() else []
    points = budget_points(rows[finite], replicates, rng) if finite.any() else None
    n_points = 0 if points is None else len(points.flops)
    reference = float(np.exp(np.mean(np.log(points.flops)))) if n_points else 1.0
    curve = CurveFit(source, task, metric, higher, reference, n_points, "", "",
                     lowest=float(points.flops.min()) if n_points else np.nan,
                     highest=float(points.flops.max()) if n_points else np.nan, **costs(rows[finite], source, settings))
    if n_points:
        curve.noise = float(np.median(points.sigma))
    if n_points < 2:
        curve.status = f"{n_points} budget(s) with a finite value: a curve needs at least 2; add budgets"
        curve.forms_tried = "; ".join([*tried, curve.status])
        return Draft(curve, points, [])
    if np.ptp(points.value) == 0:
        curve.status = f"no variance: every value is {points.value[0]:.4g}; nothing to fit"
        curve.forms_tried = "; ".join([*tried, curve.status])
        return Draft(curve, points, [])
    fits = []
    for name in settings.forms:
        outcome = _try_form(FORMS[name], points, base, reference, higher)
        tried.append(f"{name}: {outcome if isinstance(outcome, str) else _summary(outcome)}")
        if not isinstance(outcome, str):
            fits.append(outcome)
    curve.forms_tried = "; ".join(tried)
    if not fits:
        curve.status = "; ".join(tried) or "no form configured"
        return Draft(curve, points, [])
    curve.status = "ok"
    flat = flat_trend(points)
    if flat:  # a trend within noise may still be a trend: the constant joins the forms, it does not replace them
        if "constant" not in settings.forms:
            fits.append(_try_form(FORMS["constant"], points, base, reference, higher))
        curve.status = f"flat: {flat}; a constant is among the forms averaged"
    return Draft(curve, points, fits)


def costs(rows: pd.DataFrame, source: str, settings: FitSettings) -> dict[str, float]:
    """A source's dollars per FLOP and FLOPs per token (medians over its cells), the unique tokens it has
    (`--max-tokens`, else the table's `available_tokens`; NaN where the table does not say), and its floor:
    the least acquisition compute of its cells (0 where the table has none)."""
    flops = rows["total_flops"].to_numpy(float)
    usd = rows["total_usd"].to_numpy(float) if "total_usd" in rows else np.full(len(rows), np.nan)
    tokens = rows["budget_tokens"].to_numpy(float)
    available = settings.max_tokens.get(source, rows["available_tokens"].max() if "available_tokens" in rows
                                        else np.nan)
    with np.errstate(all="ignore"):
        return {"usd_per_flop": float(np.nanmedian(usd / flops)) if np.isfinite(usd).any() else np.nan,
                "flops_per_token": float(np.median(flops / tokens)) if len(rows) else np.nan,
                "available_tokens": float(available),
                "floor": float(np.nanmin(rows["acquisition_flops"].to_numpy(float), initial=np.inf))
                if "acquisition_flops" in rows and rows["acquisition_flops"].notna().any() else 0.0}


def _summary(fit: FormFit) -> str:
    held_out = f"{abs(fit.held_out):.4g}" if np.isfinite(fit.held_out) else "n/a"
    return f"rmse={fit.rmse:.4g} leave_largest_out={held_out}"


def finish_curve(draft: Draft, calibration: Calibration, base: Points | None, rng: np.random.Generator,
                 every_form: bool = False) -> CurveFit:
    """Weigh the forms, give each replicate its form (drawn by weight) and its extrapolation shock, and refit
    each replicate, with its scatter added, in its form; `every_form` refits every replicate in every
    form (the planner reweighs the forms per hypothetical result)."""
    curve, points = draft.curve, draft.points
    if not draft.fits:
        return curve
    weights = form_weights(points, draft.fits, calibration)
    heavy = weights >= MIN_WEIGHT
    kept = [fit for fit, keep in zip(draft.fits, heavy, strict=True) if keep]
    for fit, weight in zip(kept, weights[heavy] / weights[heavy].sum(), strict=True):
        fit.weight = float(weight)
    kept.sort(key=lambda fit: -fit.weight)
    draws = points.replicates.shape[0]
    if draws:
        curve.choice = rng.choice(len(kept), size=draws, p=[fit.weight for fit in kept])
        curve.shocks = rng.standard_normal(draws)
    scatter = rng.normal(0.0, calibration.scatter, points.replicates.shape)
    for index, fit in enumerate(kept):
        rows = np.ones(draws, dtype=bool) if every_form else curve.choice == index
        fit.draws = bootstrap(fit.form, fit.theta, points, base, curve.reference, scatter, calibration.scatter, rows)
    curve.components = kept
    heaviest = kept[0]
    curve.form, curve.theta, curve.draws, curve.in_sample_rmse = heaviest.name, heaviest.theta, heaviest.draws, \
        heaviest.rmse
    held_out = held_out_residuals(points, draft.fits, calibration)
    curve.leave_largest_out_error = abs(held_out[0][0]) if held_out else abs(heaviest.held_out)
    curve.scatter, curve.extrapolation_sd = calibration.scatter, calibration.slope
    return curve


def _observations(form: Form, points: Points, base: Points | None, reference: float, replicates: bool = False):
    """x, y (or replicates) and sigma of a curve, with the base model first for anchored forms."""
    x, y, sigma = points.flops / reference, points.replicates if replicates else points.value, points.sigma
    if form.anchored and base is not None:
        x = np.concatenate([[0.0], x])
        y = np.concatenate([base.replicates if replicates else base.value, y], axis=-1)
        sigma = np.concatenate([base.sigma, sigma])
    return x, y, sigma


def point_fits(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, subsets: list[np.ndarray]
               ) -> list[np.ndarray | None]:
    """For each subset of the points (a boolean mask), the best of the form's grid starts after robust
    refinement, or None when none converges; all subsets in one batch, the points left out given no weight."""
    starts = [form.starts(x[keep], y[keep], sigma[keep] ** -2.0) for keep in subsets]
    scales = np.concatenate([np.repeat(np.where(keep, sigma, np.inf)[None, :], len(rows), axis=0)
                             for keep, rows in zip(subsets, starts, strict=True)])
    theta, loss = huber_lm(form.predict, form.gradient, np.concatenate(starts), x, y, scales)
    fits, offset = [], 0
    for rows in starts:
        chosen = loss[offset:offset + len(rows)]
        fits.append(theta[offset + int(np.nanargmin(chosen))] if np.isfinite(chosen).any() else None)
        offset += len(rows)
    return fits


def _try_form(form: Form, points: Points | None, base: Points | None, reference: float,
              higher: bool) -> FormFit | str:
    """One form fitted to a curve, and refitted without its largest and its two largest computes, or why it
    does not apply."""
    if points is None:
        return "no points"
    if form.anchored and base is None:
        return "needs the base model's row (budget 0) as its anchor"
    x, y, sigma = _observations(form, points, base, reference)
    why = form.applies(y, higher)
    if why:
        return why
    if len(np.unique(x)) < len(form.parameters):
        return f"too few points ({len(np.unique(x))} distinct computes < {len(form.parameters)} parameters)"
    computes = np.unique(x)
    tops = [top for top in (1, 2) if len(computes) > top
            and len(np.unique(x[x < computes[-top]])) >= len(form.parameters)]
    subsets = [np.ones(len(x), dtype=bool), *(x < computes[-top] for top in tops)]
    theta, *refits = point_fits(form, x, y, sigma, subsets)
    if theta is None:
        return "did not converge"
    held_out = {top: _held_out(form, x, y, sigma, keep, refit)
                for top, keep, refit in zip(tops, subsets[1:], refits, strict=True)}
    grid = x > 0
    residuals = y[grid] - form.predict(theta[None, :], x[grid])[0]
    return FormFit(form.name, theta, float(np.sqrt(np.mean(residuals**2))), residuals, held_out.get(1),
                   held_out.get(2))


def _held_out(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, keep: np.ndarray,
              theta: np.ndarray | None) -> HeldOut | None:
    """A refit on the points `keep`: its errors at the computes it left out, and their variance from the noise
    of the points it kept (linearised at the refit: gᵀ (Jᵀ Σ⁻¹ J)⁺ g)."""
    if theta is None:
        return None
    targets = np.unique(x[~keep])
    observed = np.array([y[x == target].mean() for target in targets])
    errors = form.predict(theta[None, :], targets)[0] - observed
    with np.errstate(all="ignore"):
        fitted = form.gradient(theta[None, :], x[keep])[0] / sigma[keep][:, None]
        ahead = form.gradient(theta[None, :], targets)[0]
        variances = np.einsum("tp,pq,tq->t", ahead, np.linalg.pinv(fitted.T @ fitted), ahead)
    return HeldOut(errors, np.where(np.isfinite(variances), np.maximum(variances, 0.0), np.inf))


def flat_trend(points: Points) -> str | None:
    """Why the curve is flat, else None. Flat: the 90% bootstrap intervals of its weighted log-linear trend and
    of the curvature of its weighted quadratic in log compute both contain zero, so a curve that falls and
    rises again, with no trend from end to end, is not flat."""
    if len(points.flops) < 2 or not len(points.replicates):
        return None
    log_flops = np.log(points.flops)
    weights = points.sigma**-2.0
    slope = _top_term(log_flops, weights, points.replicates, 1)
    curvature = _top_term(log_flops, weights, points.replicates, 2) if len(np.unique(log_flops)) >= 3 else (0, 0)
    if all(lower <= 0.0 <= upper for lower, upper in (slope, curvature)):
        span = float(np.ptp(log_flops))
        return (f"change over the grid {slope[0] * span:+.3g} to {slope[1] * span:+.3g} (90% interval) includes "
                "zero, and so does the curvature; no trend beyond evaluation noise")
    return None


def _top_term(x: np.ndarray, weights: np.ndarray, replicates: np.ndarray, degree: int) -> np.ndarray:
    """The 90% bootstrap interval of the highest term of a weighted polynomial of `degree` in x (centred), fitted
    to each replicate: the slope for degree 1, the curvature for 2."""
    root = np.sqrt(weights)
    design = np.vander(x - (weights @ x) / weights.sum(), degree + 1) * root[:, None]
    return np.percentile((replicates * root) @ np.linalg.pinv(design)[0], INTERVAL)


def bootstrap(form: Form, theta: np.ndarray, points: Points, base: Points | None, reference: float,
              scatter: np.ndarray, scatter_sd: float, rows: np.ndarray) -> np.ndarray:
    """Refits of the chosen replicates (`rows`) plus their scatter draws (replicates × points), weighted by
    evaluation noise and scatter together, as (replicates, parameters): NaN in rows not chosen or whose refit
    failed. Without replicates (bootstrap 0), the point fit alone."""
    if not len(points.replicates):
        return theta[None, :]
    noisy = replace(points, sigma=np.sqrt(points.sigma**2 + scatter_sd**2),
                    replicates=points.replicates[rows] + scatter[rows])
    base = replace(base, replicates=base.replicates[rows]) if base is not None else None
    x, y, sigma = _observations(form, noisy, base, reference, replicates=True)
    draws = np.full((len(rows), len(theta)), np.nan)
    if rows.any():
        draws[rows] = refit(form, theta, x, y, sigma)
    return draws


def refit(form: Form, theta: np.ndarray, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Each replicate (row of y) refitted from the better of two starts, the point fit or its own best grid start:
    a warm start alone stays in the point fit's basin (a curve that looks saturated stays so in every replicate)
    and understates how far the replicates disagree beyond the grid. NaN rows where a refit failed."""
    warm = np.repeat(theta[None, :], len(y), axis=0)
    own = form.starts(x, y, sigma**-2.0)
    with np.errstate(all="ignore"):
        losses = [huber((y - form.predict(start, x)) / sigma) for start in (warm, own)]
    starts = np.where((np.nan_to_num(losses[1], nan=np.inf) < np.nan_to_num(losses[0], nan=np.inf))[:, None],
                      own, warm)
    draws, loss = huber_lm(form.predict, form.gradient, starts, x, y, sigma, REFIT_ITERATIONS, REFIT_TOLERANCE)
    draws[~np.isfinite(loss)] = np.nan
    return draws


def decision_points(table: pd.DataFrame, targets: list[float]) -> np.ndarray:
    """The computes decisions are made at: the targets, or else log-spaced points across the grid."""
    if targets:
        return np.unique(np.asarray(targets, dtype=float))
    grid = table.loc[(table["total_flops"] > 0) & (table["source"] != BASE_SOURCE), "total_flops"].to_numpy(float)
    if not len(grid):
        return grid
    return np.unique(np.array([float(f"{value:.2g}") for value in np.geomspace(grid.min(), grid.max(),
                                                                               DEFAULT_DECISION_POINTS)]))


def interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 90% interval of bootstrap draws along axis 0, ignoring failed refits (rows with a NaN)."""
    draws = np.asarray(draws, dtype=float)
    finite = draws[~np.isnan(draws).reshape(len(draws), -1).any(axis=1)]
    if not len(finite):
        nan = np.full(draws.shape[1:], np.nan)
        return nan, nan
    with np.errstate(invalid="ignore"):  # inf - inf where an exponent overflowed in every replicate
        lower, upper = np.percentile(finite, INTERVAL, axis=0)
    return lower, upper


def prediction_rows(curve: CurveFit, flops: np.ndarray) -> pd.DataFrame:
    lower, upper = interval(curve.predict_draws(flops))
    gain = marginal_gain(curve, flops)
    return pd.DataFrame({"source": curve.source, "task": curve.task, "metric": curve.metric, "total_flops": flops,
                         "predicted": curve.predict(flops), "lower": lower, "upper": upper,
                         "extrapolated": (flops < curve.lowest * 0.999) | (flops > curve.highest * 1.001),
                         "gain_per_1e18_flops": gain * 1e18, "total_usd": flops * curve.usd_per_flop,
                         "gain_per_usd": gain / curve.usd_per_flop})


def marginal_gain(curve: CurveFit, flops: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Improvement of the fitted metric per extra FLOP at each compute (positive is better, whichever
    direction the metric improves in), by a central difference on the point fit."""
    flops = np.asarray(flops, float)
    change = curve.predict(flops * (1 + step)) - curve.predict(flops * (1 - step))
    return curve.better * change / (2 * step * flops)


def fits_frame(curves: list[CurveFit]) -> pd.DataFrame:
    rows = []
    for curve in curves:
        params = lower = upper = {}
        if curve.usable:
            form = FORMS[curve.form]
            names = [*form.parameters, "C0"]
            low, high = interval(form.natural(curve.draws))
            params = dict(zip(names, [*form.natural(curve.theta).tolist(), curve.reference], strict=True))
            lower = dict(zip(names, [*low.tolist(), curve.reference], strict=True))
            upper = dict(zip(names, [*high.tolist(), curve.reference], strict=True))
        rows.append({"source": curve.source, "task": curve.task, "metric": curve.metric, "form": curve.form,
                     "form_weights": json.dumps(curve.form_weights()), "params": json.dumps(params),
                     "params_lower": json.dumps(lower),
                     "params_upper": json.dumps(upper), "n_points": curve.n_points,
                     "in_sample_rmse": curve.in_sample_rmse, "leave_largest_out_error": curve.leave_largest_out_error,
                     "scatter": curve.scatter if curve.usable else np.nan,
                     "extrapolation_sd": curve.extrapolation_sd if curve.usable else np.nan,
                     "status": curve.status, "forms_tried": curve.forms_tried})
    return pd.DataFrame(rows, columns=FITS_COLUMNS)


FITS_COLUMNS = ["source", "task", "metric", "form", "form_weights", "params", "params_lower", "params_upper",
                "n_points", "in_sample_rmse", "leave_largest_out_error", "scatter", "extrapolation_sd", "status",
                "forms_tried"]
PREDICTION_COLUMNS = ["source", "task", "metric", "total_flops", "predicted", "lower", "upper", "extrapolated",
                      "gain_per_1e18_flops", "total_usd", "gain_per_usd"]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS)
