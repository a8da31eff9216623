"""The grid of anneal cells and its planned cost, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from annealscope.core.branches import BRANCHED, config_branches, is_branched
from annealscope.core.corpora import reference_token_bound, token_bound
from annealscope.core.flops import (
    classifier_flops,
    decoder_parameters,
    generation_flops,
    gpu_hours,
    training_flops,
)
from annealscope.core.io import read_json
from annealscope.core.layout import MANIFEST, RUN_DIR, run_path
from annealscope.core.precision import cpu_precision
from annealscope.core.references import acquisition_kind
from annealscope.core.sampling import check_epochs
from annealscope.core.shards import planned_shards, skipping_lines
from annealscope.core.submission import anneal_on_gpus, family_resources, shard_family, submission_table


@dataclass(frozen=True)
class Cell:
    source: str
    budget: int
    seed: int


def cells(config: dict) -> list[Cell]:
    """Every (source, budget, seed) to anneal, in config order: the full grid, then the `grid.extra_cells`
    (single cells, such as `annealscope suggest` proposes) it does not already hold."""
    grid = config["grid"]
    full = [Cell(source, budget, seed) for source in config["sources"] for budget in grid["budgets"]
            for seed in grid["seeds"]]
    extra = [Cell(cell["source"], cell["budget"], cell.get("seed", 0)) for cell in grid.get("extra_cells", [])]
    return full + [cell for cell in dict.fromkeys(extra) if cell not in full]


def all_budgets(config: dict) -> list[int]:
    """Every budget some cell anneals at, ascending."""
    return sorted({cell.budget for cell in cells(config)})


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
    return decoder_parameters(build["vocab_size"], build["hidden_size"], build["num_layers"],
                              build["intermediate_size"])  # base.build ties the embeddings, full attention


@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    train_tokens: int
    replay_tokens: int
    train_flops: float | None
    gpu_hours: float | None
    shared_flops: float = 0.0  # of train_flops, the stable prefix shared with the (source, seed)'s other budgets
    shared_hours: float = 0.0


def planned_cells(config: dict) -> list[PlannedCell]:
    """Tokens, FLOPs (source and replay) and GPU-hours of every cell at the configured throughput."""
    parameters = base_parameters(config)
    fraction = config["replay"]["fraction"]
    anneal = config["anneal"]
    prefixes = {branch.budget: branch.step * anneal["global_batch"] * anneal["seq_len"]
                for branch in config_branches(config, all_budgets(config))} if is_branched(config) else {}
    planned = []
    for cell in cells(config):
        replay_tokens = round(cell.budget * fraction / (1 - fraction))
        flops = training_flops(parameters, cell.budget) if parameters else None
        total = training_flops(parameters, cell.budget + replay_tokens) if parameters else None
        hours = gpu_hours(total, config["plan"]) if total else None
        shared = {}
        if parameters and cell.budget in prefixes:
            prefix = prefixes[cell.budget]
            shared = {"shared_flops": training_flops(parameters, round(prefix * (1 - fraction))),
                      "shared_hours": gpu_hours(training_flops(parameters, prefix), config["plan"])}
        planned.append(PlannedCell(cell, cell.budget, replay_tokens, flops, hours, **shared))
    return planned


def planned_as_run(rows: list[PlannedCell]) -> tuple[float, float]:
    """Train FLOPs and GPU-hours of the grid as run: shared stable prefixes once (see attribution)."""
    import pandas as pd  # here, not at the top: every job imports this module, few need pandas

    from annealscope.core.attribution import as_run

    frame = pd.DataFrame([{"source": row.cell.source, "seed": row.cell.seed, "flops": row.train_flops or 0.0,
                           "hours": row.gpu_hours or 0.0, "shared_flops": row.shared_flops,
                           "shared_hours": row.shared_hours} for row in rows])
    return as_run(frame, "flops", "shared_flops"), as_run(frame, "hours", "shared_hours")


PER_CELL_ROWS = 48  # a larger grid's plan shows one row per source


def plan_table(config: dict, every_cell: bool = False):
    """The plan as a rich table with a total row: one row per cell, or per source for a large grid."""
    from rich.table import Table

    rows = planned_cells(config)
    per_cell = every_cell or len(rows) <= PER_CELL_ROWS
    shown = f"{len(rows)} anneal cells" + ("" if per_cell else " by source (annealscope plan CONFIG --every-cell "
                                                                "lists them)")
    table = Table(title=f"annealscope plan: run {config['run']}, {shown}")
    columns = ("source", "budget tokens", "seed" if per_cell else "cells", "replay tokens", "train FLOPs",
               "GPU-hours (with replay)")
    for column in columns:
        table.add_column(column, justify="left" if column == "source" else "right")
    for group in ([[row] for row in rows] if per_cell else _by_source(rows)):
        budgets = sorted({row.train_tokens for row in group})
        table.add_row(group[0].cell.source, f"{budgets[0]:,}" if len(budgets) == 1 else
                      f"{budgets[0]:,} to {budgets[-1]:,}", str(group[0].cell.seed) if per_cell else str(len(group)),
                      f"{sum(row.replay_tokens for row in group):,}", _number(_total(group, "train_flops")),
                      _number(_total(group, "gpu_hours"), "{:.3g}"))
    flops, hours = _total(rows, "train_flops"), _total(rows, "gpu_hours")
    table.add_row("total", f"{sum(row.train_tokens for row in rows):,}", "" if per_cell else str(len(rows)),
                  f"{sum(row.replay_tokens for row in rows):,}", _number(flops), _number(hours, "{:.3g}"),
                  style="bold")
    if is_branched(config) and flops:
        run_flops, run_hours = planned_as_run(rows)
        table.add_row(f"as run ({run_flops / flops:.2f}x: {BRANCHED})", "", "", "",
                      _number(run_flops), _number(run_hours, "{:.3g}"), style="bold")
    return table


def _by_source(rows: list[PlannedCell]) -> list[list[PlannedCell]]:
    groups: dict[str, list[PlannedCell]] = {}
    for row in rows:
        groups.setdefault(row.cell.source, []).append(row)
    return list(groups.values())


def _total(rows: list[PlannedCell], name: str) -> float | None:
    values = [getattr(row, name) for row in rows if getattr(row, name) is not None]
    return sum(values) if values else None


def print_plan(config: dict, stream=None, every_cell: bool = False, shards: dict | None = None) -> None:
    """Print the plan, acquisition, disk and submission tables, wide enough for 7B-scale numbers, to `stream`
    (stdout by default); `shards` are the `planned_shards` where the caller has them."""
    from rich.console import Console

    from annealscope.core.decontamination import retraining_lines  # they use its cells
    from annealscope.core.storage import (
        free_space_lines,
        planned_storage,
        prune_lines,
        storage_table,
    )

    console = Console(file=stream, width=140)
    console.print(plan_table(config, every_cell))
    corpora = planned_shards(config) if shards is None else shards
    console.print(acquisition_table(config, corpora))
    for line in skipping_lines(corpora):
        console.print(line, highlight=False)
    stored = planned_storage(config)
    console.print(storage_table(stored))
    for line in free_space_lines(config, stored) + prune_lines(config, stored):
        console.print(line, highlight=False)
    console.print(submission_table(config, len(cells(config)), corpora))
    console.print(precision_line(config), highlight=False)
    for line in retraining_lines(config, RUN_DIR.format(run=config["run"])):
        console.print(line, highlight=False)


def precision_line(config: dict) -> str:
    """Which precision the anneals will train in, and why; a warning for bf16 that the CPU only emulates."""
    requested = config["anneal"]["dtype"]
    if anneal_on_gpus(config):
        return (f"precision: anneal.dtype {requested}, resolved by each anneal job on its GPUs"
                + (" (bf16 where the GPU computes it natively, else fp32)" if requested == "auto" else ""))
    precision = cpu_precision(requested)
    line = f"precision: {precision.dtype} on this machine's CPU ({precision.reason})"
    return f"{line}\n{precision.warning()}" if precision.warning() else line


def acquisition_estimate(config: dict, source: dict) -> str:
    """What acquiring a source will cost, as far as the config alone tells, before anything runs."""
    priced = f"; ${source['acquisition_usd']:,.0f} fixed" if source["acquisition_usd"] is not None else ""
    return ESTIMATES[acquisition_kind(source)](config, source) + priced


def _given_estimate(config: dict, source: dict) -> str:
    return f"{source['acquisition_flops']:.3e} FLOPs (given)"


def _teacher_estimate(config: dict, source: dict) -> str:
    generator = source["generator"]
    parameters = base_parameters(config) if generator["model"] == "base" else generator.get("parameters")
    if not parameters:
        return "n/a (set generator.parameters)"
    generated = generator["prompts"] * generator["max_new_tokens"]
    return (f"<= {generation_flops(parameters, 0, generated):.3e} FLOPs for <= {generated:,} generated tokens, "
            "plus 2·N per prompt token")


def _filter_estimate(config: dict, source: dict) -> str:
    classifier = source["classifier"]
    scanned = token_bound(source["pool"])
    if classifier["backend"] == "hashed_ngram":
        flops_per_token = classifier["flops_per_token"] or 2.0 * classifier["ngram_max"]
    elif classifier["backend"] == "fasttext":  # a model_file's own dim and n-grams are read when it runs
        flops_per_token = classifier["flops_per_token"] or (None if classifier.get("model_file") else
                                                            2.0 * classifier["dim"] * classifier["ngram_max"])
        if flops_per_token is None:
            return "n/a (set classifier.flops_per_token)"
    elif classifier.get("parameters"):
        flops_per_token = 2.0 * classifier["parameters"]
    else:
        return "n/a (set classifier.parameters)"
    if scanned is None:
        unbounded = [reference for reference in source["pool"] if reference_token_bound(reference) is None]
        return f"{flops_per_token:.3g} FLOPs per scanned token; {_unbounded_fix(unbounded)}"
    return f"<= {classifier_flops(flops_per_token, scanned):.3e} FLOPs for <= {scanned:,} scanned tokens"


def _unbounded_fix(references: list[str]) -> str:
    """How a pool whose size the plan cannot bound becomes bounded: cap its hub datasets; a built-in corpus or
    compressed JSON lines are only counted when read."""
    hub = [reference for reference in references if reference.startswith("hf:")]
    other = [reference for reference in references if not reference.startswith("hf:")]
    return "; ".join(([f"cap {', '.join(hub)} with max_tokens"] if hub else [])
                     + ([f"{', '.join(other)} counted when read"] if other else []))


ESTIMATES = {"program": lambda config, source: "0 FLOPs (a program)", "teacher": _teacher_estimate,
             "filter": _filter_estimate, "given": _given_estimate}


def acquisition_table(config: dict, corpora: dict[str, list[list[dict]]]):
    from rich.table import Table

    table = Table(title="acquisition, planned (manifests record what was spent)")
    for column in ("source", "curation", "shard jobs", "GPU-hours reserved", "estimate"):
        table.add_column(column, justify="right" if column in ("shard jobs", "GPU-hours reserved") else "left")
    for name, source in config["sources"].items():
        shards = len(corpora[name])
        resources = family_resources(config, shard_family(source))
        reserved = shards * resources["gpus"] * resources["runtime"] / 60
        table.add_row(name, source["curation"], f"{shards:,}", f"{reserved:,.0f}", acquisition_estimate(config, source))
    return table


def _number(value: float | None, form: str = "{:.3e}") -> str:
    return "n/a (set base_model.parameters)" if value is None else form.format(value)
