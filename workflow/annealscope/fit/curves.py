"""Fitting: a pure function from a metrics table (and optionally its per-item results) to curves.

Per (source, task, metric): seeds are averaged per budget; every configured form is fitted by robust
least squares (Huber loss, residuals in units of each point's standard error, several starts) and the
form with the smallest leave-largest-budget-out extrapolation error is kept (the simplest within one
standard error of it). A curve whose trend over the grid is within noise is reported as flat and
fitted as a constant. Uncertainty: every curve is refitted on bootstrap replicates (items, and seeds
where present; see `resample`), all of a curve's replicates in one batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from annealscope.core.config import schema_default
from annealscope.core.layout import BASE_SOURCE
from annealscope.fit.forms import FORMS, Form, higher_is_better
from annealscope.fit.resample import Points, budget_points, check_items, replicate_values
from annealscope.fit.solver import huber_lm

REQUIRED_COLUMNS = ("source", "budget_tokens", "seed", "total_flops", "task", "metric", "value", "stderr")
INTERVAL = (5.0, 95.0)
DEFAULT_DECISION_POINTS = 8


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
    form: str | None = None
    theta: np.ndarray | None = None
    draws: np.ndarray | None = None
    in_sample_rmse: float = np.nan
    leave_largest_out_error: float = np.nan
    lowest: float = np.nan
    highest: float = np.nan
    usd_per_flop: float = np.nan
    flops_per_token: float = np.nan
    available_tokens: float = np.nan
    noise: float = np.nan  # a typical point's standard error: what one more observation would carry

    @property
    def usable(self) -> bool:
        return self.form is not None

    @property
    def better(self) -> float:
        """+1 when higher is better, −1 when lower is: multiply a metric by it to make larger better."""
        return 1.0 if self.higher else -1.0

    def predict(self, flops: np.ndarray) -> np.ndarray:
        return FORMS[self.form].predict(self.theta[None, :], np.asarray(flops, float) / self.reference)[0]

    def predict_draws(self, flops: np.ndarray) -> np.ndarray:
        """Predictions of every bootstrap refit, shape (draws, len(flops)); NaN rows where a refit failed."""
        with np.errstate(all="ignore"):
            return FORMS[self.form].predict(self.draws, np.asarray(flops, float) / self.reference)


@dataclass
class FitResult:
    fits: pd.DataFrame
    predictions: pd.DataFrame
    curves: list[CurveFit]
    decision_flops: np.ndarray
    base_values: dict[tuple[str, str], float]
    curve_frame: pd.DataFrame


ROW_KEY = ["source", "budget_tokens", "seed", "task", "metric"]


def check_table(table: pd.DataFrame) -> None:
    """Refuse a table the fit would answer wrongly from: missing columns, no rows, a row repeated or given twice
    with different values (it would count as a second seed, or be averaged), or an invalid standard error."""
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}; see docs/design.md, 'The tidy results table'")
    if table.empty:
        raise ValueError("metrics table has no rows")
    repeated = table[table.duplicated(ROW_KEY, keep=False)]
    if len(repeated):
        conflicting = repeated.groupby(ROW_KEY)["value"].nunique(dropna=False).gt(1).any()
        raise ValueError(f"metrics table has {len(repeated)} rows sharing their (source, budget_tokens, seed, task, "
                         f"metric) {'with different values' if conflicting else 'twice'}, e.g. "
                         f"{describe_rows(repeated)}; keep one row per cell, task and metric (several seeds need "
                         "distinct seed numbers)")
    stderr = table["stderr"].to_numpy(float)
    invalid = table[~(np.isfinite(stderr) & (stderr >= 0))]
    if len(invalid):
        raise ValueError(f"metrics table has {len(invalid)} rows whose stderr is negative or not a number, e.g. "
                         f"{describe_rows(invalid)}; a standard error is a finite number >= 0")


def zero_stderr_rows(table: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """Rows whose standard error is zero and whose items the bootstrap cannot redraw: they carry no evaluation
    noise into the intervals, which then understate it."""
    zero = table[(table["stderr"] == 0) & np.isfinite(table["value"])]
    if items is None or zero.empty:
        return zero
    itemised = items[ROW_KEY].drop_duplicates()
    return zero.merge(itemised, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")


def describe_rows(rows: pd.DataFrame, shown: int = 3) -> str:
    """The first rows of a table by their key, for a message."""
    names = [" ".join(f"{key}={row[key]}" for key in ROW_KEY) for _, row in rows.head(shown).iterrows()]
    return "; ".join(names) + (f"; and {len(rows) - shown} more" if len(rows) > shown else "")


def check_settings(settings: FitSettings) -> None:
    unknown = [form for form in settings.forms if form not in FORMS]
    if unknown:
        raise ValueError(f"unknown fit form(s) {unknown}; registered: {sorted(FORMS)}")


def fit_table(table: pd.DataFrame, settings: FitSettings, items: pd.DataFrame | None = None) -> FitResult:
    """Fit every (source, task, metric) of a metrics table; predictions at every grid and target compute."""
    check_table(table)
    check_settings(settings)
    if items is not None:
        check_items(items)
    table = _fitted_rows(table, settings).reset_index(drop=True)
    rng = np.random.default_rng(settings.seed)
    replicates = replicate_values(table, items, settings.bootstrap, rng)
    curves, base_values = [], {}
    for (task, metric), group in table.groupby(["task", "metric"], sort=True):
        higher = higher_is_better(metric, settings.higher_is_better)
        base_rows = group[group["source"] == BASE_SOURCE]
        base = budget_points(base_rows, replicates, rng) if len(base_rows) else None
        if base is not None:
            base_values[(task, metric)] = float(base.value[0])
        for source, rows in group[group["source"] != BASE_SOURCE].groupby("source", sort=True):
            curves.append(fit_curve(rows, replicates, base, source, task, metric, higher, settings, rng))
    decision_flops = decision_points(table, settings.target_flops)
    grid = np.unique(np.concatenate([table.loc[table["total_flops"] > 0, "total_flops"].to_numpy(float),
                                     np.asarray(settings.target_flops, float)]))
    predictions = [prediction_rows(curve, grid) for curve in curves if curve.usable]
    dense = [prediction_rows(curve, np.geomspace(curve.lowest, max(curve.highest, grid.max()), 60))
             for curve in curves if curve.usable]
    return FitResult(fits=fits_frame(curves), predictions=_concat(predictions), curves=curves,
                     decision_flops=decision_flops, base_values=base_values, curve_frame=_concat(dense))


def _fitted_rows(table: pd.DataFrame, settings: FitSettings) -> pd.DataFrame:
    if settings.metrics is None:
        return table
    chosen = table[table["metric"].isin(settings.metrics)]
    if chosen.empty:
        raise ValueError(f"none of the metrics {settings.metrics} is in the table; it has "
                         f"{sorted(set(table['metric']))}")
    return chosen


def fit_curve(rows: pd.DataFrame, replicates: np.ndarray, base: Points | None, source: str, task: str, metric: str,
              higher: bool, settings: FitSettings, rng: np.random.Generator) -> CurveFit:
    """One source's curve for one (task, metric); when nothing can be fitted, the status says why."""
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
        return curve
    if np.ptp(points.value) == 0:
        curve.status = f"no variance: every value is {points.value[0]:.4g}; nothing to fit"
        curve.forms_tried = "; ".join([*tried, curve.status])
        return curve
    candidates = []
    for name in settings.forms:
        outcome = _try_form(FORMS[name], points, base, reference, higher)
        tried.append(f"{name}: {outcome if isinstance(outcome, str) else outcome[3]}")
        if not isinstance(outcome, str):
            candidates.append((name, *outcome[:3]))
    curve.forms_tried = "; ".join(tried)
    if not candidates:
        curve.status = "; ".join(tried) or "no form configured"
        return curve
    name, theta, rmse, held_out = choose_form(candidates, float(points.sigma[np.argmax(points.flops)]))
    curve.form, curve.theta, curve.in_sample_rmse, curve.leave_largest_out_error = name, theta, rmse, held_out
    curve.status = "ok"
    flat = flat_trend(points)
    if flat:
        theta, rmse, held_out, _ = _try_form(FORMS["constant"], points, base, reference, higher)
        curve.form, curve.theta, curve.in_sample_rmse, curve.leave_largest_out_error = "constant", theta, rmse, held_out
        curve.status = f"flat: {flat}; fitted as a constant"
    curve.draws = bootstrap(FORMS[curve.form], curve.theta, points, base, reference)
    return curve


