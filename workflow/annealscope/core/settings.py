"""Every rule's settings, built once from the validated config, split in two:

- what changes a job's result goes into its params, whose text Snakemake compares to decide a rerun: JSON
  with sorted keys, so reordering a config file reruns nothing;
- how a job is executed (threads, checkpoint interval, batch sizes, parallel layout, MFU's peak) changes no
  result and must never rerun a finished cell: it reaches the job at run time through the environment
  variable EXECUTION_VARIABLE, which the workflow sets from the config every time it is parsed (Snakemake
  parses it again for every job it runs in its own process, locally or on a cluster node).

The grid's cells and budgets are computed once here, not once per job, so planning stays linear in the cells.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from functools import cache

from annealscope.core.grid import Cell, cells
from annealscope.core.layout import evaluated_task_names
from annealscope.core.schedule import CONSTANT

EXECUTION_VARIABLE = "ANNEALSCOPE_EXECUTION"
EXECUTION = {  # per settings block, the keys that change how a job runs but never what it produces
    "anneal": ("threads", "checkpoint_every", "keep_checkpoints", "max_loss_ratio", "peak_flops", "ranks", "nodes",
               "micro_batch", "activation_checkpointing", "offload_optimizer", "zero_stage", "attention",
               "liger_kernels", "compile", "communication", "monitor"),
    "eval": ("batch_size", "threads"),
    "generator": ("batch_size", "concurrency", "timeout", "base_url", "api_key_env"),
    "classifier": ("batch_size",),
}


def as_json(value) -> str:
    return json.dumps(value, sort_keys=True)


def result_part(block: str, settings: dict) -> dict:
    """`settings` of a block without its execution keys."""
    return {key: value for key, value in settings.items() if key not in EXECUTION[block]}


def execution_part(block: str, settings: dict) -> dict:
    return {key: value for key, value in settings.items() if key in EXECUTION[block]}


def execution_settings(*path: str, job: bool = True) -> dict:
    """This job's execution settings (`execution_settings("anneal")`, or `("sources", name)`), as the workflow
    set them; empty when a command runs by hand, where the schema's defaults apply, which a `job` says once."""
    if job and not os.environ.get(EXECUTION_VARIABLE):
        _say_defaults_apply()
    settings = json.loads(os.environ.get(EXECUTION_VARIABLE) or "{}")
    for key in path:
        settings = settings.get(key, {})
    return settings


@cache
def _say_defaults_apply() -> None:
    print(f"{EXECUTION_VARIABLE} is not set (a job's command run by hand): how this job runs (ranks, threads, batch "
          "sizes) takes the schema's defaults, not your config's; run it through snakemake to get the config's",
          file=sys.stderr, flush=True)


class RuleSettings:
    """The settings of every rule of one config."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.cells: list[Cell] = cells(config)
        self.budgets = sorted({cell.budget for cell in self.cells})
        self.phases: dict[tuple[str, int], list[int]] = {}
        for cell in self.cells:
            self.phases.setdefault((cell.source, cell.seed), []).append(cell.budget)

    def execution(self) -> str:
        """The execution settings of every rule, as the JSON the workflow puts in EXECUTION_VARIABLE."""
        anneal = self.config["anneal"]
        sources = {name: {block: execution_part(block, source[block]) for block in ("generator", "classifier")
                          if source.get(block)} for name, source in self.config["sources"].items()}
        return as_json({"anneal": {**execution_part("anneal", anneal),
                                   "peak_flops": anneal["peak_flops"] or self.config["plan"]["gpu_peak_flops"]},
                        "eval": execution_part("eval", self.config["eval"]), "sources": sources})

    def anneal(self) -> dict:
        """The result settings every training job shares. `anneal.export_dtype: auto` is left out: it changes
        no score (bf16 only where evaluation runs in bf16, `precision.export_precision`), so the params of a
        grid made before the key stay as they were."""
        settings = result_part("anneal", self.config["anneal"])
        if settings.get("export_dtype") == "auto":
            del settings["export_dtype"]
        return settings

    def training(self, **cell) -> str:
        return as_json({**self.anneal(), **cell})

    def pretrain(self) -> str:
        build = self.config["base_model"]["build"]
        return as_json({**self.anneal(), "lr": build["lr"],
                        "warmup_steps": build["warmup_steps"],
                        "schedule": CONSTANT, "source_budget_tokens": build["pretrain_tokens"],
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
        return self.cell(source, 0, seed, schedule=CONSTANT,
                         branch_budgets=sorted(set(self.phases[source, int(seed)])), marker_budgets=self.budgets)

    def cooldown(self, source: str, budget: int | str, seed: int | str, checkpoints: str) -> str:
        """A budget's cooldown from its stable phase's checkpoint folder at the branch point."""
        return self.cell(source, budget, seed, branch_from=checkpoints)

    def evaluation(self, order: list[str] | None = None) -> str:
        """The evaluation settings, with the held-out domains' bits-per-byte tasks added to the task list, in
        `order` where it lists the same tasks (the order they were prepared in: scores do not depend on it). Which
        tasks are decontaminated or screened changes no score (`collect` leaves screened items out)."""
        evaluation = result_part("eval", self.config["eval"])
        del evaluation["decontaminate"]
        tasks = evaluated_task_names(evaluation)
        return as_json({**evaluation, "tasks": order if sorted(order or []) == sorted(tasks) else tasks})

    def source(self, name: str, models: dict[str, str]) -> str:
        """A source's curation settings without execution keys, its models resolved to `models` (by block)."""
        settings = copy.deepcopy(self.config["sources"][name])
        for block in ("generator", "classifier"):
            if settings.get(block):
                settings[block] = result_part(block, settings[block])
        for block, model in models.items():
            settings[block]["model"] = model
        return as_json(settings)

    def fit(self) -> str:
        return as_json({**self.config["fit"], "micro_anneal_budget": self.config["grid"]["micro_anneal_budget"]})


def job_threads() -> int:
    """The threads Snakemake gave this job (it sets OMP_NUM_THREADS to a shell job's threads), else 1."""
    threads = os.environ.get("OMP_NUM_THREADS", "")
    return int(threads) if threads.isdigit() and int(threads) > 0 else 1
