"""Collect every evaluated cell into the tidy `metrics.csv` of docs/design.md.

Acquisition compute is charged per cell for the unique source tokens it trained on
(acquisition FLOPs per curated token × unique tokens): repeating data costs training, not acquisition.
Under a branched schedule a cell is charged all the training it needed, its stable prefix included;
`shared_flops` says how much of that the other budgets of its (source, seed) share (see attribution).
Dollars, when `plan.gpu_hour_usd` is set: training GPU-hours at that price (at `plan.mfu` of
`plan.gpu_peak_flops`), plus the source's own acquisition price, or its acquisition FLOPs at the same
GPU price when it has none. The per-item scores of every cell go to one table for the fit's bootstrap, and
the lm-eval groups the cells recorded to `task_groups.json`, which the fit makes panels of.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pandas as pd

from annealscope.core.flops import gpu_hours
from annealscope.core.groups import merge_groups
from annealscope.core.io import atomic_path, read_json, read_jsonl, write_json
from annealscope.core.layout import ANNEAL_SUMMARY, BASE_SOURCE, ITEMS, MANIFEST, cell_from_scores_path, run_path
from annealscope.core.tables import ITEM_COLUMNS, METRICS_COLUMNS
from annealscope.evaluate.aggregation import aggregate
from annealscope.evaluate.comparability import check_task_versions, software_warnings


def cell_costs(run_dir: Path, source: str, budget: int, seed: int) -> dict:
    """Tokens and compute of one cell, from its training summary and its source's manifest, and the package
    versions that trained it (`software`, None where not recorded)."""
    if source == BASE_SOURCE:
        return {"curation": BASE_SOURCE, "train_tokens": 0, "unique_tokens": 0, "epochs": 0.0, "train_flops": 0.0,
                "acquisition_flops": 0.0, "replay_tokens": 0, "replay_flops": 0.0, "acquisition_usd": 0.0,
                "available_tokens": 0, "shared_flops": 0.0, "retrained_flops": 0.0, "dtype": None, "dtype_reason": None,
                "software": None}
    summary = read_json(run_path(ANNEAL_SUMMARY, run_dir, source=source, budget=budget, seed=seed))
    manifest = read_json(run_path(MANIFEST, run_dir, source=source))
    share = summary["unique_source_tokens"] / manifest["tokens"] if manifest["tokens"] else 0.0
    usd = manifest.get("acquisition_usd")
    return {"curation": manifest["curation"], "train_tokens": summary["source_tokens"],
            "unique_tokens": summary["unique_source_tokens"], "epochs": summary["epochs"],
            "train_flops": summary["train_flops"], "acquisition_flops": manifest["acquisition_flops"] * min(share, 1.0),
            "replay_tokens": summary["replay_tokens"], "replay_flops": summary["replay_flops"],
            "acquisition_usd": usd * min(share, 1.0) if usd is not None else None,
            "available_tokens": manifest["tokens"], "shared_flops": summary.get("shared_flops", 0.0),
            "retrained_flops": summary.get("retrained_flops", 0.0),
            "dtype": summary["dtype"], "dtype_reason": summary.get("dtype_reason", "recorded before dtype_reason"),
            "software": summary.get("software")}


def total_dollars(costs: dict, plan: dict) -> float | None:
    """Training at the plan's GPU-hour price plus acquisition (its own price, else its FLOPs at the same
    price); None without `plan.gpu_hour_usd`."""
    price = plan.get("gpu_hour_usd")
    if price is None:
        return None
    acquisition = costs["acquisition_usd"]
    if acquisition is None:
        acquisition = price * gpu_hours(costs["acquisition_flops"], plan)
    return price * gpu_hours(costs["train_flops"], plan) + acquisition


def missing_tasks(scores_paths: list[str | Path]) -> list[dict]:
    """(cell, task, why) for every task a cell lacks: failed in evaluation, or absent where others have it."""
    by_cell = {cell_from_scores_path(path): read_json(path) for path in scores_paths}
    every_task = {task for scores in by_cell.values() for task in (*scores["tasks"], *scores.get("failed", {}))}
    missing = []
    for (source, budget, seed), scores in sorted(by_cell.items()):
        for task in sorted(every_task - set(scores["tasks"])):
            why = scores.get("failed", {}).get(task, "not evaluated")
            missing.append({"source": source, "budget_tokens": budget, "seed": seed, "task": task, "why": why})
    return missing


def collect(scores_paths: list[str | Path], run_dir: str | Path, plan: dict | None = None,
            excluded: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """The tidy table of every evaluated (cell, task, metric); missing tasks are left out (see missing_tasks).
    A screened task is scored without its `excluded` items (`curate.screen`). Cells that scored a task under
    different versions of it are refused, and cells scored or trained under different package versions are
    warned of (`comparability`)."""
    by_cell = {cell_from_scores_path(path): read_json(path) for path in scores_paths}
    for (source, budget, seed), scores in by_cell.items():
        items = run_path(ITEMS, run_dir, source=source, budget=budget, seed=seed)
        scores["tasks"] = screened_scores(scores["tasks"], items, excluded or {})
    for warning in check_task_versions(by_cell):
        print(warning)
    rows, software = [], {}
    for (source, budget, seed), scores in by_cell.items():
        costs = cell_costs(Path(run_dir), source, budget, seed)
        software[source, budget, seed] = {"scored": scores.get("software"), "trained": costs.pop("software")}
        costs["total_usd"] = total_dollars(costs, plan or {})
        for task, metrics in scores["tasks"].items():
            for metric, result in metrics.items():
                rows.append({"source": source, "budget_tokens": budget, "seed": seed, **costs,
                             "total_flops": costs["train_flops"] + costs["acquisition_flops"], "task": task,
                             "metric": metric, "value": result["value"], "stderr": result["stderr"],
                             "n_items": result["n_items"], "checkpoint": scores["checkpoint"]})
    if not rows:
        raise ValueError("no evaluation scores to collect")
    for warning in software_warnings(software):
        print(warning)
    table = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    return table.sort_values(["task", "metric", "source", "budget_tokens", "seed"])


def excluded_items(screened_path: str | Path) -> dict[str, set[str]]:
    """The doc ids to leave out of each (sub)task's scores, from the merged screening (`curate.screen`)."""
    excluded: dict[str, set[str]] = defaultdict(set)
    for entry in read_json(screened_path)["tasks"].values():
        for leaf, doc_ids in entry["found"].items():
            excluded[leaf].update(doc_ids)
    return dict(excluded)