def costs(rows: pd.DataFrame, source: str, settings: FitSettings) -> dict[str, float]:
    """A source's dollars per FLOP and FLOPs per token (medians over its cells), and the unique tokens it has
    (`--max-tokens`, else the table's `available_tokens`); NaN where the table does not say."""
    flops = rows["total_flops"].to_numpy(float)
    usd = rows["total_usd"].to_numpy(float) if "total_usd" in rows else np.full(len(rows), np.nan)
    tokens = rows["budget_tokens"].to_numpy(float)
    available = settings.max_tokens.get(source, rows["available_tokens"].max() if "available_tokens" in rows
                                        else np.nan)
    with np.errstate(all="ignore"):
        return {"usd_per_flop": float(np.nanmedian(usd / flops)) if np.isfinite(usd).any() else np.nan,
                "flops_per_token": float(np.median(flops / tokens)) if len(rows) else np.nan,
                "available_tokens": float(available)}


def choose_form(candidates: list[tuple], tolerance: float) -> tuple:
    """The (name, theta, rmse, held_out) to keep: among forms whose leave-largest-out error is within
    `tolerance` (the held-out point's standard error) of the best, the one with fewest parameters, then
    the smallest error (a one-standard-error rule against flexible forms that extrapolate no better)."""
    def held_out(candidate: tuple) -> float:
        return candidate[3] if np.isfinite(candidate[3]) else np.inf

    best = min(held_out(candidate) for candidate in candidates)
    close = [candidate for candidate in candidates if held_out(candidate) <= best + tolerance] or candidates
    return min(close, key=lambda c: (len(FORMS[c[0]].parameters), held_out(c), c[2]))


