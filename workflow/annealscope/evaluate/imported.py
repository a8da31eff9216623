"""Runs trained and evaluated elsewhere: lm-evaluation-harness output folders joined to a table of cells.

`lm_eval --output_path P --log_samples` writes, per model, `results_<time>.json` (the model's arguments and
every task's config) and `samples_<task>_<time>.jsonl` (each item's requests and responses). Each results file
is matched to the row of the cells table whose `model` is the `pretrained` argument it records, and every item
is scored as annealscope's own evaluation scores it (`evaluate/scoring.py`): multiple choice from the choices'
log-likelihoods (gold token counts from the model's tokenizer, as lm-eval's `tok_encode` counts them),
held-out text in bits per byte, generative tasks by the task's own per-item metrics (their gold answers'
likelihood would need the model, which the samples do not hold). The result is `metrics.csv` and
`items.parquet` in collect's contract, so fit, suggest and report read it unchanged; as in collect, cells that
scored a task under different versions of it are refused (`comparability`). The groups lm-eval aggregated
become `task_groups.json`, as collect writes it (`imported_groups`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from annealscope.core.groups import merge_groups
from annealscope.core.io import read_jsonl
from annealscope.core.tables import ITEM_COLUMNS, METRICS_COLUMNS
from annealscope.evaluate.aggregation import aggregate
from annealscope.evaluate.collect import total_dollars
from annealscope.evaluate.comparability import check_task_versions, software_warnings
from annealscope.evaluate.scoring import choice_scores, rolling_item, unscored

CELL_COLUMNS = ("model", "source", "curation", "budget_tokens", "seed", "train_tokens", "unique_tokens",
                "train_flops", "acquisition_flops")
SOFTWARE_KEYS = {"lm_eval": "lm_eval_version", "transformers": "transformers_version"}  # in a results file
OPTIONAL_COLUMNS = {"acquisition_usd": None, "available_tokens": None, "replay_tokens": 0, "replay_flops": 0.0,
                    "shared_flops": 0.0, "retrained_flops": 0.0}


@dataclass
class ModelResults:
    """What lm-eval recorded for one model: per task, its config and its samples file."""

    model: str
    folders: set[str] = field(default_factory=set)
    configs: dict[str, dict] = field(default_factory=dict)
    samples: dict[str, Path] = field(default_factory=dict)
    dtype: str | None = None
    versions: dict[str, object] = field(default_factory=dict)  # lm-eval's version of each task
    software: dict[str, str] = field(default_factory=dict)  # the lm-eval and transformers that ran it
    groups: dict[str, dict] = field(default_factory=dict)  # recorded_groups of its results files


def read_cells(path: str | Path) -> pd.DataFrame:
    """The cells table, its optional columns filled; an error names any required column it lacks."""
    cells = pd.read_csv(path)
    missing = [column for column in CELL_COLUMNS if column not in cells]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; a cells table needs {list(CELL_COLUMNS)} "
                         f"(optional: {list(OPTIONAL_COLUMNS)})")
    for column, default in OPTIONAL_COLUMNS.items():
        cells[column] = cells.get(column, default)
    cells["model"] = cells["model"].astype(str)
    repeated = cells["model"][cells["model"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"{path}: model(s) {repeated} appear in more than one row; one row per evaluated model")
    return cells


def recorded_model(results: dict, path: Path) -> str:
    """The `pretrained` argument lm-eval recorded (`model_args` as a dict, or as its `k=v,...` string)."""
    arguments = results.get("config", {}).get("model_args") or {}
    if isinstance(arguments, str):
        arguments = dict(part.split("=", 1) for part in arguments.split(",") if "=" in part)
    model = arguments.get("pretrained") or results.get("model_name")
    if not model:
        raise ValueError(f"{path}: records no pretrained model in config.model_args")
    return str(model)


def read_results(folders: list[str | Path]) -> dict[str, ModelResults]:
    """Every lm-eval run under the folders, by model; of two runs of one model's task, the later counts."""
    found: dict[str, ModelResults] = {}
    for folder in map(Path, folders):
        paths = sorted(folder.rglob("results_*.json"), key=lambda path: path.name)  # names end in the run's time
        if not paths:
            raise ValueError(f"{folder}: no results_*.json below it; give the --output_path of an lm_eval run")
        for path in paths:
            results = json.loads(path.read_text())
            model = recorded_model(results, path)
            entry = found.setdefault(model, ModelResults(model))
            entry.folders.add(str(folder))
            entry.dtype = results.get("config", {}).get("model_dtype")
            entry.software.update({package: results[key] for package, key in SOFTWARE_KEYS.items() if key in results})
            entry.groups.update(recorded_groups(results))
            stamp = path.stem.removeprefix("results_")
            for task, config in results.get("configs", {}).items():
                samples = path.parent / f"samples_{task}_{stamp}.jsonl"
                if not samples.is_file():
                    raise ValueError(f"{path}: task {task} has no {samples.name} beside it; rerun lm_eval with "
                                     "--log_samples")
                entry.configs[task], entry.samples[task] = config, samples
                entry.versions[task] = results.get("versions", {}).get(task)
    return found


