"""Artifact paths: one place, used by the Snakemake rules and by the package (collect, plan).

Every path names its cell, in a fixed wildcard order, so adding a budget or a source only adds files.
"""

from __future__ import annotations

import re
from pathlib import Path

CAPTIONS = Path(__file__).resolve().parents[2] / "report"  # the report's captions, read into its page
BASE_SOURCE = "base"
RUN_DIR = "results/{run}"  # every pattern below but the captions lies in it
BASE_INIT = "results/{run}/base/init"
BASE_MODEL = "results/{run}/base/model"
BASE_LOG = "results/{run}/base/train_log.jsonl"
BASE_SUMMARY = "results/{run}/base/summary.json"
DOCUMENTS = "results/{run}/curate/{source}/documents.jsonl"  # the replay and pre-training corpora
MANIFEST = "results/{run}/curate/{source}/manifest.json"
CURATE_WORK = "results/{run}/curate/{source}/work"
CLASSIFIER = "results/{run}/curate/{source}/classifier"
DUPLICATES = "results/{run}/curate/{source}/duplicates.npz"
DUPLICATES_STATS = "results/{run}/curate/{source}/duplicates.json"
SHARD = "results/{run}/curate/{source}/shard{shard}"
SHARD_FILTERED = SHARD + "/filtered.jsonl"  # after acquisition, heuristics and the classifier
SHARD_FILTERED_TOKENS = SHARD + "/filtered_tokens.bin"  # their token ids, encoded once
SHARD_FILTERED_TOKENS_META = SHARD + "/filtered_tokens.json"
SHARD_FILTERED_STATS = SHARD + "/filtered.json"
SHARD_SIGNATURES = SHARD + "/signatures.npz"
SHARD_DOCUMENTS = SHARD + "/documents.jsonl"  # after deduplication and decontamination: what trains
SHARD_STATS = SHARD + "/documents.json"
SHARD_DIVERSITY = SHARD + "/diversity.npz"
SHARD_SCREENED = SHARD + "/screened.json"  # the screened tasks' items found in the shard's documents
TOKENS = "results/{run}/tokens/{source}.bin"  # the replay and pre-training corpora's arrays
TOKENS_META = "results/{run}/tokens/{source}.json"  # their sidecars, and a source's token index
SHARD_TOKENS = "results/{run}/tokens/{source}/shard{shard}.bin"
SHARD_TOKENS_META = "results/{run}/tokens/{source}/shard{shard}.json"
TASKS = "results/{run}/tasks"  # the tasks curation decontaminates against (eval.decontaminate)
SCREENED_TASKS = "results/{run}/tasks_screened"  # the other evaluated tasks
SCREENED = "results/{run}/screened.json"  # their items found in any source's curated documents: not scored
CELL = "{source}/{budget}/seed{seed}"
ANNEAL_MODEL = "results/{run}/anneal/" + CELL + "/model"
ANNEAL_LOG = "results/{run}/anneal/" + CELL + "/train_log.jsonl"
ANNEAL_SUMMARY = "results/{run}/anneal/" + CELL + "/summary.json"
STABLE = "results/{run}/stable/{source}/seed{seed}"
STABLE_START = STABLE + "/start.json"
STABLE_SUMMARY = STABLE + "/branches.json"
STABLE_BRANCH = STABLE + "/branch{budget}.json"
STABLE_CHECKPOINTS = STABLE + "/checkpoints"
SCORES = "results/{run}/eval/" + CELL + "/scores.json"
ITEMS = "results/{run}/eval/" + CELL + "/items.jsonl.gz"
METRICS = "results/{run}/metrics.csv"
FIT_DIR = "results/{run}/fit"
FIT_OUTPUTS = ("fits.csv", "predictions.csv", "decisions.csv", "pairwise.csv", "crossovers.csv", "allocation.csv",
               "curves.png", "ranking.png", "crossovers.png", "costs.png")
BACKTEST_DIR = "results/{run}/backtest"
BACKTEST_OUTPUTS = ("backtest.csv", "backtest_decisions.csv")
ITEMS_TABLE = "results/{run}/items.parquet"
TASK_GROUPS = "results/{run}/task_groups.json"  # lm-eval's groups the evaluation recorded: the fit's panels too
REPORT = "results/{run}/report.html"
LOGS = "results/{run}/logs"

HELDOUT_PREFIX = "heldout_"  # the task of held-out domain D is heldout_D
DECONTAMINATION_TEXTS = "decontamination"  # in a prepared tasks folder: {"task", "doc_id", "text"} per lm-eval task
PREPARED_RECORD = "prepared.json"  # in a prepared tasks folder: its tasks and held-out corpora in order, its YAMLs


def heldout_task_names(heldout: dict[str, list[str]]) -> list[str]:
    return [f"{HELDOUT_PREFIX}{domain}" for domain in heldout]


def evaluated_task_names(evaluation: dict) -> list[str]:
    """Every task a grid scores, and decontaminates against: `eval.tasks`, then `heldout_<domain>`."""
    return [*evaluation["tasks"], *heldout_task_names(evaluation["heldout"])]


SCORES_PATTERN = re.compile(r"eval/(?P<source>[^/]+)/(?P<budget>\d+)/seed(?P<seed>\d+)/scores\.json$")


def cell_from_scores_path(path: str | Path) -> tuple[str, int, int]:
    """(source, budget, seed) named by a scores path."""
    match = SCORES_PATTERN.search(str(path))
    if match is None:
        raise ValueError(f"{path} is not a scores path of the form {SCORES}")
    return match["source"], int(match["budget"]), int(match["seed"])


def run_path(pattern: str, run_dir: str | Path, **wildcards: str | int) -> Path:
    """An artifact under `run_dir` (the results/<run> directory), by its pattern and wildcards."""
    return Path(run_dir) / pattern.removeprefix(RUN_DIR + "/").format(**wildcards)