def _observations(form: Form, points: Points, base: Points | None, reference: float, replicates: bool = False):
    """x, y (or replicates) and sigma of a curve, with the base model first for anchored forms."""
    x, y, sigma = points.flops / reference, points.replicates if replicates else points.value, points.sigma
    if form.anchored and base is not None:
        x = np.concatenate([[0.0], x])
        y = np.concatenate([base.replicates if replicates else base.value, y], axis=-1)
        sigma = np.concatenate([base.sigma, sigma])
    return x, y, sigma


def point_fit(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> np.ndarray | None:
    """The best of the form's grid starts after robust refinement, or None when none converges."""
    starts = form.starts(x, y, sigma**-2.0)
    theta, loss = huber_lm(form.predict, starts, x, y, sigma)
    if not np.isfinite(loss).any():
        return None
    return theta[int(np.nanargmin(loss))]


def _try_form(form: Form, points: Points | None, base: Points | None, reference: float, higher: bool):
    """(theta, in-sample rmse, leave-largest-out error, summary) of one form, or why it does not apply."""
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
    theta = point_fit(form, x, y, sigma)
    if theta is None:
        return "did not converge"
    grid = x > 0
    rmse = float(np.sqrt(np.mean((form.predict(theta[None, :], x[grid])[0] - y[grid]) ** 2)))
    held_out = _leave_largest_out(form, x, y, sigma)
    return theta, rmse, held_out, f"rmse={rmse:.4g} leave_largest_out={held_out:.4g}"


def _leave_largest_out(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> float:
    """|prediction − observation| at the largest compute, from a fit without it."""
    keep = x < x.max()
    if len(np.unique(x[keep])) < len(form.parameters):
        return np.nan
    theta = point_fit(form, x[keep], y[keep], sigma[keep])
    if theta is None:
        return np.nan
    return float(abs(form.predict(theta[None, :], x[~keep][:1])[0, 0] - y[~keep].mean()))


def flat_trend(points: Points) -> str | None:
    """Why the curve is flat (its weighted log-linear trend's 90% bootstrap interval contains zero), else None."""
    if len(points.flops) < 2 or not len(points.replicates):
        return None
    log_flops = np.log(points.flops)
    weights = points.sigma**-2.0
    centred = log_flops - (weights @ log_flops) / weights.sum()
    slopes = (points.replicates @ (weights * centred)) / (weights @ centred**2)
    lower, upper = np.percentile(slopes, INTERVAL)
    if lower <= 0.0 <= upper:
        span = float(np.ptp(log_flops))
        return (f"change over the grid {lower * span:+.3g} to {upper * span:+.3g} (90% interval) includes zero; "
                "no trend beyond evaluation noise")
    return None


def bootstrap(form: Form, theta: np.ndarray, points: Points, base: Points | None, reference: float) -> np.ndarray:
    """Refits on every replicate, warm-started at the point fit; NaN rows where a refit failed.
    Without replicates (bootstrap 0), the point fit alone."""
    if not len(points.replicates):
        return theta[None, :]
    x, y, sigma = _observations(form, points, base, reference, replicates=True)
    draws, loss = huber_lm(form.predict, np.repeat(theta[None, :], len(y), axis=0), x, y, sigma)
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
    return pd.DataFrame({"source": curve.source, "task": curve.task, "metric": curve.metric, "total_flops": flops,
                         "predicted": curve.predict(flops), "lower": lower, "upper": upper,
                         "extrapolated": (flops < curve.lowest * 0.999) | (flops > curve.highest * 1.001),
                         "gain_per_1e18_flops": marginal_gain(curve, flops) * 1e18,
                         "total_usd": flops * curve.usd_per_flop,
                         "gain_per_usd": marginal_gain(curve, flops) / curve.usd_per_flop})


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
                     "params": json.dumps(params), "params_lower": json.dumps(lower),
                     "params_upper": json.dumps(upper), "n_points": curve.n_points,
                     "in_sample_rmse": curve.in_sample_rmse, "leave_largest_out_error": curve.leave_largest_out_error,
                     "status": curve.status, "forms_tried": curve.forms_tried})
    return pd.DataFrame(rows, columns=FITS_COLUMNS)


FITS_COLUMNS = ["source", "task", "metric", "form", "params", "params_lower", "params_upper", "n_points",
                "in_sample_rmse", "leave_largest_out_error", "status", "forms_tried"]
PREDICTION_COLUMNS = ["source", "task", "metric", "total_flops", "predicted", "lower", "upper", "extrapolated",
                      "gain_per_1e18_flops", "total_usd", "gain_per_usd"]


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS)