def recorded_groups(results: dict) -> dict[str, dict]:
    """The groups a results file aggregated (`groups`), as harness.task_groups records them: each with its leaf
    tasks (`group_subtasks`, nested groups expanded) and whether lm-eval weighed them by size, read from its own
    group score, the item-weighted or the plain mean of its leaf tasks' values. A group whose score is neither
    (or that reports no metric its tasks have) is left out."""
    children, scores = results.get("group_subtasks", {}), results.get("results", {})
    sizes = {task: counts.get("effective") for task, counts in results.get("n-samples", {}).items()}

    def leaves(name: str) -> list[str]:
        return [leaf for child in children.get(name, []) for leaf in (leaves(child) if child in children else [child])]

    recorded = {}
    for name, reported in results.get("groups", {}).items():
        tasks = sorted(set(leaves(name)))
        for key, value in reported.items():
            values = [(scores.get(task, {}).get(key), sizes.get(task)) for task in tasks]
            if "," not in key or "_stderr" in key or not isinstance(value, int | float) or \
                    not all(isinstance(score, int | float) and size for score, size in values):
                continue
            weighted = sum(score * size for score, size in values) / sum(size for _, size in values)
            plain = sum(score for score, _ in values) / len(values)
            by_size, alike = (math.isclose(value, mean, rel_tol=1e-9, abs_tol=1e-12) for mean in (weighted, plain))
            if by_size or alike:
                recorded[name] = {"tasks": tasks, "weight_by_size": by_size}
                break
    return recorded


def imported_groups(folders: list[str | Path]) -> dict[str, dict]:
    """The lm-eval groups of every run under the folders (recorded_groups), their tasks merged across runs."""
    return merge_groups(run.groups for run in read_results(folders).values())


def gold_index(sample: dict, config: dict, continuations: list[str]) -> int:
    """The gold choice as lm-eval reads it: a field's value or an int as an index, a digit string as an index
    (lm-eval's rule for rendered targets), any other string as the choice it names."""
    field_name = config.get("doc_to_target")
    target = sample["doc"][field_name] if isinstance(field_name, str) and field_name in sample["doc"] \
        else sample["target"]
    if isinstance(target, list):
        target = target[0]
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    delimiter = config.get("target_delimiter", " ")
    choices = [continuation.removeprefix(delimiter) for continuation in continuations]
    if target not in choices:
        raise ValueError(f"doc {sample['doc_id']}: target {target!r} is not among its choices {choices}")
    return choices.index(target)


def requests(sample: dict) -> list[list]:
    """A sample's request arguments: lm-eval 0.4.9 logs `{"gen_args_0": {"arg_0": ..., "arg_1": ...}}`,
    earlier versions a list of argument lists."""
    arguments = sample["arguments"]
    if isinstance(arguments, dict):
        return [list(request.values()) for request in arguments.values()]
    return arguments


def score_items(config: dict, samples: list[dict], encode) -> list[dict]:
    """Per-item scores of one task's logged samples, by its output type."""
    kind = config.get("output_type")
    if kind == "multiple_choice":
        items = []
        for sample in samples:
            continuations = [arguments[1] for arguments in requests(sample)]
            logliks = [float(response[0]) for response in sample["filtered_resps"]]
            gold = gold_index(sample, config, continuations)
            items.append({"doc_id": sample["doc_id"], "scores": choice_scores(
                logliks, gold, len(encode(continuations[gold])), len(continuations[gold].encode()))})
        return items
    if kind == "generate_until":
        return [{"doc_id": sample["doc_id"], "scores": {metric: float(sample[metric]) for metric in sample["metrics"]}}
                for sample in samples]
    if kind == "loglikelihood_rolling":
        return [rolling_item(sample) for sample in samples]
    raise unscored(kind)


