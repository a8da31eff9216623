"""`annealscope fit`: from a metrics table to every fit output of docs/design.md's contract, written atomically.

Outputs (all in one directory): fits.csv, predictions.csv, decisions.csv, pairwise.csv, crossovers.csv,
allocation.csv, and the figures curves.png, ranking.png, crossovers.png and costs.png.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from annealscope.core.groups import grouped_tasks
from annealscope.core.io import atomic_path
from annealscope.core.layout import BASE_SOURCE, FIT_OUTPUTS
from annealscope.fit.allocation import allocation_frame, allocation_rows
from annealscope.fit.curves import FitResult, FitSettings, fit_table
from annealscope.fit.decisions import (
    CROSSOVER_COLUMNS,
    DECISION_COLUMNS,
    PAIRWISE_COLUMNS,
    crossover_rows,
    decision_rows,
    pairwise_rows,
)


@dataclass
class Analysis:
    result: FitResult
    decisions: pd.DataFrame
    pairwise: pd.DataFrame
    crossovers: pd.DataFrame
    allocation: pd.DataFrame
    grouped: set[str]  # tasks that their lm-eval group's panel stands for in the figures (core.groups.grouped_tasks)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"fits.csv": self.result.fits, "predictions.csv": self.result.predictions,
                "decisions.csv": self.decisions, "pairwise.csv": self.pairwise, "crossovers.csv": self.crossovers,
                "allocation.csv": self.allocation}

    def figures(self, table: pd.DataFrame) -> dict:
        """The figures (plotnine), drawn from the fit's rows (suites' and groups' included) but for the tasks
        their group's panel stands for; the costs from `table`, the metrics table's own rows."""
        from annealscope.fit.figures import costs_figure, crossovers_figure, curves_figure, ranking_figure

        def drawn(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[~frame["task"].isin(self.grouped)]

        return {"curves.png": curves_figure(drawn(self.result.table), drawn(self.result.curve_frame)),
                "ranking.png": ranking_figure(drawn(self.decisions)),
                "crossovers.png": crossovers_figure(drawn(self.crossovers)),
                "costs.png": costs_figure(table)}


def analyse(table: pd.DataFrame, settings: FitSettings, items: pd.DataFrame | None = None) -> Analysis:
    """Fit every curve, then decide: best source, pairwise odds, crossovers and allocations per (task, metric)."""
    result = fit_table(table, settings, items)
    flops = result.decision_flops
    decisions, pairwise, crossovers, allocation = [], [], [], []
    fitted: dict[tuple[str, str], list] = {}
    for curve in result.curves:
        fitted.setdefault((curve.task, curve.metric), []).append(curve)
    annealed = table[table["source"] != BASE_SOURCE]
    for (task, metric), every in fitted.items():
        curves = [curve for curve in every if curve.usable]
        rows = annealed[(annealed["task"] == task) & (annealed["metric"] == metric)]
        base = result.base_values.get((task, metric))
        decisions += decision_rows(task, metric, curves, flops, rows, settings)
        pairwise += pairwise_rows(task, metric, curves, flops)
        crossovers += crossover_rows(task, metric, curves, flops)
        allocation += allocation_rows(task, metric, curves, base, settings.allocate_flops, "flops")
        allocation += allocation_rows(task, metric, curves, base, settings.allocate_usd, "usd")
    return Analysis(result, pd.DataFrame(decisions, columns=DECISION_COLUMNS),
                    pd.DataFrame(pairwise, columns=PAIRWISE_COLUMNS),
                    pd.DataFrame(crossovers, columns=CROSSOVER_COLUMNS), allocation_frame(allocation),
                    grouped_tasks(settings.groups, {task for task, _ in fitted}))


def write_analysis(analysis: Analysis, table: pd.DataFrame, out: str | Path) -> None:
    """Every table and figure of the contract into the folder `out`, which is renamed into place only when complete."""
    from annealscope.fit.figures import save_figure

    with atomic_path(out, directory=True) as tmp:  # the folder is replaced whole, complete or not at all
        for name, frame in analysis.tables().items():
            frame.to_csv(tmp / name, index=False)
        figures = analysis.figures(table)
        for name, figure in figures.items():
            save_figure(figure, tmp / name)
        written = {*analysis.tables(), *figures}
        assert written == set(FIT_OUTPUTS), f"fit outputs {sorted(written)} differ from the contract {FIT_OUTPUTS}"
