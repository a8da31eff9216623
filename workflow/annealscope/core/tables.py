"""The tables between stages: `metrics.csv` and `items.parquet`, written by collect and read by the fit,
the planner and the report (docs/design.md gives their meaning)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

METRICS_COLUMNS = ["source", "curation", "budget_tokens", "seed", "train_tokens", "unique_tokens", "epochs",
                   "train_flops", "acquisition_flops", "total_flops", "task", "metric", "value", "stderr", "n_items",
                   "checkpoint", "replay_tokens", "replay_flops", "acquisition_usd", "total_usd", "available_tokens",
                   "shared_flops", "retrained_flops", "dtype", "dtype_reason"]
ITEM_COLUMNS = ("source", "budget_tokens", "seed", "task", "metric", "item", "value")


def read_fit_input(metrics_path: str, items_path: str | None, seeds: list[int] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The metrics table and its per-item scores, optionally only the runs of `seeds` (the base model's rows
    stay: every seed anneals from it). A seed the table lacks is an error naming the seeds it has."""
    import pandas as pd

    metrics = pd.read_csv(metrics_path)
    items = pd.read_parquet(items_path) if items_path else None
    if seeds is None:
        return metrics, items
    runs = metrics["source"] != "base"
    present = sorted(set(metrics.loc[runs, "seed"]))
    missing = sorted(set(seeds) - set(present))
    if missing:
        raise ValueError(f"--seeds {missing}: {metrics_path} has runs of seeds {present}")
    metrics = metrics[~runs | metrics["seed"].isin(seeds)].reset_index(drop=True)
    if items is not None:
        items = items[(items["source"] == "base") | items["seed"].isin(seeds)].reset_index(drop=True)
    return metrics, items
