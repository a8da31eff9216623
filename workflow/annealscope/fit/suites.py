"""Suites: one panel for several tasks, so that a domain's benchmarks give one decision, not one per task.

A suite's value in a cell is the mean of its tasks' values there, each task weighing the same (the average a
paper reports across benchmarks, which a large task does not dominate), for every metric all its tasks have.
Its standard error is the mean's: √(Σ stderr²) / k, the tasks' items being distinct. In the fit's bootstrap
each replicate of a suite is the mean of its tasks' replicates, so it keeps their paired item draws and the
suite's comparisons between sources keep their correlation. A cell that lacks one of the tasks (a task that
failed there) has no suite row: a mean over fewer tasks would measure something else. A suite's entry may be a
pattern (`mmlu_*`, as fnmatch reads it) that stands for every task of the table it matches, so a group's many
subtasks need not be listed.
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
        metrics = table[table["task"].isin(members)].groupby("task")["metric"].agg(set)
        if not set.intersection(*metrics):
            raise ValueError(f"fit.suites.{name}: its tasks share no metric of the fit ("
                             + "; ".join(f"{task}: {', '.join(sorted(shown))}" for task, shown in metrics.items())
                             + "); make a suite of tasks scored alike")
        expanded[name] = members
    return expanded


def with_suites(table: pd.DataFrame, suites: dict[str, list[str]], replicates: np.ndarray | None = None
                ) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The table (its index positional) with each suite's rows appended, a row per cell and metric where every
    task of the suite has a finite value; given the rows' bootstrap `replicates` (rows × draws), those of the
    suite rows appended too."""
    if not suites:
        return table, replicates
    rows, extra = [table], []
    for name, members in suite_tasks(table, suites).items():
        count = len(members)
        scored = table[table["task"].isin(members) & np.isfinite(table["value"].to_numpy(float))]
        scored = scored[scored.groupby(CELL)["task"].transform("nunique") == count]
        if scored.empty:
            continue
        cells = scored.assign(variance=scored["stderr"] ** 2).groupby(CELL, sort=True)
        suite = cells.first().reset_index()  # the cell's own columns (costs, checkpoint) are every task's
        suite["task"] = name
        suite["value"] = cells["value"].mean().to_numpy()
        suite["stderr"] = np.sqrt(cells["variance"].sum().to_numpy()) / count
        if "n_items" in suite:
            suite["n_items"] = cells["n_items"].sum().to_numpy()
        rows.append(suite[table.columns])
        if replicates is not None:
            sums = np.zeros((cells.ngroups, replicates.shape[1]))
            np.add.at(sums, cells.ngroup().to_numpy(), replicates[scored.index.to_numpy()])
            extra.append(sums / count)
    combined = pd.concat(rows, ignore_index=True)
    return combined, (np.vstack([replicates, *extra]) if replicates is not None else None)
