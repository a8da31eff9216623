"""Which evaluated tasks the training data is decontaminated against, which are screened instead, and what a
change of either costs a curated grid.

`eval.decontaminate` (by default every task of `eval.tasks` and every held-out domain) lists the tasks whose
items no training document may share an n-gram with: curation drops such documents (`finish_shard`, against
the tasks `prepare_tasks` writes). An evaluated task not listed is screened: `prepare_screened_tasks` writes it
apart, `screen_shard` finds its items that share an n-gram with any source's curated documents, and `collect`
leaves those items out of its scores. So a benchmark added to a trained grid is scored on the cells as they
were trained, cleanly, instead of every source being curated and every cell trained again.

Changing the listed tasks reruns each curated source's decontamination and retrains its cells; the plan warns
of it before anything runs, from the tasks each source's manifest counted removals for.
"""

from __future__ import annotations

from pathlib import Path

from annealscope.core.io import read_json
from annealscope.core.layout import HELDOUT_PREFIX, MANIFEST, PREPARED_RECORD, evaluated_task_names, run_path


def decontaminated_names(evaluation: dict) -> list[str]:
    """The evaluated tasks curation decontaminates against, in configured order."""
    listed = evaluation.get("decontaminate")
    return [name for name in evaluated_task_names(evaluation) if listed is None or name in listed]


def screened_names(evaluation: dict) -> list[str]:
    """The evaluated tasks whose items found in training data are left out of their scores."""
    listed = set(decontaminated_names(evaluation))
    return [name for name in evaluated_task_names(evaluation) if name not in listed]


def task_subset(evaluation: dict, names: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """`eval.tasks` and `eval.heldout` cut to `names`, each in configured order."""
    return ([task for task in evaluation["tasks"] if task in names],
            {domain: references for domain, references in evaluation["heldout"].items()
             if f"{HELDOUT_PREFIX}{domain}" in names})


def prepared_subset(evaluation: dict, names: list[str], folder: str | Path) -> tuple[list[str], dict[str, list[str]]]:
    """`task_subset`, in the order the tasks in `folder` were prepared in where they are the same tasks and
    held-out corpora: what `prepare_tasks` writes does not depend on the order, so reordering `eval.tasks` or
    `eval.heldout` reruns nothing (each is a parameter of the rule). A folder prepared before it recorded its
    order (`PREPARED_RECORD`) takes the configured order."""
    tasks, heldout = task_subset(evaluation, names)
    prepared = prepared_record(folder)
    if prepared and sorted(prepared["tasks"]) == sorted(tasks) and prepared["heldout"] == heldout:
        return prepared["tasks"], prepared["heldout"]
    return tasks, heldout


def prepared_record(folder: str | Path) -> dict | None:
    """What the tasks in `folder` were prepared from (`prepare_tasks`), or None before they recorded it."""
    record = Path(folder, PREPARED_RECORD)
    return read_json(record) if record.is_file() else None


def curated_against(manifest: dict) -> list[str] | None:
    """The tasks a source's curation was decontaminated against, as its manifest counted removals for them."""
    steps = [step for step in manifest["steps"] if "removed_by_task" in step]
    return sorted(steps[-1]["removed_by_task"]) if steps else None


def retraining_lines(config: dict, run_dir: str | Path) -> list[str]:
    """For the curated sources decontaminated against other tasks than the config lists, a warning with the
    tasks added and dropped, the cells and training compute the change reruns, and, where every curated source
    was decontaminated against the same tasks, the `eval.decontaminate` that keeps them."""
    from annealscope.core.grid import planned_as_run, planned_cells  # grid's submission table imports this module

    listed = sorted(decontaminated_names(config["eval"]))
    curated: dict[str, list[str]] = {}
    for name in config["sources"]:
        manifest = run_path(MANIFEST, run_dir, source=name)
        tasks = curated_against(read_json(manifest)) if manifest.is_file() else None
        if tasks is not None:
            curated[name] = tasks
    stale = {name: tasks for name, tasks in curated.items() if tasks != listed}
    if not stale:
        return []
    before = {task for tasks in stale.values() for task in tasks}
    added, dropped = sorted(set(listed) - before), sorted(before - set(listed))
    change = " and ".join(part for part in (f"adds {added}" if added else "", f"drops {dropped}" if dropped else "")
                          if part)
    rows = [row for row in planned_cells(config) if row.cell.source in stale]
    flops, hours = planned_as_run(rows)
    cost = f" ({flops:.3g} train FLOPs, {hours:.3g} GPU-hours as planned)" if flops else ""
    line = (f"warning: sources {sorted(stale)} were decontaminated against other tasks than the config lists now "
            f"(it {change or 'differs per source'}), so their decontamination reruns and their {len(rows)} cells "
            f"retrain{cost}.")
    if len({tuple(tasks) for tasks in curated.values()}) == 1:
        missing = sorted(before - set(evaluated_task_names(config["eval"])))
        line += (f" To keep them and screen the other tasks instead, set eval.decontaminate: {sorted(before)}"
                 + (f" and evaluate {missing} again" if missing else ""))
    return [line]
