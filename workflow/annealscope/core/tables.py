"""The tables between stages: `metrics.csv` and `items.parquet`, written by collect and read by the fit,
the planner and the report (docs/design.md gives their meaning)."""

METRICS_COLUMNS = ["source", "curation", "budget_tokens", "seed", "train_tokens", "unique_tokens", "epochs",
                   "train_flops", "acquisition_flops", "total_flops", "task", "metric", "value", "stderr", "n_items",
                   "checkpoint", "replay_tokens", "replay_flops", "acquisition_usd", "total_usd", "available_tokens",
                   "shared_flops", "dtype", "dtype_reason"]
ITEM_COLUMNS = ("source", "budget_tokens", "seed", "task", "metric", "item", "value")
