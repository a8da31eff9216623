"""The tables between stages: `metrics.csv` and `items.parquet`, written by collect and read by the fit,
the planner and the report (docs/design.md gives their meaning)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from annealscope.core.layout import BASE_SOURCE

if TYPE_CHECKING:
    import pandas as pd

METRICS_COLUMNS = ["source", "curation", "budget_tokens", "seed", "train_tokens", "unique_tokens", "epochs",
                   "train_flops", "acquisition_flops", "total_flops", "task", "metric", "value", "stderr", "n_items",
                   "checkpoint", "replay_tokens", "replay_flops", "acquisition_usd", "total_usd", "available_tokens",
                   "shared_flops", "retrained_flops", "dtype", "dtype_reason"]
ITEM_COLUMNS = ("source", "budget_tokens", "seed", "task", "metric", "item", "value")
REQUIRED_COLUMNS = ("source", "budget_tokens", "seed", "total_flops", "task", "metric", "value", "stderr")  # a fit's
NUMERIC_COLUMNS = ("budget_tokens", "seed", "total_flops", "value", "stderr")
ROW_KEY = ["source", "budget_tokens", "seed", "task", "metric"]  # one row of a metrics table


def read_fit_input(metrics_path: str, items_path: str | None, seeds: list[int] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The metrics table and its per-item scores, optionally only the runs of `seeds` (the base model's rows
    stay: every seed anneals from it). A seed the table lacks is an error naming the seeds it has."""
    import pandas as pd

    metrics = pd.read_csv(metrics_path)
    check_table(metrics)  # before choosing seeds by a column it checks
    items = pd.read_parquet(items_path) if items_path else None
    if seeds is None:
        return metrics, items
    runs = metrics["source"] != BASE_SOURCE
    present = sorted(set(metrics.loc[runs, "seed"]))
    missing = sorted(set(seeds) - set(present))
    if missing:
        raise ValueError(f"--seeds {missing}: {metrics_path} has runs of seeds {present}")
    metrics = metrics[~runs | metrics["seed"].isin(seeds)].reset_index(drop=True)
    if items is not None:
        items = items[(items["source"] == BASE_SOURCE) | items["seed"].isin(seeds)].reset_index(drop=True)
    return metrics, items


def check_table(table: pd.DataFrame) -> None:
    """Refuse a metrics table the fit would answer wrongly from: missing columns, no rows, text in a number
    column, a row repeated or given twice with different values (it would count as a second seed, or be
    averaged), or an invalid standard error."""
    import numpy as np
    import pandas as pd

    missing = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}; see docs/design.md, 'The tidy results table'")
    if table.empty:
        raise ValueError("metrics table has no rows")
    for column in NUMERIC_COLUMNS:
        wrong = table[pd.to_numeric(table[column], errors="coerce").isna() & table[column].notna()]
        if len(wrong):
            raise ValueError(f"metrics table column {column} has {len(wrong)} entries that are not numbers, e.g. "
                             f"{wrong[column].iloc[0]!r} at {describe_rows(wrong)}; write a number there (or leave "
                             "a value empty for a missing score)")
    if (table["source"] == BASE_SOURCE).all():
        raise ValueError(f"metrics table has only the base model's rows (source '{BASE_SOURCE}'); a fit needs the "
                         "rows of annealed cells")
    repeated = table[table.duplicated(ROW_KEY, keep=False)]
    if len(repeated):
        conflicting = repeated.groupby(ROW_KEY)["value"].nunique(dropna=False).gt(1).any()
        raise ValueError(f"metrics table has {len(repeated)} rows sharing their (source, budget_tokens, seed, task, "
                         f"metric) {'with different values' if conflicting else 'twice'}, e.g. "
                         f"{describe_rows(repeated)}; keep one row per cell, task and metric (several seeds need "
                         "distinct seed numbers)")
    stderr = table["stderr"].to_numpy(float)
    invalid = table[~(np.isfinite(stderr) & (stderr >= 0))]
    if len(invalid):
        raise ValueError(f"metrics table has {len(invalid)} rows whose stderr is negative or not a number, e.g. "
                         f"{describe_rows(invalid)}; a standard error is a finite number >= 0")


def describe_rows(rows: pd.DataFrame, shown: int = 3) -> str:
    """The first rows of a table by their key, for a message."""
    names = [" ".join(f"{key}={row[key]}" for key in ROW_KEY) for _, row in rows.head(shown).iterrows()]
    return "; ".join(names) + (f"; and {len(rows) - shown} more" if len(rows) > shown else "")
