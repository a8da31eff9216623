"""Grid compute as charged and as run: under a branched schedule every cell is charged its whole stable
prefix (what an independent run would need), but the grid trains each (source, seed)'s prefix once, and a
cooldown whose branch checkpoint was pruned trains its stretch of the prefix again (`retrained_flops`)."""

from __future__ import annotations

import pandas as pd

CELL = ["source", "budget_tokens", "seed"]


def as_run(cells: pd.DataFrame, charged: str, shared: str) -> float:
    """What the cells cost together: each one's own part (`charged` − `shared`) plus, once per
    (source, seed), the longest shared prefix."""
    return float((cells[charged] - cells[shared]).sum() + longest_prefixes(cells, shared))


def longest_prefixes(cells: pd.DataFrame, shared: str) -> float:
    """The longest shared prefix of each (source, seed), summed: what the stable phases trained."""
    return float(cells.groupby(["source", "seed"])[shared].max().sum())


def attribution_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per source and in total: cells, train FLOPs charged to them, the shared prefixes trained once, the
    FLOPs as run (with the stretches cooldowns trained again), and as run ÷ charged (1 for independent
    anneals)."""
    cells = metrics[metrics["budget_tokens"] > 0].drop_duplicates(CELL)
    cells = cells.assign(**{column: cells[column].fillna(0.0) if column in cells else 0.0  # or collected before
                            for column in ("shared_flops", "retrained_flops")})
    rows = [{"source": name, **_totals(group)} for name, group in cells.groupby("source", sort=False)]
    rows.append({"source": "grid", **_totals(cells)})
    return pd.DataFrame(rows)


def _totals(cells: pd.DataFrame) -> dict:
    charged = float(cells["train_flops"].sum())
    run = as_run(cells, "train_flops", "shared_flops") + float(cells["retrained_flops"].sum())
    return {"cells": len(cells), "train_flops_charged": charged,
            "shared_prefix_flops": longest_prefixes(cells, "shared_flops"),
            "train_flops_as_run": run, "as_run_over_charged": run / charged if charged else float("nan")}
