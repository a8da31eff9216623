"""The disk a grid will fill, planned from the config before anything runs: exported models, DeepSpeed
checkpoints, token arrays and fetched hub text, as upper bounds where the config caps them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from annealscope.core.branches import is_branched
from annealscope.core.corpora import FETCH_BYTES_PER_TOKEN, hub_options, token_bound
from annealscope.core.grid import base_parameters, cells
from annealscope.core.layout import ANNEAL_MODEL, RUN_DIR, STABLE_CHECKPOINTS, TOKENS
from annealscope.core.precision import cpu_precision, export_precision
from annealscope.core.references import acquisition_kind, hub_datasets
from annealscope.core.submission import anneal_on_gpus
from annealscope.core.tokens import token_dtype

MASTER_AND_ADAM_BYTES = 12  # fp32 master weights and AdamW's two moments, which every checkpoint holds
WEIGHT_BYTES = {"bf16": 2, "fp32": 4}  # an export's weights, and the module's, which ZeRO-1 and 2 save beside them
HUB_TOKEN_BYTES = 4  # a hub tokenizer's ids fit uint32; uint16 where its vocabulary is at most 65,536
UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def checkpoint_bytes(zero_stage: int, dtype: str) -> int:
    """Bytes a parameter in one DeepSpeed checkpoint of an anneal: ZeRO-3 saves only the partitioned master
    weights and Adam's state, ZeRO-1 and 2 the module's weights as well."""
    return MASTER_AND_ADAM_BYTES + (0 if zero_stage == 3 else WEIGHT_BYTES[dtype])


def planned_dtype(config: dict) -> str:
    """The precision the anneals will train in: as configured, else bf16 on GPUs (each job resolves `auto` on
    its own), else what this machine's CPU computes natively."""
    requested = config["anneal"]["dtype"]
    if requested != "auto":
        return requested
    return "bf16" if anneal_on_gpus(config) else cpu_precision(requested).dtype


@dataclass(frozen=True)
class Stored:
    what: str
    where: str
    count: int
    each: float | None  # bytes of one; None where the config bounds it not, or the items differ
    kept: bool = True  # False: held only while a job runs, per running job
    bound: float | None = None  # bytes in all, where the items differ in size

    @property
    def total(self) -> float | None:
        return self.bound if self.each is None else self.count * self.each


def source_token_bound(source: dict) -> int | None:
    """The most tokens a source's curation can keep, in the base model's tokens, where its input bounds them
    (`corpora.token_bound`): a filtered pool or a given corpus of capped hub datasets and local files. A
    teacher's `max_new_tokens` count its own tokenizer's tokens, and a program writes documents of no fixed
    length."""
    kind = acquisition_kind(source)
    return token_bound(source["pool" if kind == "filter" else "corpus"]) if kind in ("filter", "given") else None


def planned_storage(config: dict) -> list[Stored]:
    """What the grid writes to disk, row by row (see `storage_table`)."""
    parameters = base_parameters(config)
    anneal = config["anneal"]
    grid_cells = cells(config)
    dtype = planned_dtype(config)
    checkpoint = parameters * checkpoint_bytes(anneal["zero_stage"], dtype) if parameters else None
    export_dtype = export_precision(anneal["export_dtype"], dtype, anneal_on_gpus(config))
    export = parameters * WEIGHT_BYTES[export_dtype] if parameters else None
    models = ANNEAL_MODEL.format(run=config["run"], source="*", budget="*", seed="*")
    rows = [Stored(f"exported models ({export_dtype} safetensors)", models, len(grid_cells), export)]
    if is_branched(config):
        branch_points = {(cell.source, cell.seed, cell.budget) for cell in grid_cells}
        rows.append(Stored(f"stable-phase checkpoints, one per branch point ({dtype}, ZeRO-{anneal['zero_stage']})",
                           STABLE_CHECKPOINTS.format(run=config["run"], source="*", seed="*"), len(branch_points),
                           checkpoint))
    if anneal["keep_checkpoints"]:
        rows.append(Stored("each cell's last checkpoints (anneal.keep_checkpoints)", "beside each model",
                           2 * len(grid_cells), checkpoint))
    build = config["base_model"].get("build")
    tokens_dir = str(Path(TOKENS.format(run=config["run"], source="*")).parent)
    token_bytes = token_dtype(build["vocab_size"]).itemsize if build else HUB_TOKEN_BYTES
    for name, source in config["sources"].items():
        tokens = source_token_bound(source)
        rows.append(Stored(f"{name}'s token array", tokens_dir, 1,
                           None if tokens is None else tokens * token_bytes))
    replay = token_bound(config["replay"]["corpus"])
    rows.append(Stored("replay's token array", tokens_dir, 1,
                       None if replay is None else replay * token_bytes))
    caps = {reference: hub_options(reference).get("max_tokens") for reference in hub_datasets(config)}
    fetched, capped = f"{config['cache_dir']}/datasets", [int(cap) for cap in caps.values() if cap]
    if capped:
        rows.append(Stored(f"fetched hub datasets capped by max_tokens ({FETCH_BYTES_PER_TOKEN} bytes a token)",
                           fetched, len(capped), None, bound=sum(capped) * FETCH_BYTES_PER_TOKEN))
    if uncapped := len(caps) - len(capped):
        rows.append(Stored("fetched hub datasets without max_tokens", fetched, uncapped, None))
    rows.append(Stored("a training job's own checkpoints while it runs, removed after its export", "per running job",
                       2, checkpoint, kept=False))
    return rows


