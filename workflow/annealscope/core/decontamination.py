"""What a change of the evaluated tasks costs a curated grid. Every source is decontaminated against every task
and held-out domain the config evaluates (`finish_shard`), so adding or removing one reruns each curated source's
decontamination, rewrites its token array and retrains all its cells. The plan says so before anything runs,
from the tasks each source's manifest counted removals for."""

from __future__ import annotations

from pathlib import Path

from annealscope.core.grid import planned_as_run, planned_cells
from annealscope.core.io import read_json
from annealscope.core.layout import MANIFEST, evaluated_task_names, run_path


def decontaminated_names(manifest: dict) -> list[str] | None:
    """The tasks a source's curation was decontaminated against, as its manifest counted removals for them."""
    steps = [step for step in manifest["steps"] if "removed_by_task" in step]
    return sorted(steps[-1]["removed_by_task"]) if steps else None


def retraining_lines(config: dict, run_dir: str | Path) -> list[str]:
    """For the curated sources decontaminated against other tasks than the config evaluates, a warning with the
    tasks added and dropped and the cells and training compute the change reruns."""
    configured = sorted(evaluated_task_names(config["eval"]))
    recorded: dict[str, list[str]] = {}
    for name in config["sources"]:
        manifest = run_path(MANIFEST, run_dir, source=name)
        tasks = decontaminated_names(read_json(manifest)) if manifest.is_file() else None
        if tasks is not None and tasks != configured:
            recorded[name] = tasks
    if not recorded:
        return []
    before = {task for tasks in recorded.values() for task in tasks}
    added, dropped = sorted(set(configured) - before), sorted(before - set(configured))
    change = " and ".join(part for part in (f"adds {added}" if added else "", f"drops {dropped}" if dropped else "")
                          if part)
    rows = [row for row in planned_cells(config) if row.cell.source in recorded]
    flops, hours = planned_as_run(rows)
    cost = f" ({flops:.3g} train FLOPs, {hours:.3g} GPU-hours as planned)" if flops else ""
    return [f"warning: sources {sorted(recorded)} were decontaminated against other tasks than eval lists now (it "
            f"{change or 'differs per source'}). Every source is "
            f"decontaminated against every evaluated task, so theirs reruns and their {len(rows)} cells retrain{cost}; "
            "to keep them, restore eval.tasks and eval.heldout"]
