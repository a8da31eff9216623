"""Reclaim a branched grid's disk (`annealscope prune-branches RUN_DIR`): remove each stable phase's branch-point
checkpoints whose cooldowns have all finished, all but its newest, which a larger budget extends from.

A branch checkpoint holds the weights and optimizer state (87.6 GB for math-7b's model under ZeRO-3), one per
budget, source and seed. A pruned step is recorded in its folder (`checkpoints.prune`), so the stable job, rerun for a
new budget, does not train it again; a cooldown that must rerun from it trains its stable stretch itself, from
the nearest checkpoint below (`rank._branch_checkpoint`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from annealscope.anneal.checkpoints import complete_steps, prune, tag_of
from annealscope.anneal.launch import LAUNCH_PORT
from annealscope.core.io import read_json
from annealscope.core.layout import ANNEAL_SUMMARY, STABLE_CHECKPOINTS, run_path

MARKER = re.compile(r"branch(\d+)\.json")  # layout.STABLE_BRANCH: what one budget's cooldown starts from


@dataclass(frozen=True)
class Phase:
    """One stable phase's branch checkpoints: those to prune, and those kept with the reason."""

    source: str
    seed: int
    directory: Path
    prunable: dict[int, int]  # step -> bytes
    kept: dict[int, str]  # step -> why


def stable_phases(run_dir: str | Path) -> list[Phase]:
    """Every stable phase of the run, with what `prune_branches` would remove."""
    pattern = str(run_path(STABLE_CHECKPOINTS, ".", source="*", seed="*"))
    return [_phase(Path(run_dir), directory) for directory in sorted(Path(run_dir).glob(pattern))]


def _phase(run_dir: Path, directory: Path) -> Phase:
    source, seed = directory.parent.parent.name, int(directory.parent.name.removeprefix("seed"))
    budgets: dict[int, list[int]] = {}  # step -> the budgets branching there
    for marker in directory.parent.iterdir():
        if (match := MARKER.fullmatch(marker.name)) and (step := read_json(marker).get("step")) is not None:
            budgets.setdefault(step, []).append(int(match[1]))
    complete = complete_steps(directory)
    if (directory.parent / LAUNCH_PORT).is_file():  # it may be loading any of them
        why = "its stable job is training (or was killed: rerun it first)"
        return Phase(source, seed, directory, {}, dict.fromkeys(sorted(complete), why))
    prunable, kept = {}, {}
    for step in sorted(complete):
        waiting = [budget for budget in sorted(budgets.get(step, []))
                   if not run_path(ANNEAL_SUMMARY, run_dir, source=source, budget=budget, seed=seed).is_file()]
        if step == max(complete):
            kept[step] = "the newest: a larger budget extends the stable phase from it"
        elif step not in budgets:
            kept[step] = "no budget's marker names it (its stable job has not finished)"
        elif waiting:
            kept[step] = f"the cooldown of budget {', '.join(map(str, waiting))} has not finished"
        else:
            prunable[step] = _bytes(directory / tag_of(step))
    return Phase(source, seed, directory, prunable, kept)


def _bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def prune_branches(phases: list[Phase]) -> None:
    for phase in phases:
        if phase.prunable:
            prune(phase.directory, set(phase.prunable))
