"""Every rule's settings, as the JSON its params carry, built once from the validated config.

A param's text is what Snakemake compares to decide a rerun, so each is JSON with sorted keys (reordering a
config file reruns nothing) and holds exactly what the job reads. The grid's cells and budgets are computed
once here, not once per job, so planning stays linear in the number of cells.
"""

from __future__ import annotations

import json

from annealscope.core.grid import Cell, cells
from annealscope.core.layout import heldout_task_names


def as_json(value) -> str:
    return json.dumps(value, sort_keys=True)


class RuleSettings:
    """The settings of every rule of one config."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.cells: list[Cell] = cells(config)
        self.budgets = sorted({cell.budget for cell in self.cells})
        self.phases: dict[tuple[str, int], list[int]] = {}
        for cell in self.cells:
            self.phases.setdefault((cell.source, cell.seed), []).append(cell.budget)

    def training(self, **cell) -> str:
        anneal = self.config["anneal"]
        return as_json({**anneal, "peak_flops": anneal["peak_flops"] or self.config["plan"]["gpu_peak_flops"],
                        **cell})

    def pretrain(self) -> str:
        build = self.config["base_model"]["build"]
        return as_json({**self.config["anneal"], "lr": build["lr"], "warmup_steps": build["warmup_steps"],
                        "schedule": "constant", "source_budget_tokens": build["pretrain_tokens"],
                        "replay_fraction": 0.0, "seed": build["init_seed"]})

    def cell(self, source: str, budget: int | str, seed: int | str, **extra) -> str:
        """One cell's training settings; `extra` adds what a stable phase or a cooldown needs."""
        max_epochs = self.config["sources"][source]["max_epochs"]
        return self.training(source_budget_tokens=int(budget), seed=int(seed),
                             replay_fraction=self.config["replay"]["fraction"],
                             **({"max_epochs": max_epochs} if max_epochs is not None else {}), **extra)

    def start(self, source: str, seed: int | str) -> str:
        """What a (source, seed)'s stable phase and all its cooldowns share: every setting but the budgets."""
        return self.cell(source, 0, seed)

    def stable(self, source: str, seed: int | str) -> str:
        """A stable phase: the peak LR after warmup, checkpointed at the branch point of each of its cells'
        budgets; it writes a marker for every budget of the grid (the rule's outputs are the same for all)."""
        return self.cell(source, 0, seed, schedule="constant",
                         branch_budgets=sorted(set(self.phases[source, int(seed)])), marker_budgets=self.budgets)

    def cooldown(self, source: str, budget: int | str, seed: int | str, checkpoints: str) -> str:
        """A budget's cooldown from its stable phase's checkpoint folder at the branch point."""
        return self.cell(source, budget, seed, branch_from=checkpoints)

    def evaluation(self) -> str:
        """The evaluation settings, with the held-out domains' bits-per-byte tasks added to the task list."""
        evaluation = self.config["eval"]
        return as_json({**evaluation, "tasks": [*evaluation["tasks"], *heldout_task_names(evaluation["heldout"])]})

    def fit(self) -> str:
        return as_json({**self.config["fit"], "micro_anneal_budget": self.config["grid"]["micro_anneal_budget"]})
