"""A single-file HTML report of a fit: the figure, the decisions, the fits and the data."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from annealscope.io import atomic_path

STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px}table{border-collapse:collapse;
font-size:.85rem;margin-bottom:1.5rem}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:right}
th{background:#f3f3f3}img{max-width:100%}h1{font-size:1.5rem}"""


def render_report(fit_dir: str | Path, metrics_path: str | Path, out: str | Path, title: str = "annealscope") -> None:
    fit_dir = Path(fit_dir)
    figure = base64.b64encode((fit_dir / "curves.png").read_bytes()).decode()
    ranking = base64.b64encode((fit_dir / "ranking.png").read_bytes()).decode()
    decisions = pd.read_csv(fit_dir / "decisions.csv")
    fits = pd.read_csv(fit_dir / "fits.csv")
    metrics = pd.read_csv(metrics_path)
    micro = decisions[decisions["kind"] != "fitted"]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<img alt="scaling curves" src="data:image/png;base64,{figure}">',
        "<h2>Ranking by compute</h2>",
        f'<img alt="ranking of sources by compute" src="data:image/png;base64,{ranking}">',
        "<h2>Micro-annealing versus the fitted curves</h2>",
        "<p>The ranking a single small-budget anneal gives, next to the fitted ranking at the largest compute "
        "of the grid (Kendall's tau between them).</p>",
        micro.to_html(index=False, float_format=lambda v: f"{v:.3g}"),
        "<h2>Best source at each compute</h2>",
        decisions[decisions["kind"] == "fitted"].to_html(index=False, float_format=lambda v: f"{v:.3g}"),
        "<h2>Fits</h2>", fits.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
        "<h2>Observations</h2>",
        metrics.drop(columns=["checkpoint"]).to_html(index=False, float_format=lambda v: f"{v:.4g}"),
    ]
    document = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")
    with atomic_path(out) as tmp:
        tmp.write_text(document, encoding="utf-8")