def tokenizer_counter(model: str):
    """Tokens of a continuation as lm-eval's `tok_encode` counts them for a causal model (no special tokens)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    return lambda text: tokenizer.encode(text, add_special_tokens=False)


def import_lm_eval(folders: list[str | Path], cells_path: str | Path, plan: dict | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """metrics.csv and items.parquet tables of the evaluated cells, and a MISSING line for every cell or
    (cell, task) without results."""
    cells = read_cells(cells_path)
    runs = read_results(folders)
    unmatched = sorted(set(runs) - set(cells["model"]))
    if unmatched:
        where = "; ".join(f"{model} (in {', '.join(sorted(runs[model].folders))})" for model in unmatched)
        raise ValueError(f"lm-eval results of model(s) in no row of {cells_path}: {where}; add a row whose model "
                         "is the pretrained argument shown, or leave the folder out")
    every_task = sorted({task for run in runs.values() for task in run.configs})
    matched = {(cell["source"], int(cell["budget_tokens"]), int(cell["seed"])): run
               for cell in cells.to_dict("records") if (run := runs.get(cell["model"]))}
    for warning in check_task_versions({cell: {"tasks": run.configs, "task_versions": run.versions}
                                        for cell, run in matched.items()}) + \
            software_warnings({cell: {"scored": run.software} for cell, run in matched.items()}):
        print(warning)
    rows, items, missing = [], [], []
    for cell in cells.to_dict("records"):
        name = f"{cell['source']} budget {cell['budget_tokens']} seed {cell['seed']}"
        run = runs.get(cell["model"])
        if run is None:
            missing.append(f"MISSING: {name}: no lm-eval results of model {cell['model']}")
            continue
        costs = cell_costs(cell, run, plan or {})
        encode = None
        for task in every_task:
            if task not in run.configs:
                missing.append(f"MISSING: {name}, task {task}: not in the lm-eval results of {cell['model']}")
                continue
            config = run.configs[task]
            if config.get("output_type") == "multiple_choice" and encode is None:
                encode = tokenizer_counter(cell["model"])
            task_items = score_items(config, list(read_jsonl(run.samples[task])), encode)
            if not task_items:
                missing.append(f"MISSING: {name}, task {task}: {run.samples[task]} holds no items")
                continue
            key = {"source": cell["source"], "budget_tokens": int(cell["budget_tokens"]), "seed": int(cell["seed"])}
            for metric, result in aggregate([item["scores"] for item in task_items]).items():
                rows.append({**key, **costs, "task": task, "metric": metric, "value": result["value"],
                             "stderr": result["stderr"], "n_items": result["n_items"], "checkpoint": cell["model"]})
            items += [{**key, "task": task, "metric": metric, "item": str(item["doc_id"]), "value": float(value)}
                      for item in task_items for metric, value in item["scores"].items()]
    if not rows:
        raise ValueError(f"no cell of {cells_path} has lm-eval results in {[str(folder) for folder in folders]}")
    metrics = pd.DataFrame(rows, columns=METRICS_COLUMNS).sort_values(["task", "metric", "source", "budget_tokens",
                                                                       "seed"])
    return metrics, pd.DataFrame(items, columns=list(ITEM_COLUMNS)), missing


def cell_costs(cell: dict, run: ModelResults, plan: dict) -> dict:
    """A cell's tokens and compute as the table gives them, in collect's columns."""
    usd = cell["acquisition_usd"]
    costs = {"curation": cell["curation"], "train_tokens": int(cell["train_tokens"]),
             "unique_tokens": int(cell["unique_tokens"]),
             "epochs": cell["train_tokens"] / cell["unique_tokens"] if cell["unique_tokens"] else 0.0,
             "train_flops": float(cell["train_flops"]), "acquisition_flops": float(cell["acquisition_flops"]),
             "replay_tokens": cell["replay_tokens"], "replay_flops": cell["replay_flops"],
             "acquisition_usd": None if pd.isna(usd) else float(usd), "available_tokens": cell["available_tokens"],
             "shared_flops": cell["shared_flops"], "retrained_flops": cell["retrained_flops"], "dtype": run.dtype,
             "dtype_reason": "imported from lm-eval"}
    costs["total_flops"] = costs["train_flops"] + costs["acquisition_flops"]
    costs["total_usd"] = total_dollars(costs, plan)
    return costs
