"""lm-eval's groups as the evaluation records them (`task_groups.json`: group → its leaf tasks and whether lm-eval
weighs them by size): merged across cells, read back, and the tasks a group's own panel stands for. Collect and
import write the file; the fit makes a panel of each group (`fit/suites.py`); the figures, the report's summary
and the planner show a group's tasks through that panel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path


def merge_groups(recorded: Iterable[dict[str, dict]]) -> dict[str, dict]:
    """Groups recorded per cell as one: each group's tasks are those of any cell (the first cell's weighting)."""
    groups: dict[str, dict] = {}
    for cell in recorded:
        for name, group in cell.items():
            known = groups.setdefault(name, {"tasks": [], "weight_by_size": group["weight_by_size"]})
            known["tasks"] = sorted({*known["tasks"], *group["tasks"]})
    return dict(sorted(groups.items()))


def read_groups(path: str | Path) -> dict[str, dict]:
    """A `task_groups.json` (collect's, or import-lm-eval's): group name → {tasks: [names], weight_by_size: bool};
    a file of another shape is refused, naming the group and what it should hold."""
    groups = json.loads(Path(path).read_text())
    if not isinstance(groups, dict):
        raise ValueError(f"{path}: not a task_groups.json (an object of groups); give the one collect wrote")
    for name, group in groups.items():
        if not (isinstance(group, dict) and isinstance(group.get("tasks"), list)
                and all(isinstance(task, str) for task in group["tasks"])
                and isinstance(group.get("weight_by_size"), bool)):
            raise ValueError(f"{path}: group {name!r} is {group!r}; each group is "
                             '{"tasks": [task names], "weight_by_size": true or false}')
    return groups


def grouped_tasks(groups: dict[str, dict], panels: set[str]) -> set[str]:
    """The tasks that their lm-eval group's own panel stands for in figures and summaries: the leaf tasks of every
    group among `panels` (the tasks fitted). A group such as `mmlu` is read as one benchmark, as lm-eval reports
    it; its subgroups (`mmlu_stem`, ...) keep their panels, and every table keeps every task."""
    return {task for name, group in groups.items() if name in panels for task in group["tasks"]}
