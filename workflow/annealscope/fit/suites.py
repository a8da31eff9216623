"""Suites: one panel for several tasks, so that a domain's benchmarks give one decision, not one per task.

A suite's value in a cell is the mean of its tasks' values there, each task weighing the same (the average a
paper reports across benchmarks, which a large task does not dominate), for every metric all its tasks have.
Its standard error is the mean's: √(Σ stderr²) / k, the tasks' items being distinct. In the fit's bootstrap
each replicate of a suite is the mean of its tasks' replicates, so it keeps their paired item draws and the
suite's comparisons between sources keep their correlation. A cell that lacks one of the tasks (a task that
failed there) has no suite row: a mean over fewer tasks would measure something else. A suite's entry may be a
pattern (`mmlu_*`, as fnmatch reads it) that stands for every task of the table it matches, so a group's many
subtasks need not be listed.

lm-eval's groups that the evaluation recorded (`task_groups.json`, from collect) are suites too, named as the
group: each group that lm-eval aggregates, over its leaf tasks in the table, weighted as lm-eval weighs it
(by items where its `aggregate_metric_list` says `weight_by_size`, so `mmlu` is the number lm-eval reports).
A group the table cannot make a suite of (fewer than two of its tasks, no shared metric) is left out, and a
suite of `fit.suites` of the same name takes its place.
"""

from __future__ import annotations

import fnmatch

import numpy as np
import pandas as pd

CELL = ["source", "budget_tokens", "seed", "metric"]


def suite_tasks(table: pd.DataFrame, suites: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each suite's tasks in the table, its patterns expanded. Refuse a suite named like a task of the table, an
    entry the table has no task for, a suite of fewer than two tasks, or one whose tasks share no metric, naming
    the suite and the fix."""
    tasks = sorted(set(table["task"]))
    expanded = {}
    for name, entries in suites.items():
        if name in tasks:
            raise ValueError(f"fit.suites.{name}: the table has a task of that name; name the suite otherwise")
        matched = {entry: fnmatch.filter(tasks, entry) for entry in entries}
        missing = [entry for entry, found in matched.items() if not found]
        if missing:
            raise ValueError(f"fit.suites.{name}: the table has no task {missing}; its tasks are {tasks}")
        members = sorted({task for found in matched.values() for task in found})
        if len(members) < 2:
            raise ValueError(f"fit.suites.{name}: {entries} is the one task {members}; a suite averages two or more")
        metrics = task_metrics(table, members)
        if not set.intersection(*metrics):
            raise ValueError(f"fit.suites.{name}: its tasks share no metric of the fit ("
                             + "; ".join(f"{task}: {', '.join(sorted(shown))}" for task, shown in metrics.items())
                             + "); make a suite of tasks scored alike")
        expanded[name] = members
    return expanded


def group_tasks(table: pd.DataFrame, groups: dict[str, dict]) -> dict[str, list[str]]:
    """Each lm-eval group (`task_groups.json`: name → {tasks, weight_by_size}) that the table can make a suite of:
    its tasks in the table, two or more sharing a metric."""
    tasks = set(table["task"])
    usable = {}
    for name, group in groups.items():
        members = sorted(tasks.intersection(group["tasks"]))
        if name not in tasks and len(members) >= 2 and set.intersection(*task_metrics(table, members)):
            usable[name] = members
    return usable


def task_metrics(table: pd.DataFrame, tasks: list[str]) -> pd.Series:
    """Each of `tasks`' metrics in the table, as a set per task."""
    return table[table["task"].isin(tasks)].groupby("task")["metric"].agg(set)


def with_suites(table: pd.DataFrame, suites: dict[str, list[str]], replicates: np.ndarray | None = None,
                groups: dict[str, dict] | None = None) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The table (its index positional) with the rows of each suite and usable lm-eval group appended, a row per
    cell and metric where every task of it has a finite value; given the rows' bootstrap `replicates`
    (rows × draws), those of the appended rows too."""
    groups = groups or {}
    members = group_tasks(table, groups) | suite_tasks(table, suites)
    if not members:
        return table, replicates
    rows, extra = [table], []
    for name, tasks in members.items():
        scored = table[table["task"].isin(tasks) & np.isfinite(table["value"].to_numpy(float))]
        scored = scored[scored.groupby(CELL)["task"].transform("nunique") == len(tasks)]
        if scored.empty:
            continue
        by_items = (name not in suites and groups[name].get("weight_by_size", False) and "n_items" in scored
                    and (scored["n_items"] > 0).all())
        weight = scored["n_items"].astype(float) if by_items else pd.Series(1.0, index=scored.index)
        weight = weight / weight.groupby([scored[key] for key in CELL]).transform("sum")
        cells = scored.assign(weighted=weight * scored["value"], variance=(weight * scored["stderr"]) ** 2
                              ).groupby(CELL, sort=True)
        suite = cells.first().reset_index()  # the cell's own columns (costs, checkpoint) are every task's
        suite["task"] = name
        suite["value"] = cells["weighted"].sum().to_numpy()
        suite["stderr"] = np.sqrt(cells["variance"].sum().to_numpy())
        if "n_items" in suite:
            suite["n_items"] = cells["n_items"].sum().to_numpy()
        rows.append(suite[table.columns])
        if replicates is not None:
            sums = np.zeros((cells.ngroups, replicates.shape[1]))
            np.add.at(sums, cells.ngroup().to_numpy(), replicates[scored.index.to_numpy()] * weight.to_numpy()[:, None])
            extra.append(sums)
    combined = pd.concat(rows, ignore_index=True)
    return combined, (np.vstack([replicates, *extra]) if replicates is not None else None)
