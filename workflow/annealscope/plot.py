"""The scaling-curve figure: observations, fitted curves and 90% bands per source, log compute axis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from annealscope.io import atomic_path


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
              + facet_wrap("panel", scales="free_y", ncol=3)
              + labs(x="total compute (acquisition + training FLOPs)", y="metric", color="source",
                     title="annealscope: metric against total compute per source (dashed: base model)")
              + theme_bw() + theme(figure_size=(12, 6.5)))
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
    rows = [{"panel": f"{row.task} · {row.metric}", "total_flops": row.total_flops, "source": source, "rank": rank}
            for row in fitted.itertuples() for rank, source in enumerate(row.ranking.split(" > "), start=1)]
    ranks = pd.DataFrame(rows, columns=["panel", "total_flops", "source", "rank"])
    return (ggplot(ranks, aes("total_flops", "rank", color="source"))
            + geom_line() + geom_point(size=2) + scale_x_log10() + scale_y_reverse(breaks=range(1, 20))
            + facet_wrap("panel", ncol=3)
            + labs(x="total compute (acquisition + training FLOPs)", y="fitted rank (1 = best)", color="source",
                   title="annealscope: ranking of sources by compute (where lines cross, the ranking flips)")
            + theme_bw() + theme(figure_size=(12, 6.5)))


def save_figure(figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        figure.save(tmp, format="png", dpi=110, verbose=False)