def screened_scores(tasks: dict[str, dict], items_path: Path, excluded: dict[str, set[str]]) -> dict[str, dict]:
    """A cell's task scores, those of a task with `excluded` items aggregated again over its other items (as the
    evaluation aggregates them); a task every item of which is excluded is dropped (the `screen` job's log says
    so)."""
    hit = [task for task in tasks if excluded.get(task)]
    if not hit:
        return tasks
    kept: dict[str, list[dict]] = {task: [] for task in hit}
    for record in read_jsonl(items_path):
        if record["task"] in kept and str(record["doc_id"]) not in excluded[record["task"]]:
            kept[record["task"]].append(record["scores"])
    return {task: aggregate(kept[task]) if task in kept else metrics
            for task, metrics in tasks.items() if task not in kept or kept[task]}


def collect_items(scores_paths: list[str | Path], run_dir: str | Path,
                  excluded: dict[str, set[str]] | None = None) -> pd.DataFrame:
    """Every cell's per-item scores as one long table (source, budget, seed, task, metric, item, value), the
    `excluded` items of screened tasks left out."""
    frames, excluded = [], excluded or {}
    for scores_path in scores_paths:
        source, budget, seed = cell_from_scores_path(scores_path)
        records = [(record["task"], str(record["doc_id"]), metric, value)
                   for record in read_jsonl(run_path(ITEMS, run_dir, source=source, budget=budget, seed=seed))
                   if str(record["doc_id"]) not in excluded.get(record["task"], ())
                   for metric, value in record["scores"].items() if isinstance(value, int | float)]
        frame = pd.DataFrame(records, columns=["task", "item", "metric", "value"])
        frames.append(frame.assign(source=source, budget_tokens=budget, seed=seed))
    return pd.concat(frames, ignore_index=True)[list(ITEM_COLUMNS)].astype({"value": float})


def write_groups(scores_paths: list[str | Path], path: str | Path) -> None:
    """Write `task_groups.json`: the lm-eval groups of the cells (collect_groups)."""
    write_json(path, collect_groups(scores_paths))


def collect_groups(scores_paths: list[str | Path]) -> dict[str, dict]:
    """The lm-eval groups the cells were evaluated under (harness.task_groups); a cell evaluated before groups
    were recorded adds none."""
    return merge_groups(read_json(path).get("groups", {}) for path in scores_paths)


def write_metrics(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_items(items: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        items.to_parquet(tmp, index=False)
