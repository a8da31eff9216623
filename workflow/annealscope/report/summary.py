"""The report's first table: per (task, metric), the answer a reader came for, from the fit's and the backtest's
tables: which source is best at the smallest and the largest decision compute and how sure the fit is, what a
micro-anneal would have bought, how many crossings the curves show, and how the fit and micro-annealing fared
when each source's largest budget was held out."""

from __future__ import annotations

import pandas as pd

PANEL = ["task", "metric"]
LIKELY = 0.9  # a crossing is likely when at least this share of the replicates cross


def summary_table(decisions: pd.DataFrame, crossovers: pd.DataFrame,
                  backtest: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (task, metric) panel of `decisions` (decisions.csv), with its crossings (crossovers.csv)
    and, given backtest_decisions.csv, the pairwise accuracy of the fit and of micro-annealing there."""
    fitted = decisions[decisions["kind"] == "fitted"].sort_values([*PANEL, "total_flops"])
    smallest, largest = (fitted.drop_duplicates(PANEL, keep=end).set_index(PANEL) for end in ("first", "last"))
    summary = pd.DataFrame({
        "smallest_compute": smallest["total_flops"], "best_at_smallest": smallest["best_source"],
        "p_best_at_smallest": smallest["p_best"], "largest_compute": largest["total_flops"],
        "best_at_largest": largest["best_source"], "p_best_at_largest": largest["p_best"]})
    micro = decisions[decisions["kind"] == "micro_anneal"].set_index(PANEL)["best_source"]
    summary["micro_anneal_best"] = micro.reindex(summary.index)
    crossings = crossovers.groupby(PANEL).size()
    likely = crossovers[crossovers["p_crossing"] >= LIKELY].groupby(PANEL).size()
    summary["crossings"] = crossings.reindex(summary.index, fill_value=0)
    summary[f"crossings_p_{LIKELY:g}"] = likely.reindex(summary.index, fill_value=0)
    if backtest is not None:
        accuracy = backtest.pivot_table(index=PANEL, columns="method", values="pairwise_accuracy", aggfunc="first")
        for method in ("fit", "micro_anneal"):
            summary[f"backtest_{method}_accuracy"] = (accuracy[method] if method in accuracy
                                                      else pd.Series(dtype=float)).reindex(summary.index)
    return summary.reset_index()
