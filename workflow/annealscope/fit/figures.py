"""The fit's figures (plotnine): curves with bands, the ranking by compute, crossovers, and the cost breakdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from annealscope.core.io import atomic_path

COLUMNS = 3  # panels a row


def panels_height(panels: int, row_inches: float = 1.75) -> float:
    """A figure's height in inches for `panels` panels, COLUMNS a row, so a panel keeps its size however many."""
    return 1.5 + row_inches * max(1, -(-panels // COLUMNS))


def curves_figure(metrics: pd.DataFrame, curves: pd.DataFrame):
    """Observed points with standard errors and fitted curves with 90% bands, one panel per fitted
    (task, metric); the base model as a dashed line."""
    from plotnine import (
        aes,
        facet_wrap,
        geom_errorbar,
        geom_hline,
        geom_line,
        geom_point,
        geom_ribbon,
        ggplot,
        labs,
        scale_x_log10,
        theme,
        theme_bw,
    )

    if metrics[metrics["source"] != "base"].empty:
        return message_figure("the metrics table holds no annealed cell to draw")
    if not curves.empty:  # only the (task, metric) pairs that were fitted
        fitted = set(zip(curves["task"], curves["metric"], strict=True))
        metrics = metrics[[pair in fitted for pair in zip(metrics["task"], metrics["metric"], strict=True)]]
    observed = metrics[metrics["source"] != "base"].copy()
    observed["panel"] = observed["task"] + " · " + observed["metric"]
    base = metrics[metrics["source"] == "base"].copy()
    base["panel"] = base["task"] + " · " + base["metric"]
    figure = (ggplot(observed, aes("total_flops", "value", color="source"))
              + geom_point(size=2)
              + geom_errorbar(aes(ymin="value - stderr", ymax="value + stderr"), width=0.02)
              + scale_x_log10()
              + facet_wrap("panel", scales="free_y", ncol=COLUMNS)
              + labs(x="total compute (acquisition + training FLOPs)", y="metric", color="source",
                     title="annealscope: metric against total compute per source (dashed: base model)")
              + theme_bw() + theme(figure_size=(12, panels_height(observed["panel"].nunique()))))
    if not curves.empty:
        fitted = curves.copy()
        fitted["panel"] = fitted["task"] + " · " + fitted["metric"]
        figure += geom_ribbon(aes("total_flops", ymin="lower", ymax="upper", fill="source"), data=fitted,
                              alpha=0.15, inherit_aes=False)
        figure += geom_line(aes("total_flops", "predicted", color="source"), data=fitted, inherit_aes=False)
    if not base.empty:
        figure += geom_hline(aes(yintercept="value"), data=base, linetype="dashed", color="grey")
    return figure


def ranking_figure(decisions: pd.DataFrame):
    """A bump chart: each source's fitted rank (1 = best) against total compute, one panel per (task, metric)."""
    from plotnine import (
        aes,
        facet_wrap,
        geom_line,
        geom_point,
        ggplot,
        labs,
        scale_x_log10,
        scale_y_reverse,
        theme,
        theme_bw,
    )

    fitted = decisions[decisions["kind"] == "fitted"]
    if fitted.empty:
        return message_figure("no (task, metric) has two fitted sources to rank")
    rows = [{"panel": f"{row.task} · {row.metric}", "total_flops": row.total_flops, "source": source, "rank": rank}
            for row in fitted.itertuples() for rank, source in enumerate(row.ranking.split(" > "), start=1)]
    ranks = pd.DataFrame(rows, columns=["panel", "total_flops", "source", "rank"])
    return (ggplot(ranks, aes("total_flops", "rank", color="source"))
            + geom_line() + geom_point(size=2) + scale_x_log10() + scale_y_reverse(breaks=range(1, 20))
            + facet_wrap("panel", ncol=COLUMNS)
            + labs(x="total compute (acquisition + training FLOPs)", y="fitted rank (1 = best)", color="source",
                   title="annealscope: ranking of sources by compute (where lines cross, the ranking flips)")
            + theme_bw() + theme(figure_size=(12, panels_height(ranks["panel"].nunique()))))


def crossovers_figure(crossovers: pd.DataFrame):
    """Each compute where two sources' curves cross, with its 90% bootstrap interval, per (task, metric); an
    interval open at an end (0 or inf: the crossing may lie beyond the range) is drawn to the panel's edge
    and ends in a triangle."""
    from plotnine import aes, facet_wrap, geom_errorbarh, geom_point, ggplot, labs, scale_x_log10, theme, theme_bw

    if crossovers.empty:
        return message_figure("no fitted curves cross in the range of interest")
    frame = crossovers.copy()
    frame["panel"] = frame["task"] + " · " + frame["metric"]
    frame["pair"] = frame["better_below"] + " → " + frame["better_above"]
    frame["confidence"] = frame["p_crossing"]
    frame["open_below"], frame["open_above"] = ~(frame["lower"] > 0), ~np.isfinite(frame["upper"])
    panels = frame.groupby("panel")
    edge_low = panels["total_flops"].transform("min").combine(
        panels["lower"].transform(lambda lower: lower[lower > 0].min()), np.fmin) / 4
    edge_high = panels["total_flops"].transform("max").combine(
        panels["upper"].transform(lambda upper: upper[np.isfinite(upper)].max()), np.fmax) * 4
    frame["xmin"] = frame["lower"].where(~frame["open_below"], edge_low)
    frame["xmax"] = frame["upper"].where(~frame["open_above"], edge_high)
    return (ggplot(frame, aes("total_flops", "pair"))
            + geom_errorbarh(aes(xmin="xmin", xmax="xmax"), height=0.2)
            + geom_point(aes(x="xmin"), data=frame[frame["open_below"]], shape="<", size=3)
            + geom_point(aes(x="xmax"), data=frame[frame["open_above"]], shape=">", size=3)
            + geom_point(aes(fill="confidence"), size=3)
            + scale_x_log10() + facet_wrap("panel", ncol=COLUMNS, scales="free_y")
            + labs(x="total compute where the ranking flips (FLOPs; bar: 90% interval, open where it ends in a "
                     "triangle)",
                   y="better below → better above", fill="P(cross)",
                   title="annealscope: crossovers between sources")
            + theme_bw() + theme(figure_size=(12, panels_height(frame["panel"].nunique(),
                                                               0.5 + 0.4 * frame["pair"].nunique()))))


def costs_figure(metrics: pd.DataFrame):
    """Acquisition against training compute of every cell (mean over seeds), stacked, one panel per source."""
    from plotnine import aes, facet_wrap, geom_col, ggplot, labs, scale_y_continuous, theme, theme_bw

    if not {"train_flops", "acquisition_flops"} <= set(metrics.columns):
        return message_figure("the metrics table has no train_flops and acquisition_flops columns to break down")

    cells = (metrics[metrics["source"] != "base"].groupby(["source", "budget_tokens"], as_index=False)
             [["train_flops", "acquisition_flops"]].mean())
    parts = cells.melt(id_vars=["source", "budget_tokens"], value_vars=["acquisition_flops", "train_flops"],
                       var_name="component", value_name="flops")
    parts["component"] = parts["component"].map({"acquisition_flops": "acquisition", "train_flops": "training"})
    parts["budget"] = pd.Categorical(parts["budget_tokens"].map(lambda tokens: f"{tokens:,}"),
                                     categories=[f"{tokens:,}" for tokens in sorted(set(parts["budget_tokens"]))])
    return (ggplot(parts, aes("budget", "flops", fill="component")) + geom_col()
            + facet_wrap("source", scales="free_y")
            + scale_y_continuous(labels=lambda values: [f"{value:.2g}" for value in values])
            + labs(x="budget (source tokens)", y="FLOPs", fill="",
                   title="annealscope: what each cell cost, acquisition against training (replay not shown)")
            + theme_bw() + theme(figure_size=(12, 5)))


def message_figure(message: str):
    """A figure that says why there is nothing to draw (the output exists either way)."""
    from plotnine import annotate, ggplot, theme, theme_void

    return ggplot() + annotate("text", x=0, y=0, label=message) + theme_void() + theme(figure_size=(8, 2))


def save_figure(figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.save(tmp, format="png", dpi=110, verbose=False, limitsize=False)  # tall with many panels
