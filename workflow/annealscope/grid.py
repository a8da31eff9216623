"""The grid of anneal cells and its planned cost, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annealscope.data import check_epochs
from annealscope.flops import training_flops
from annealscope.io import read_json
from annealscope.layout import MANIFEST, run_path


@dataclass(frozen=True)
class Cell:
    source: str
    budget: int
    seed: int


def cells(config: dict) -> list[Cell]:
    """Every (source, budget, seed) to anneal, in config order."""
    grid = config["grid"]
    return [Cell(source, budget, seed) for source in config["sources"] for budget in grid["budgets"]
            for seed in grid["seeds"]]


def check_epoch_limits(config: dict, run_dir: str | Path) -> None:
    """Refuse, before any job runs, a cell whose budget repeats its source beyond `max_epochs`, for every
    source already curated (its manifest gives the unique tokens); anneal jobs check again."""
    for cell in cells(config):
        max_epochs = config["sources"][cell.source]["max_epochs"]
        manifest = run_path(MANIFEST, run_dir, source=cell.source)
        if max_epochs is not None and manifest.is_file():
            check_epochs(cell.budget, read_json(manifest)["tokens"], max_epochs, cell.source)


def base_parameters(config: dict) -> int | None:
    """Parameter count of the base model: configured, or computed from the demo build's shape."""
    base = config["base_model"]
    if "parameters" in base:
        return base["parameters"]
    build = base.get("build")
    if build is None:
        return None
    hidden, layers, inner = build["hidden_size"], build["num_layers"], build["intermediate_size"]
    per_layer = 4 * hidden * hidden + 3 * hidden * inner + 2 * hidden
    return build["vocab_size"] * hidden + layers * per_layer + hidden


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    train_tokens: int
    replay_tokens: int
    train_flops: float | None
    gpu_hours: float | None


def plan(config: dict) -> list[PlannedCell]:
    """Tokens, FLOPs (source and replay) and GPU-hours of every cell at the configured throughput."""
    parameters = base_parameters(config)
    fraction = config["replay"]["fraction"]
    seconds_per_flop = 1.0 / (config["plan"]["gpu_peak_flops"] * config["plan"]["mfu"])
    planned = []
    for cell in cells(config):
        replay_tokens = round(cell.budget * fraction / (1 - fraction))
        flops = training_flops(parameters, cell.budget) if parameters else None
        total = training_flops(parameters, cell.budget + replay_tokens) if parameters else None
        gpu_hours = total * seconds_per_flop / 3600 if total else None
        planned.append(PlannedCell(cell, cell.budget, replay_tokens, flops, gpu_hours))
    return planned


def plan_table(config: dict):
    """The plan as a rich table, with a total row."""
    from rich.table import Table

    rows = plan(config)
    table = Table(title=f"annealscope plan: run {config['run']}, {len(rows)} anneal cells")
    for column in ("source", "budget tokens", "seed", "replay tokens", "train FLOPs", "GPU-hours (with replay)"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for row in rows:
        table.add_row(row.cell.source, f"{row.train_tokens:,}", str(row.cell.seed), f"{row.replay_tokens:,}",
                      _number(row.train_flops), _number(row.gpu_hours, "{:.3g}"))
    flops = [row.train_flops for row in rows if row.train_flops is not None]
    hours = [row.gpu_hours for row in rows if row.gpu_hours is not None]
    table.add_row("total", f"{sum(row.train_tokens for row in rows):,}", "",
                  f"{sum(row.replay_tokens for row in rows):,}", _number(sum(flops) if flops else None),
                  _number(sum(hours) if hours else None, "{:.3g}"), style="bold")
    return table


def print_plan(config: dict, stream=None) -> None:
    """Print the plan table, wide enough for 7B-scale numbers, to `stream` (stdout by default)."""
    from rich.console import Console

    Console(file=stream, width=140).print(plan_table(config))


def _number(value: float | None, form: str = "{:.3e}") -> str:
    return "n/a (set base_model.parameters)" if value is None else form.format(value)