def storage_table(rows: list[Stored]):
    """The planned disk (`planned_storage`) as a rich table: every kept row, their total, then what a running
    job adds."""
    from rich.table import Table

    table = Table(title="disk, planned (at most, where the config or its files bound it; curation's working files "
                        "not counted)")
    for column in ("what", "where", "count", "each", "total"):
        table.add_column(column, justify="left" if column in ("what", "where") else "right")
    kept = [row for row in rows if row.kept]
    for row in kept:
        each = "" if row.bound else format_bytes(row.each)
        table.add_row(row.what, row.where, f"{row.count:,}", each, format_bytes(row.total))
    bounded = [row.total for row in kept if row.total is not None]
    unbounded = len(kept) - len(bounded)
    table.add_row("kept in all" + (f" (and {unbounded} rows the config does not bound)" if unbounded else ""), "", "",
                  "", format_bytes(sum(bounded)), style="bold")
    for row in rows:
        if not row.kept:
            table.add_row(row.what, row.where, f"{row.count:,}", format_bytes(row.each), format_bytes(row.total))
    return table


def free_space_lines(config: dict, rows: list[Stored]) -> list[str]:
    """For the run's results folder and the fetch cache, what the plan keeps there (the `rows` it bounds) against
    the free space of the filesystem each is on, with a warning and the fix where it does not fit."""
    results, cache = RUN_DIR.format(run=config["run"]), config["cache_dir"]
    fixes = {results: "run the workflow from a larger filesystem (snakemake --directory)",
             cache: "set cache_dir to a larger filesystem"}
    needs: dict[str, float] = {}
    for row in rows:
        if row.kept and row.total is not None:
            folder = cache if row.where.startswith(cache) else results
            needs[folder] = needs.get(folder, 0.0) + row.total
    lines = []
    for folder, need in needs.items():
        free = shutil.disk_usage(_nearest_existing(Path(folder))).free
        line = f"disk: {folder} keeps up to {format_bytes(need)}; its filesystem has {format_bytes(free)} free"
        lines.append(line if need <= free else f"{line}. warning: that does not fit; {fixes[folder]}")
    return lines


def prune_lines(config: dict, rows: list[Stored]) -> list[str]:
    """For a branched grid, what its stable phases keep once `annealscope prune-branches` removes the branch
    checkpoints whose cooldowns have finished, all but each phase's newest."""
    where = STABLE_CHECKPOINTS.format(run=config["run"], source="*", seed="*")
    stable = [row for row in rows if row.where == where]
    if not stable or stable[0].each is None:
        return []
    phases = len({(cell.source, cell.seed) for cell in cells(config)})
    return [f"disk: after the cooldowns, `annealscope prune-branches {RUN_DIR.format(run=config['run'])}` keeps "
            f"{phases} of the {stable[0].count} stable-phase checkpoints, the newest of each (source, seed): "
            f"{format_bytes(phases * stable[0].each)} instead of {format_bytes(stable[0].total)}"]


def _nearest_existing(path: Path) -> Path:
    """`path`, or the nearest folder above it that exists (a run's folder before its first job)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def format_bytes(value: float | None) -> str:
    """Bytes in decimal units, to three significant digits."""
    if value is None:
        return "n/a"
    power = 0
    while value >= 1000 and power < len(UNITS) - 1:
        value, power = value / 1000, power + 1
    return f"{value:.3g} {UNITS[power]}"
