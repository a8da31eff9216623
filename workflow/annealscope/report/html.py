"""A single-file HTML report of a fit: figures with captions, decisions, crossovers, allocation, fits, data."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from annealscope.core.attribution import attribution_table
from annealscope.core.groups import grouped_tasks, read_groups
from annealscope.core.io import atomic_path, read_json
from annealscope.core.layout import BACKTEST_OUTPUTS, BASE_SOURCE, CAPTIONS
from annealscope.report.summary import summary_table

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}table{border-collapse:collapse;
font-size:.85rem;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
th{background:#f3f3f3}img{max-width:100%}h1{font-size:1.5rem}p.caption{color:#444;max-width:60rem}"""
SECTIONS = (  # (heading, figure, table, caption file)
    ("Scaling curves", "curves.png", None, "curves.rst"),
    ("Ranking by compute", "ranking.png", None, "ranking.rst"),
    ("Best source at each compute, and the micro-annealing view", None, "decisions.csv", "decisions.rst"),
    ("Crossovers", "crossovers.png", "crossovers.csv", "crossovers.rst"),
    ("Allocation of a budget across sources", None, "allocation.csv", "allocation.rst"),
    ("Cost breakdown", "costs.png", None, "costs.rst"),
    ("Fits", None, "fits.csv", "fits.rst"),
)


def caption(name: str) -> str:
    """A caption from workflow/report (the same text `snakemake --report` shows), as plain HTML."""
    return html.escape((CAPTIONS / name).read_text(encoding="utf-8").replace("``", "").strip())


def render_report(fit_dir: str | Path, metrics_path: str | Path, out: str | Path, title: str = "annealscope",
                  backtest_dir: str | Path | None = None, groups_path: str | Path | None = None,
                  screened_path: str | Path | None = None) -> None:
    fit_dir = Path(fit_dir)
    backtest = pd.read_csv(Path(backtest_dir) / BACKTEST_OUTPUTS[1]) if backtest_dir is not None else None
    decisions = pd.read_csv(fit_dir / "decisions.csv")
    grouped = grouped_tasks(read_groups(groups_path) if groups_path else {}, set(decisions["task"]))
    summary = summary_table(decisions[~decisions["task"].isin(grouped)], pd.read_csv(fit_dir / "crossovers.csv"),
                            backtest)
    sections = [f"<h1>{html.escape(title)}</h1>", "<h2>Summary</h2>",
                f'<p class="caption">{caption("summary.rst")}</p>', table_html(summary)]
    if grouped:
        sections.append(f'<p class="caption">{len(grouped)} tasks of lm-eval groups are summarised and drawn by '
                        "their group's panel; the tables below hold each of them.</p>")
    for heading, figure, table, caption_file in SECTIONS:
        sections += [f"<h2>{html.escape(heading)}</h2>", f'<p class="caption">{caption(caption_file)}</p>']
        if figure == "curves.png":
            weights = form_weight_caption(pd.read_csv(fit_dir / "fits.csv"))
            sections.append(f'<p class="caption">{html.escape(weights)}</p>')
        if figure:
            data = base64.b64encode((fit_dir / figure).read_bytes()).decode()
            sections.append(f'<img alt="{html.escape(heading)}" src="data:image/png;base64,{data}">')
        if table:
            frame = pd.read_csv(fit_dir / table)
            sections.append(table_html(frame))
    if backtest_dir is not None:
        sections += ["<h2>Backtest: each source's largest budget predicted from the rest</h2>",
                     f'<p class="caption">{caption("backtest.rst")}</p>',
                     *(table_html(pd.read_csv(Path(backtest_dir) / name)) for name in BACKTEST_OUTPUTS[::-1])]
    metrics = pd.read_csv(metrics_path)
    attribution = (attribution_table(metrics) if "train_flops" in metrics.columns else
                   pd.DataFrame({"note": ["the metrics table does not record the training FLOPs (train_flops)"]}))
    sections += ["<h2>Grid compute</h2>", f'<p class="caption">{caption("attribution.rst")}</p>',
                 attribution.to_html(index=False, float_format=lambda v: f"{v:.4g}")]
    sections += ["<h2>Training precision</h2>", f'<p class="caption">{caption("precision.rst")}</p>',
                 precision_table(metrics).to_html(index=False)]
    if screened_path is not None:
        sections += ["<h2>Screened tasks</h2>", f'<p class="caption">{caption("screening.rst")}</p>',
                     table_html(screening_table(read_json(screened_path)))]
    sections += ["<h2>Observations</h2>", f'<p class="caption">{caption("metrics.rst")}</p>',
                 metrics.drop(columns=["checkpoint", "dtype_reason"], errors="ignore").to_html(
                     index=False, float_format=lambda v: f"{v:.4g}")]
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    with atomic_path(out) as tmp:
        tmp.write_text(document, encoding="utf-8")


def screening_table(screened: dict) -> pd.DataFrame:
    """One row per screened task: its items, those left out, and how many of them each source holds."""
    return pd.DataFrame([{"task": task, "items": entry["items"], "not scored": entry["excluded"],
                          **{f"found in {source}": count for source, count in entry["by_source"].items()}}
                         for task, entry in screened["tasks"].items()])


def table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="") if len(frame) else "<p>(none)</p>"


def form_weight_caption(fits: pd.DataFrame) -> str:
    """Which forms carry each curve's weight, e.g. "gsm8k · acc · web: anchored_power_law 0.71, log_linear 0.29"."""
    lines = []
    for row in fits[fits["form"].notna()].itertuples():
        weights = json.loads(row.form_weights)
        lines.append(f"{row.task} · {row.metric} · {row.source}: "
                     + ", ".join(f"{form} {weight:.2f}" for form, weight in weights.items()))
    return "Forms averaged per curve, with their weights: " + ("; ".join(lines) or "none fitted") + "."


def precision_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Which precision each source's anneals ran in, and why (a table from elsewhere may not say)."""
    if "dtype" not in metrics.columns:
        return pd.DataFrame({"note": ["the metrics table does not record the training precision"]})
    annealed = metrics[metrics["source"] != BASE_SOURCE].fillna({"dtype_reason": ""})
    cells = annealed.drop_duplicates(["source", "budget_tokens", "seed"])
    return (cells.groupby(["source", "dtype", "dtype_reason"], dropna=False).size().rename("cells").reset_index())
