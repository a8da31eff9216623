"""`annealscope backtest`: would the curves have told the truth one budget further?

Each source's largest budget (every seed of it) is held out, every curve is refitted on the rest (the base
model's rows kept), and each source is predicted at the compute its held-out cell cost. Per (task, metric):

- `backtest.csv`, a row per source: the observed mean at the held-out budget and its standard error, the fit's
  prediction there with its 90% interval and whether the observation lies inside, and the values that
  micro-annealing (the micro-anneal budget) and the largest remaining point would go by;
- `backtest_decisions.csv`, a row per method (`fit`, `micro_anneal`, `largest_remaining`): the ranking of the
  sources it gives, the observed ranking, the share of source pairs it orders as observed (over every pair, and
  over the pairs whose observed gap exceeds twice its standard error), and whether it names the observed best.

It needs only the `metrics.csv` columns, so it runs on any such table (items, when given, are resampled as in
`annealscope fit`).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from annealscope.core.io import atomic_path
from annealscope.core.layout import BACKTEST_OUTPUTS, BASE_SOURCE
from annealscope.core.tables import check_table
from annealscope.fit.curves import CurveFit, FitSettings, fit_table, interval
from annealscope.fit.forms import higher_is_better
from annealscope.fit.suites import with_suites

METHODS = ("fit", "micro_anneal", "largest_remaining")
VALUE_COLUMNS = ["task", "metric", "source", "held_out_budget", "held_out_flops", "observed", "observed_stderr",
                 "predicted", "lower", "upper", "inside", "micro_anneal", "largest_remaining", "status"]
DECISION_COLUMNS = ["task", "metric", "method", "ranking", "observed_ranking", "pairs", "pairwise_accuracy",
                    "clear_pairs", "clear_pairwise_accuracy", "best_correct"]


def held_out(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows that stay, the rows held out): each annealed source's largest budget is held out."""
    annealed = table["source"] != BASE_SOURCE
    largest = table[annealed].groupby("source")["budget_tokens"].transform("max")
    out = annealed & (table["budget_tokens"] == largest.reindex(table.index))
    return table[~out], table[out]


