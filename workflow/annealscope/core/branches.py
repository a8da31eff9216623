"""Branched warmup-stable-decay grids (`grid.schedule: branched-wsd`): one stable phase per (source, seed)
at the peak LR, checkpointed at each budget's branch point, and one cooldown per budget from there.

A budget's cell trains on the first steps of its (source, seed) data stream (`data.stream_order`) with the
`wsd` schedule: exactly the run an independent `wsd` anneal of that budget on that stream would do, but
the stable prefix is trained once for all budgets (Hägele et al. 2024: such cooldowns match a full decay).
"""

from __future__ import annotations

from dataclasses import dataclass

from annealscope.core.sampling import stream_steps
from annealscope.core.schedule import cooldown_start

BRANCHED = "branched-wsd"


@dataclass(frozen=True)
class Branch:
    budget: int
    step: int  # the first cooldown step: the stable checkpoint the cooldown starts from
    total_steps: int


def branch_point(budget: int, replay_fraction: float, seq_len: int, global_batch: int,
                 cooldown_fraction: float) -> Branch:
    """Where a budget's cooldown leaves the stable phase, and where it ends."""
    total = stream_steps(budget, replay_fraction, seq_len, global_batch)
    return Branch(budget, cooldown_start(total, cooldown_fraction), total)


def config_branches(config: dict, budgets: list[int]) -> list[Branch]:
    """The branch point of each budget, from the config's anneal and replay settings."""
    anneal = config["anneal"]
    return [branch_point(budget, config["replay"]["fraction"], anneal["seq_len"], anneal["global_batch"],
                         anneal["cooldown_fraction"]) for budget in budgets]


def is_branched(config: dict) -> bool:
    return config["grid"]["schedule"] == BRANCHED
