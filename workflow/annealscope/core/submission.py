"""Cluster submission: config `resources` as snakemake-executor-plugin-slurm reads them, and the plan of
what a whole grid will ask the scheduler for (printed by `snakemake -n` without contacting it).

GPUs: `gpus` is per node. A one-node job asks for them as `gpu` (sbatch --gpus=N); a job over several
nodes as `gres` gpu:N, which SLURM reads per node, with `nodes` (sbatch --nodes).
"""

from __future__ import annotations

from annealscope.core.decontamination import screened_names
from annealscope.core.references import acquisition_kind, is_trained_here
from annealscope.core.shards import whole_replay

SLURM_NAMES = {"partition": "slurm_partition", "account": "slurm_account", "constraint": "constraint"}
FALLBACK = {"classify": "curate"}  # a family the config may leave out, and the one its jobs then take


def shard_family(source: dict) -> str:
    """The resource family of a source's shard jobs: `generate` for a teacher's, `classify` for a pool scored
    by a transformers classifier (a GPU's work: 2·N FLOPs per scanned token), else `curate`."""
    if acquisition_kind(source) == "teacher":
        return "generate"
    if source["curation"] == "filter" and source["classifier"]["backend"] == "transformers":
        return "classify"
    return "curate"


def family_resources(config: dict, family: str) -> dict:
    """A family's `resources` block; `classify`, when the config leaves it out, takes `curate`'s."""
    resources = config["resources"]
    return resources.get(family) or resources[FALLBACK.get(family, "default")]


def anneal_on_gpus(config: dict) -> bool:
    """Whether the training jobs run on GPUs (each then resolves `anneal.dtype: auto` on its own)."""
    return bool(family_resources(config, "anneal")["gpus"])


def slurm_resources(resources: dict, nodes: int = 1) -> dict:
    """Snakemake resources of one job from a `resources.<family>` config block."""
    chosen = {"mem_mb": resources["mem_mb"], "runtime": resources["runtime"], "cpus_per_task": resources["cpus"]}
    if resources["gpus"]:
        if nodes > 1:
            chosen["gres"] = f"gpu:{resources['gpus']}"
        else:
            chosen["gpu"] = resources["gpus"]
    if nodes > 1:
        chosen["nodes"] = nodes
    chosen |= {SLURM_NAMES[key]: resources[key] for key in SLURM_NAMES if resources.get(key)}
    return chosen


def family_jobs(config: dict, grid_cells: int, corpora: dict[str, list[list[dict]]]) -> dict[str, int]:
    """How many jobs of each resource family a grid of `grid_cells` anneals submits (done or not), its sources' and
    replay's shards being `corpora` (`shards.planned_shards`)."""
    sources = len(config["sources"])
    built = "build" in config["base_model"]
    stable = sources * len(config["grid"]["seeds"]) if config["grid"]["schedule"] == "branched-wsd" else 0
    shards = {name: len(corpora[name]) for name in config["sources"]}
    by_family = {family: sum(count for name, count in shards.items()
                             if shard_family(config["sources"][name]) == family) for family in ("generate", "classify")}
    trained = sum(source["curation"] == "filter" and is_trained_here(source["classifier"])
                  for source in config["sources"].values())
    replay = len(corpora["replay"]) or int(whole_replay(config))  # tokenized whole: one job, after its documents
    screened = bool(screened_names(config["eval"]))
    return {"anneal": grid_cells + built + stable,  # pre-training a built base; stable phases of a branched grid
            # per shard: curate (unless generated or classified), finish and, with screened tasks, screen; per
            # source: dedup and manifest; classifiers trained once per source; replay's shards tokenized (and the
            # base corpus)
            "curate": (2 + screened) * sum(shards.values()) - sum(by_family.values()) + 2 * sources + trained
            + replay + built,
            "classify": by_family["classify"],  # shard jobs of a pool a transformers classifier scores
            "generate": by_family["generate"],  # a teacher's shard jobs
            "evaluate": grid_cells + 1,
            # prepare_tasks, collect, fit, backtest, report; the replay index (or documents, when whole); base_init
            # and the base corpus; with screened tasks, preparing them and merging the screening
            "default": 5 + (replay > 0) + 2 * built + 2 * screened}


def submission_table(config: dict, grid_cells: int, corpora: dict[str, list[list[dict]]]):
    """Per resource family: jobs, what each asks SLURM for, and the GPU-hours the requests reserve."""
    from rich.table import Table

    table = Table(title="submission plan (config resources; --profile slurm submits each job with these)")
    for column in ("family", "jobs", "nodes", "GPUs/node", "CPUs", "mem MB", "runtime min", "partition / account",
                   "GPU-hours reserved"):
        table.add_column(column, justify="left" if column in ("family", "partition / account") else "right")
    total = 0.0
    for family, jobs in family_jobs(config, grid_cells, corpora).items():
        if not jobs and family in FALLBACK:
            continue
        resources = family_resources(config, family)
        nodes = config["anneal"]["nodes"] if family == "anneal" else 1
        reserved = jobs * nodes * resources["gpus"] * resources["runtime"] / 60
        total += reserved
        where = " / ".join(resources.get(key) or "-" for key in ("partition", "account"))
        table.add_row(family, str(jobs), str(nodes), str(resources["gpus"]), str(resources["cpus"]),
                      f"{resources['mem_mb']:,}", str(resources["runtime"]), where, f"{reserved:,.0f}")
    table.add_row("total", "", "", "", "", "", "", "", f"{total:,.0f}", style="bold")
    return table