def backtest(table: pd.DataFrame, settings: FitSettings, items: pd.DataFrame | None = None
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-source values and the per-method decisions of the backtest (module docstring)."""
    check_table(table)
    table = table[np.isfinite(table["value"].to_numpy(float))]
    if settings.metrics is not None:
        table = table[table["metric"].isin(settings.metrics)]
    kept, out = held_out(with_suites(table.reset_index(drop=True), settings.suites, groups=settings.groups)[0])
    if items is not None:
        items = items.merge(kept[["source", "budget_tokens", "seed"]].drop_duplicates())
    micro_budget = settings.micro_anneal_budget or kept.loc[kept["source"] != BASE_SOURCE, "budget_tokens"].min()
    curves = {}
    if not kept[kept["source"] != BASE_SOURCE].empty:
        tasks = kept[~kept["task"].isin({*settings.suites, *settings.groups})]  # the refit makes suites' rows anew
        refit = fit_table(tasks, replace(settings, micro_anneal_budget=micro_budget), items)
        curves = {(curve.source, curve.task, curve.metric): curve for curve in refit.curves}
    values, decisions = [], []
    for (task, metric), rows in out.groupby(["task", "metric"], sort=True):
        remaining = kept[(kept["task"] == task) & (kept["metric"] == metric)]
        panel = [source_row(task, metric, source, cell, remaining[remaining["source"] == source],
                            curves.get((source, task, metric)), micro_budget)
                 for source, cell in rows.groupby("source", sort=True)]
        values += panel
        decisions += decision_rows(pd.DataFrame(panel), higher_is_better(metric, settings.higher_is_better))
    return pd.DataFrame(values, columns=VALUE_COLUMNS), pd.DataFrame(decisions, columns=DECISION_COLUMNS)


def source_row(task: str, metric: str, source: str, cell: pd.DataFrame, remaining: pd.DataFrame, curve: CurveFit | None,
               micro_budget: int) -> dict:
    """One source's held-out observation, the refit's prediction there and the points the shortcuts use."""
    flops = float(cell["total_flops"].mean())
    row = {"task": task, "metric": metric, "source": source, "held_out_budget": int(cell["budget_tokens"].iloc[0]),
           "held_out_flops": flops, "observed": float(cell["value"].mean()), "observed_stderr": mean_stderr(cell),
           "micro_anneal": _mean_at(remaining, micro_budget),
           "largest_remaining": _mean_at(remaining, remaining["budget_tokens"].max()) if len(remaining) else np.nan}
    if curve is None or not curve.usable:
        return row | {"predicted": np.nan, "lower": np.nan, "upper": np.nan, "inside": np.nan,
                      "status": curve.status if curve is not None else "no budget left to fit"}
    lower, upper = interval(curve.predict_draws(np.array([flops])))
    return row | {"predicted": float(curve.predict(np.array([flops]))[0]), "lower": float(lower[0]),
                  "upper": float(upper[0]), "inside": bool(lower[0] <= row["observed"] <= upper[0]),
                  "status": curve.status}


def mean_stderr(cell: pd.DataFrame) -> float:
    """The standard error of a mean over seeds: evaluation noise and seed-to-seed spread both counted (so it is
    conservative with several seeds)."""
    count = len(cell)
    spread = float(cell["value"].var(ddof=1)) if count > 1 else 0.0
    return float(np.sqrt((np.mean(cell["stderr"].to_numpy(float) ** 2) + spread) / count))


def _mean_at(rows: pd.DataFrame, budget) -> float:
    at = rows[rows["budget_tokens"] == budget]
    return float(at["value"].mean()) if len(at) else np.nan


def decision_rows(panel: pd.DataFrame, higher: bool) -> list[dict]:
    """How each method orders the sources of one (task, metric) against the observed order."""
    if panel.empty:
        return []
    sign = 1.0 if higher else -1.0
    observed = panel.set_index("source")["observed"] * sign
    noise = panel.set_index("source")["observed_stderr"]
    truth = ranking(observed)
    rows = []
    for method, column in zip(METHODS, ("predicted", "micro_anneal", "largest_remaining"), strict=True):
        scores = panel.set_index("source")[column] * sign
        agree, clear = [], []
        for first, second in itertools.combinations(observed.index, 2):
            if not (np.isfinite(scores[first]) and np.isfinite(scores[second])) or observed[first] == observed[second]:
                continue
            right = (scores[first] > scores[second]) == (observed[first] > observed[second])
            agree.append(right)
            if abs(observed[first] - observed[second]) > 2 * np.hypot(noise[first], noise[second]):
                clear.append(right)
        decided = ranking(scores.dropna())
        rows.append({"task": panel["task"].iloc[0], "metric": panel["metric"].iloc[0], "method": method,
                     "ranking": " > ".join(decided), "observed_ranking": " > ".join(truth), "pairs": len(agree),
                     "pairwise_accuracy": float(np.mean(agree)) if agree else np.nan, "clear_pairs": len(clear),
                     "clear_pairwise_accuracy": float(np.mean(clear)) if clear else np.nan,
                     "best_correct": bool(decided[0] == truth[0]) if decided else np.nan})
    return rows


def ranking(scores: pd.Series) -> list[str]:
    """Sources from best to worst (scores oriented so that larger is better)."""
    return list(scores.sort_values(ascending=False, kind="stable").index)


def write_backtest(values: pd.DataFrame, decisions: pd.DataFrame, out: str | Path) -> None:
    """Both tables into the folder `out`, renamed into place only when complete."""
    with atomic_path(out, directory=True) as tmp:
        for name, frame in zip(BACKTEST_OUTPUTS, (values, decisions), strict=True):
            frame.to_csv(tmp / name, index=False)


def summary(values: pd.DataFrame, decisions: pd.DataFrame) -> str:
    """One line: pairwise accuracy by method, and the interval's coverage of the held-out observations."""
    accuracy = decisions.groupby("method")["pairwise_accuracy"].mean()
    inside = values["inside"].dropna().astype(bool)
    return (f"{values[['task', 'metric']].drop_duplicates().shape[0]} (task, metric) panels; mean pairwise accuracy "
            + ", ".join(f"{method} {accuracy[method]:.2f}" if np.isfinite(accuracy.get(method, np.nan))
                        else f"{method} n/a" for method in METHODS)
            + f"; {int(inside.sum())} of {len(inside)} held-out observations inside the fit's 90% interval")
