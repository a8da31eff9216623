"""Fitting: a pure function from a metrics table to fits, predictions and decisions.

Per (source, task, metric): every configured form is fitted by robust least squares (Huber loss,
residuals in units of each point's standard error, several initialisations); the form with the
smallest leave-largest-budget-out extrapolation error is kept. Uncertainty comes from a parametric
bootstrap over the evaluation noise (each point redrawn from its standard error) and refitting.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import kendalltau

from annealscope.forms import FORMS, Form, higher_is_better

REQUIRED_COLUMNS = ("source", "budget_tokens", "seed", "total_flops", "task", "metric", "value", "stderr")
PAIRWISE_COLUMNS = ["task", "metric", "total_flops", "source_a", "source_b", "p_a_better"]
INTERVAL = (5.0, 95.0)
BASE_SOURCE = "base"


@dataclass
class FitSettings:
    forms: list[str] = field(default_factory=lambda: ["saturating_power_law", "log_linear"])
    target_flops: list[float] = field(default_factory=list)
    bootstrap: int = 200
    micro_anneal_budget: int | None = None
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    seed: int = 0
    metrics: list[str] | None = None


@dataclass
class CurveFit:
    source: str
    task: str
    metric: str
    form: str | None
    params: np.ndarray | None
    reference: float
    sign: float
    n_points: int
    in_sample_rmse: float
    leave_largest_out_error: float
    status: str
    forms_tried: str
    draws: np.ndarray | None = None

    def predict(self, flops: np.ndarray) -> np.ndarray:
        return FORMS[self.form].predict(self.params, np.log(flops / self.reference), self.sign)

    def predict_draws(self, flops: np.ndarray) -> np.ndarray:
        """Predictions of every bootstrap refit, shape (draws, len(flops))."""
        form = FORMS[self.form]
        x = np.log(flops / self.reference)
        return np.stack([form.predict(params, x, self.sign) for params in self.draws])


@dataclass
class FitResult:
    fits: pd.DataFrame
    predictions: pd.DataFrame
    decisions: pd.DataFrame
    curves: pd.DataFrame
    pairwise: pd.DataFrame = field(default_factory=pd.DataFrame)


def check_table(table: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}; see DESIGN.md 'The tidy results table'")


def fit_form(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, sign: float,
             starts: list[np.ndarray] | None = None) -> np.ndarray | None:
    """Best of several robust fits from different starts (the form's own unless given), or None."""
    lower, upper = form.bounds(sign)
    best = None
    for start in starts if starts is not None else form.initial(x, y, sign):
        start = np.clip(start, np.asarray(lower) + 1e-9, np.asarray(upper) - 1e-9)
        try:
            result = least_squares(lambda p: (form.predict(p, x, sign) - y) / sigma, start, bounds=(lower, upper),
                                   loss="huber", f_scale=1.0, max_nfev=2000)
        except ValueError:
            continue
        if result.success and np.all(np.isfinite(result.x)) and (best is None or result.cost < best.cost):
            best = result
    return None if best is None else best.x


def fit_curve(points: pd.DataFrame, source: str, task: str, metric: str, settings: FitSettings,
              rng: np.random.Generator) -> CurveFit:
    """Fit one source's curve for one (task, metric); on failure the status says why."""
    sign = -1.0 if higher_is_better(metric, settings.higher_is_better) else 1.0
    dropped = int((~np.isfinite(points["value"].to_numpy(float))).sum())
    points = points[(points["total_flops"] > 0) & np.isfinite(points["value"].to_numpy(float))]
    flops = points["total_flops"].to_numpy(float)
    y = points["value"].to_numpy(float)
    sigma = _sigma(points)
    reference = float(np.exp(np.mean(np.log(flops)))) if len(flops) else 1.0
    x = np.log(flops / reference) if len(flops) else flops
    tried = [f"{dropped} non-finite value(s) dropped"] if dropped else []
    if len(y) and np.ptp(y) == 0:
        why = f"no variance: every value is {y[0]:.4g}; nothing to fit"
        return CurveFit(source, task, metric, None, None, reference, sign, len(y), np.nan, np.nan, why,
                        "; ".join([*tried, why]))
    candidates = []
    for name in settings.forms:
        form = FORMS[name]
        if len(np.unique(flops)) < len(form.parameters):
            tried.append(f"{name}: too few points ({len(np.unique(flops))} distinct budgets < "
                         f"{len(form.parameters)} parameters)")
            continue
        params = fit_form(form, x, y, sigma, sign)
        if params is None:
            tried.append(f"{name}: did not converge")
            continue
        rmse = float(np.sqrt(np.mean((form.predict(params, x, sign) - y) ** 2)))
        held_out = _leave_largest_out(form, x, y, sigma, sign)
        tried.append(f"{name}: rmse={rmse:.4g} leave_largest_out={held_out:.4g}")
        candidates.append((held_out if np.isfinite(held_out) else np.inf, rmse, name, params))
    if not candidates:
        return CurveFit(source, task, metric, None, None, reference, sign, len(y), np.nan, np.nan,
                        "; ".join(tried) or "no form configured", "; ".join(tried))
    held_out, rmse, name, params = min(candidates, key=lambda candidate: (candidate[0], candidate[1]))
    fit = CurveFit(source, task, metric, name, params, reference, sign, len(y), rmse,
                   held_out if np.isfinite(held_out) else np.nan, "ok", "; ".join(tried))
    fit.draws = _bootstrap(FORMS[name], x, y, sigma, sign, params, settings.bootstrap, rng)
    return fit


def _sigma(points: pd.DataFrame) -> np.ndarray:
    """Per-point standard errors, with missing or zero ones replaced by the median (or 1)."""
    sigma = points["stderr"].to_numpy(float)
    valid = np.isfinite(sigma) & (sigma > 0)
    fallback = float(np.median(sigma[valid])) if valid.any() else 1.0
    return np.where(valid, sigma, fallback)


def _leave_largest_out(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, sign: float) -> float:
    """|prediction − mean observation| at the largest compute, from a fit without it."""
    largest = x == x.max()
    if len(np.unique(x[~largest])) < len(form.parameters):
        return np.nan
    params = fit_form(form, x[~largest], y[~largest], sigma[~largest], sign)
    if params is None:
        return np.nan
    return float(abs(form.predict(params, x[largest][:1], sign)[0] - y[largest].mean()))


def _bootstrap(form: Form, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, sign: float, params: np.ndarray,
               draws: int, rng: np.random.Generator) -> np.ndarray:
    """Refits on observations redrawn from their evaluation noise, warm-started at the point fit;
    the point fit alone when draws is 0."""
    refits = [params]
    for _ in range(draws):
        refit = fit_form(form, x, y + rng.normal(0.0, sigma), sigma, sign, starts=[params])
        if refit is not None:
            refits.append(refit)
    return np.stack(refits[1:] if len(refits) > 1 else refits)


def fit_table(table: pd.DataFrame, settings: FitSettings) -> FitResult:
    """Fit every (source, task, metric) of a metrics table; compare sources at equal total compute."""
    check_table(table)
    unknown = [form for form in settings.forms if form not in FORMS]
    if unknown:
        raise ValueError(f"unknown fit form(s) {unknown}; registered: {sorted(FORMS)}")
    rng = np.random.default_rng(settings.seed)
    annealed = table[table["source"] != BASE_SOURCE]
    if settings.metrics is not None:
        annealed = annealed[annealed["metric"].isin(settings.metrics)]
        if annealed.empty:
            raise ValueError(f"none of the metrics {settings.metrics} is in the table; it has "
                             f"{sorted(set(table['metric']))}")
    fits: list[CurveFit] = []
    for (task, metric, source), points in annealed.groupby(["task", "metric", "source"], sort=True):
        fits.append(fit_curve(points, source, task, metric, settings, rng))
    decision_flops = _decision_points(annealed, settings.target_flops)
    predictions, curves, decisions, pairwise = [], [], [], []
    for (task, metric), group in annealed.groupby(["task", "metric"], sort=True):
        ok = [fit for fit in fits if fit.task == task and fit.metric == metric and fit.status == "ok"]
        for fit in ok:
            span = group[group["source"] == fit.source]["total_flops"]
            predictions.append(_prediction_rows(fit, decision_flops, span.min(), span.max()))
            dense = np.geomspace(span.min(), max(span.max(), decision_flops.max()), 60)
            curves.append(_prediction_rows(fit, dense, span.min(), span.max()))
        decisions += _decisions(task, metric, group, ok, decision_flops, settings)
        pairwise += _pairwise(task, metric, ok, decision_flops)
    return FitResult(fits=_fits_frame(fits), predictions=_concat(predictions), decisions=pd.DataFrame(decisions),
                     curves=_concat(curves), pairwise=pd.DataFrame(pairwise, columns=PAIRWISE_COLUMNS))


def _pairwise(task: str, metric: str, fits: list[CurveFit], flops: np.ndarray) -> list[dict]:
    """For each pair of sources and each compute, the bootstrap probability that the first is better."""
    if len(fits) < 2:
        return []
    better = -1.0 if fits[0].sign > 0 else 1.0
    draws = min(len(fit.draws) for fit in fits)
    sampled = [fit.predict_draws(flops)[:draws] * better for fit in fits]
    rows = []
    for first, second in itertools.combinations(range(len(fits)), 2):
        wins = np.mean(sampled[first] > sampled[second], axis=0)
        rows += [{"task": task, "metric": metric, "total_flops": compute, "source_a": fits[first].source,
                  "source_b": fits[second].source, "p_a_better": float(p)} for compute, p in zip(flops, wins,
                                                                                               strict=True)]
    return rows


def _decision_points(table: pd.DataFrame, targets: list[float]) -> np.ndarray:
    grid = table.loc[table["total_flops"] > 0, "total_flops"].to_numpy(float)
    return np.unique(np.concatenate([grid, np.asarray(targets, dtype=float)]))


def _prediction_rows(fit: CurveFit, flops: np.ndarray, lowest: float, highest: float) -> pd.DataFrame:
    draws = fit.predict_draws(flops)
    lower, upper = np.percentile(draws, INTERVAL, axis=0)
    return pd.DataFrame({"source": fit.source, "task": fit.task, "metric": fit.metric, "total_flops": flops,
                         "predicted": fit.predict(flops), "lower": lower, "upper": upper,
                         "gain_per_1e18_flops": marginal_gain(fit, flops) * 1e18,
                         "extrapolated": (flops < lowest * 0.999) | (flops > highest * 1.001)})


def marginal_gain(fit: CurveFit, flops: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Improvement of the fitted metric per extra FLOP at each compute (positive is better, whichever
    direction the metric improves in), by a central difference on the point fit."""
    better = -1.0 if fit.sign > 0 else 1.0
    return better * (fit.predict(flops * (1 + step)) - fit.predict(flops * (1 - step))) / (2 * step * flops)


def _decisions(task: str, metric: str, group: pd.DataFrame, fits: list[CurveFit], flops: np.ndarray,
               settings: FitSettings) -> list[dict]:
    """Best source (and its bootstrap probability of being best) at each compute; the micro-anneal view."""
    rows = []
    if fits:
        better = -1.0 if fits[0].sign > 0 else 1.0
        draws = min(len(fit.draws) for fit in fits)
        point = np.stack([fit.predict(flops) for fit in fits]) * better
        sampled = np.stack([fit.predict_draws(flops)[:draws] for fit in fits]) * better
        wins = np.argmax(sampled, axis=0)
        for column, compute in enumerate(flops):
            order = np.argsort(-point[:, column])
            rows.append({"task": task, "metric": metric, "kind": "fitted", "total_flops": compute,
                         "best_source": fits[order[0]].source,
                         "p_best": float(np.mean(wins[:, column] == order[0])),
                         "ranking": " > ".join(fits[index].source for index in order), "kendall_tau_vs_micro": np.nan})
    micro = _micro_anneal_ranking(group, metric, settings)
    if micro:
        rows.append({"task": task, "metric": metric, "kind": "micro_anneal", "total_flops": np.nan,
                     "best_source": micro[0], "p_best": np.nan, "ranking": " > ".join(micro),
                     "kendall_tau_vs_micro": 1.0})
        if fits:
            largest = float(group["total_flops"].max())
            better = -1.0 if fits[0].sign > 0 else 1.0
            fitted = sorted(fits, key=lambda fit: -better * float(fit.predict(np.array([largest]))[0]))
            ranking = [fit.source for fit in fitted]
            common = [source for source in micro if source in ranking]
            tau = (kendalltau([micro.index(s) for s in common], [ranking.index(s) for s in common]).statistic
                   if len(common) > 1 else np.nan)
            rows.append({"task": task, "metric": metric, "kind": "fitted_at_largest", "total_flops": largest,
                         "best_source": ranking[0], "p_best": np.nan, "ranking": " > ".join(ranking),
                         "kendall_tau_vs_micro": float(tau)})
    return rows


def _micro_anneal_ranking(group: pd.DataFrame, metric: str, settings: FitSettings) -> list[str]:
    """Sources ordered by their observed value at the micro-anneal budget (mean over seeds); the budget
    defaults to the smallest one in the table."""
    budget = settings.micro_anneal_budget or group.loc[group["budget_tokens"] > 0, "budget_tokens"].min()
    at_budget = group[group["budget_tokens"] == budget]
    means = at_budget.groupby("source")["value"].mean()
    return list(means.sort_values(ascending=not higher_is_better(metric, settings.higher_is_better)).index)


def _fits_frame(fits: list[CurveFit]) -> pd.DataFrame:
    rows = []
    for fit in fits:
        params = dict(zip(FORMS[fit.form].parameters, fit.params.tolist(), strict=True)) if fit.form else {}
        if params:
            params["C0"] = fit.reference
        rows.append({"source": fit.source, "task": fit.task, "metric": fit.metric, "form": fit.form,
                     "params": json.dumps(params), "n_points": fit.n_points, "in_sample_rmse": fit.in_sample_rmse,
                     "leave_largest_out_error": fit.leave_largest_out_error, "status": fit.status,
                     "forms_tried": fit.forms_tried})
    return pd.DataFrame(rows)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    columns = ["source", "task", "metric", "total_flops", "predicted", "lower", "upper", "extrapolated"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
