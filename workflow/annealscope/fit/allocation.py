"""Allocation: split a total compute or dollar budget across sources to maximise the predicted metric.

Assumption (stated in every output): the gains of sources add. Each source improves the metric over
the base model by what its own fitted curve predicts at its share of the budget, as if annealed
alone; single-source curves cannot see how sources interact in a mixture (transfer or interference).
A source's share is capped at the compute of its available unique tokens. The split is exact on a
grid of budget steps (dynamic programming over sources), so curves need not be concave.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annealscope.fit.curves import CurveFit, interval

ALLOCATION_COLUMNS = ["task", "metric", "budget_unit", "budget", "source", "share", "total_flops", "total_usd",
                      "tokens", "predicted_gain", "lower", "upper", "predicted_metric", "extrapolated", "note"]
STEPS = 100
ASSUMPTION = "assumes the gains of sources add (no interaction in a mixture)"


def allocation_rows(task: str, metric: str, curves: list[CurveFit], base: float | None, budgets: list[float],
                    unit: str) -> list[dict]:
    """The best split of each budget (in FLOPs or dollars), one row per funded source, plus the total and
    the best single source for comparison; a note row when the split cannot be made."""
    if not budgets or not curves:
        return []
    if base is None:
        return [_note(task, metric, unit, budget, "no base-model (budget 0) row: gains need it as their origin")
                for budget in budgets]
    priced = [curve for curve in curves if unit == "flops" or np.isfinite(curve.usd_per_flop)]
    unpriced = sorted({curve.source for curve in curves} - {curve.source for curve in priced})
    if not priced:
        return [_note(task, metric, unit, budget, "no source has a dollar cost (total_usd)") for budget in budgets]
    rows = []
    for budget in budgets:
        rows += _allocate(task, metric, priced, base, float(budget), unit,
                          f"{ASSUMPTION}; left out, no dollar cost: {', '.join(unpriced)}" if unpriced else ASSUMPTION)
    return rows


def _allocate(task: str, metric: str, curves: list[CurveFit], base: float, budget: float, unit: str,
              note: str) -> list[dict]:
    shares = np.arange(STEPS + 1) / STEPS
    flops = np.stack([shares * budget / (1.0 if unit == "flops" else curve.usd_per_flop) for curve in curves])
    gains = np.stack([_gain(curve, row, base) for curve, row in zip(curves, flops, strict=True)])
    steps = best_split(gains)
    funded = [index for index, step in enumerate(steps) if step > 0]
    chosen = np.array([flops[index, steps[index]] for index in funded])
    draws = np.stack([curves[index].better * (curves[index].predict_draws(chosen[k:k + 1])[:, 0] - base)
                      for k, index in enumerate(funded)], axis=1) if funded else np.zeros((1, 0))
    rows = []
    for k, index in enumerate(funded):
        curve = curves[index]
        lower, upper = interval(draws[:, k])
        rows.append(_row(task, metric, unit, budget, curve, steps[index] / STEPS, chosen[k],
                         gains[index, steps[index]], lower, upper, note))
    total = float(sum(gains[index, steps[index]] for index in funded))
    lower, upper = interval(draws.sum(axis=1))
    sign = curves[0].better
    spent = sum(int(steps[index]) for index in funded) / STEPS  # below 1 where no further source gains
    rows.append({**_note(task, metric, unit, budget, note), "source": "(total)", "share": spent,
                 "predicted_gain": total, "lower": lower, "upper": upper, "predicted_metric": base + sign * total})
    single = int(np.argmax(gains[:, -1]))
    if np.isfinite(gains[single, -1]):
        lower, upper = interval(curves[single].better * (curves[single].predict_draws(flops[single, -1:])[:, 0] - base))
        rows.append({**_row(task, metric, unit, budget, curves[single], 1.0, flops[single, -1], gains[single, -1],
                            lower, upper, "for comparison: the whole budget on the best single source"),
                     "source": f"(best single: {curves[single].source})",
                     "predicted_metric": base + sign * gains[single, -1]})
    return rows


def _gain(curve: CurveFit, flops: np.ndarray, base: float) -> np.ndarray:
    """Improvement over the base model (positive is better) at each compute; 0 at none, −inf past the
    source's available tokens, and below its smallest grid compute unless the form is anchored at the base
    model (a curve is not extrapolated down to compute it never saw), and then below its acquisition floor."""
    with np.errstate(all="ignore"):
        gain = curve.better * (curve.predict(np.maximum(flops, 1e-300)) - base)
    cap = curve.available_tokens * curve.flops_per_token
    below = flops < curve.lowest * 0.999 if not curve.anchored else ~curve.affords(flops)
    gain[(flops > cap * (1 + 1e-9)) | below | ~np.isfinite(gain)] = -np.inf
    gain[0] = 0.0
    return gain


def best_split(gains: np.ndarray) -> list[int]:
    """Steps per source (summing to at most the number of steps) that maximise the summed gain, where
    gains[s, j] is source s's gain from j steps: an exact dynamic programme over sources, in which
    best[b] is the largest gain of the sources so far from at most b steps."""
    sources, width = gains.shape
    best = np.zeros(width)
    choices = []
    for source in range(sources):
        total = np.full((width, width), -np.inf)
        for step in range(width):  # total[b, step]: budget b with `step` of it on this source
            total[step:, step] = best[:width - step] + gains[source, step]
        choices.append(np.argmax(total, axis=1))
        best = total.max(axis=1)
    steps, remaining = [], width - 1
    for source in reversed(range(sources)):
        step = int(choices[source][remaining])
        steps.append(step)
        remaining -= step
    return steps[::-1]


def _row(task: str, metric: str, unit: str, budget: float, curve: CurveFit, share: float, flops: float,
         gain: float, lower: float, upper: float, note: str) -> dict:
    return {"task": task, "metric": metric, "budget_unit": unit, "budget": budget, "source": curve.source,
            "share": share, "total_flops": flops, "total_usd": flops * curve.usd_per_flop,
            "tokens": flops / curve.flops_per_token, "predicted_gain": gain, "lower": lower, "upper": upper,
            "predicted_metric": np.nan, "note": note,
            "extrapolated": bool(flops > curve.highest * 1.001 or flops < curve.lowest * 0.999)}


def _note(task: str, metric: str, unit: str, budget: float, note: str) -> dict:
    return {column: np.nan for column in ALLOCATION_COLUMNS} | {
        "task": task, "metric": metric, "budget_unit": unit, "budget": budget, "source": "", "extrapolated": False,
        "note": note}


def allocation_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ALLOCATION_COLUMNS)
