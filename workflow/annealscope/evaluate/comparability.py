"""Whether the evaluated cells of a grid can share curves: each task scored under one version of it.

A grid grows over weeks, and its evaluations may run under different installations. lm-eval gives every task a
version, which it raises when the task's prompts or scoring change; cells that scored one task under two
versions measured two different things, so no curve may join them. Different lm-eval, transformers or torch
versions may change scores without a task's version changing, and so may different torch, DeepSpeed or
transformers versions in training: those are reported but not refused.
"""

from __future__ import annotations

from collections import defaultdict

from packaging.version import InvalidVersion, Version

Cell = tuple[str, int, int]  # (source, budget_tokens, seed)
SHOWN = 4  # cells named per version in a message


def check_task_versions(by_cell: dict[Cell, dict]) -> list[str]:
    """Raise ValueError if some task was scored under different versions, naming the task, each version's cells
    and the fix; else return a warning naming the cells scored before versions were recorded, if any
    (`by_cell`: each cell's scores JSON)."""
    conflicts = []
    for task in sorted({task for scores in by_cell.values() for task in scores["tasks"]}):
        cells = _cells_by(by_cell, lambda scores, task=task: scores.get("task_versions", {}).get(task)
                          if task in scores["tasks"] else None)
        if len(cells) > 1:
            conflicts.append(f"{task}: {_listed(cells)}")
    if conflicts:
        raise ValueError("cells scored a task under different versions of it, so their scores cannot share a curve: "
                         + "; ".join(conflicts) + ". Evaluate them all under one lm-eval: rerun the evaluations "
                         "(`snakemake --forcerun evaluate`, or delete the older cells' scores.json) or install the "
                         "lm-eval that scored them")
    unrecorded = [cell for cell, scores in by_cell.items() if "task_versions" not in scores]
    return [f"warning: {len(unrecorded)} cell(s) were scored before task versions were recorded, so theirs are not "
            f"checked: {_named(sorted(unrecorded))}"] if unrecorded else []


def software_warnings(by_cell: dict[Cell, dict[str, dict]]) -> list[str]:
    """A warning for each package whose version differs between cells, in what scored them (`scored`) or trained
    them (`trained`): `by_cell` maps each cell to those two records of package versions, either absent where the
    cell does not record it."""
    warnings = []
    for stage in ("scored", "trained"):
        for package in sorted({package for records in by_cell.values() for package in records.get(stage) or {}}):
            cells = _cells_by(by_cell, lambda records, stage=stage, package=package:
                              (records.get(stage) or {}).get(package))
            if len(cells) > 1:
                warnings.append(f"warning: cells were {stage} under different {package} versions, which may move "
                                f"scores with no task's version changing: {_listed(cells)}")
    return warnings


def _cells_by(by_cell: dict[Cell, dict], version) -> dict[str, list[Cell]]:
    """The cells by the version `version` reads from their records, those that record none left out."""
    cells = defaultdict(list)
    for cell, scores in sorted(by_cell.items()):
        if (value := version(scores)) is not None:
            cells[str(value)].append(cell)
    return cells


def _listed(cells: dict[str, list[Cell]]) -> str:
    """Each version's cells, oldest version first (4.57.0 before 4.100.0)."""
    return ", ".join(f"version {version} in {_named(cells[version])}" for version in sorted(cells, key=_order))


def _order(version: str) -> tuple:
    """A version's place among others: PEP 440's order, after it any that does not follow PEP 440, by text."""
    try:
        return (0, Version(version), "")
    except InvalidVersion:
        return (1, Version("0"), version)


def _named(cells: list[Cell]) -> str:
    names = [f"{source}/{budget}/seed{seed}" for source, budget, seed in cells[:SHOWN]]
    return " ".join(names) + (f" and {len(cells) - SHOWN} more" if len(cells) > SHOWN else "")
