"""Evaluation with lm-evaluation-harness: tasks built once per job, any number of checkpoints scored.

lm-eval's start-up (task indexing, dataset building) is paid once per process: the task manager
indexes only the prepared local tasks (``include_defaults=False`` when every task is local), the
task dictionary is built once, and each checkpoint reuses it. ``evaluate_in_process`` keeps one
evaluator per settings for the life of the process: the Snakemake rule is a ``run:`` job, which the workflow's
default profile runs in a thread of the main Snakemake process (``force-use-threads``), so every local
evaluation shares it (docs/design.md, "Process model"). ``evaluate_checkpoints`` scores several checkpoints
in one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from annealscope.core.config import schema_defaults
from annealscope.core.integrity import verify_export
from annealscope.core.io import write_json, write_jsonl
from annealscope.core.settings import execution_settings
from annealscope.core.versions import package_versions
from annealscope.evaluate.aggregation import aggregate
from annealscope.evaluate.scoring import choice_scores, gold_scores, rolling_item, unscored
from annealscope.evaluate.tasks import user_task_names

SCORING_PACKAGES = {"hf": ("lm_eval", "transformers", "torch"),
                    "vllm": ("lm_eval", "transformers", "torch", "vllm")}  # recorded in every scores.json


@dataclass(frozen=True)
class EvalRequest:
    checkpoint: str
    scores_path: str
    items_path: str


class Evaluator:
    """Holds lm-eval's task dictionary so several checkpoints share one start-up."""

    def __init__(self, tasks: list[str], tasks_dir: str | Path | list[str], limit: int | None = None,
                 batch_size: int | str = 32, trust_remote_code: bool = False, backend: str = "hf",
                 include_path: str | Path | None = None):
        """`tasks_dir`: the prepared tasks' folder, or folders (those decontaminated against, the screened)."""
        from lm_eval.tasks import TaskManager

        started = time.perf_counter()
        folders = task_folders(tasks_dir) + ([str(include_path)] if include_path else [])
        local = {path.stem for folder in task_folders(tasks_dir) for path in Path(folder).glob("*.yaml")}
        local |= user_task_names(include_path)
        self.task_manager = TaskManager(include_path=folders if len(folders) > 1 else folders[0],
                                        include_defaults=not set(tasks) <= local)
        self.unbuilt: dict[str, str] = {}  # tasks that could not be built, with why: reported by every evaluation
        try:
            self.task_dict = self.task_manager.load(tasks)  # {tasks, groups, group_map}, flat
        except Exception:  # find which task cannot be built, keep the others
            self.task_dict = {"tasks": {}, "groups": {}, "group_map": {}}
            for task in tasks:
                try:
                    loaded = self.task_manager.load([task])
                except Exception as error:
                    self.unbuilt[task] = f"{type(error).__name__}: {error}"
                    continue
                for key, value in loaded.items():
                    self.task_dict[key].update(value)
        self.groups = task_groups(self.task_dict)
        self.tasks, self.limit, self.batch_size = tasks, limit, batch_size
        self.trust_remote_code, self.backend = trust_remote_code, backend
        self.startup_seconds = time.perf_counter() - started

    def evaluate(self, request: EvalRequest) -> dict:
        """Score one checkpoint on every task; write its scores JSON and per-item JSONL.gz. A task that fails
        is recorded under ``failed`` with its error, and the others are still scored."""
        started = time.perf_counter()
        verify_export(request.checkpoint)
        model = self._load(request.checkpoint)
        samples, failed, versions = self._run(model)
        failed.update(self.unbuilt)
        items, scores = [], {}
        task_objects = self.task_dict["tasks"]
        for task, task_samples in samples.items():
            try:
                task_items = score_samples(task_objects[task], task_samples, model)
                if not task_items:
                    raise ValueError("no items were evaluated")
            except Exception as error:  # one task's failure must not lose the others
                failed[task] = f"{type(error).__name__}: {error}"
                continue
            scores[task] = aggregate([item["scores"] for item in task_items])
            items += [{"task": task, **item} for item in task_items]
        seconds = time.perf_counter() - started
        write_jsonl(request.items_path, items)
        write_json(request.scores_path, {"checkpoint": request.checkpoint, "tasks": scores, "failed": failed,
                                         "groups": self.groups,
                                         "seconds": seconds, "task_versions": {task: versions.get(task)
                                                                               for task in scores},
                                         "software": package_versions(*SCORING_PACKAGES[self.backend])})
        for task, error in failed.items():
            print(f"task {task} failed on {request.checkpoint}: {error}")
        return scores

    def _load(self, checkpoint: str):
        """The checkpoint as an lm-eval model: `transformers` (CPU or GPU; held-out text batched by length,
        `evaluate/rolling.py`), or vLLM when configured."""
        if self.backend == "vllm":
            try:
                from lm_eval.models.vllm_causallms import VLLM
            except ImportError as error:
                raise RuntimeError("eval.backend: vllm is not installed; `pip install 'annealscope[vllm]'` on a "
                                   "GPU machine, or use backend: hf") from error
            # bf16, as the hf backend scores on a GPU; vLLM's `auto` runs an fp32 model (the export) in fp16
            return VLLM(pretrained=checkpoint, dtype="bfloat16", batch_size=self.batch_size,
                        trust_remote_code=self.trust_remote_code)
        import torch

        from annealscope.evaluate.rolling import LengthSortedHFLM

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return LengthSortedHFLM(pretrained=checkpoint, dtype=torch.bfloat16 if device == "cuda" else torch.float32,
                                batch_size=self.batch_size, trust_remote_code=self.trust_remote_code, device=device)

    def _run(self, model) -> tuple[dict[str, list[dict]], dict[str, str], dict[str, object]]:
        """lm-eval's logged samples by task, the tasks that failed, and each task's version (lm-eval's
        ``versions``): all tasks in one run, or task by task if that run fails."""
        from lm_eval.evaluator import evaluate

        def run(task_dict):
            results = evaluate(lm=model, task_dict=task_dict, limit=self.limit, log_samples=True, verbosity="ERROR")
            return results["samples"], results.get("versions", {})

        if not self.task_dict["tasks"]:
            return {}, {}, {}
        try:
            samples, versions = run(self.task_dict)
            return samples, {}, versions
        except Exception as error:  # isolate the failing task below
            print(f"the joint evaluation failed ({type(error).__name__}: {error}); evaluating task by task")
        samples, failed, versions = {}, {}, {}
        for name, task in self.task_dict["tasks"].items():
            try:
                task_samples, task_versions = run({"tasks": {name: task}, "groups": {}, "group_map": {}})
            except Exception as error:
                failed[str(name)] = f"{type(error).__name__}: {error}"
                continue
            samples.update(task_samples)
            versions.update(task_versions)
        return samples, failed, versions


def task_groups(task_dict: dict) -> dict[str, dict]:
    """Every group of `task_dict` (TaskManager.load's) that lm-eval aggregates into one score, nested ones too: its
    leaf tasks and whether lm-eval weighs them by their items (`weight_by_size` in its `aggregate_metric_list`)."""
    return {name: {"tasks": sorted(task.task_name for task in group.get_all_tasks()),
                   "weight_by_size": all(aggregate.weight_by_size for aggregate in group.aggregate_metric_list)}
            for name, group in sorted(task_dict["groups"].items()) if group.aggregate_metric_list}


def score_samples(task, samples: list[dict], model) -> list[dict]:
    """Per-item records (doc id, scores, raw log-likelihoods) by the task's output type."""
    kind = task.OUTPUT_TYPE
    if kind == "multiple_choice":
        return [multiple_choice_item(task, sample, model) for sample in samples]
    if kind == "generate_until":
        return generative_items(task, samples, model)
    if kind == "loglikelihood_rolling":
        return [rolling_item(sample) for sample in samples]
    raise unscored(kind)


def multiple_choice_item(task, sample: dict, model) -> dict:
    logliks = [float(response[0]) for response in sample["filtered_resps"]]
    continuations = [arguments[1] for arguments in sample["arguments"]]
    target = sample["target"]
    if isinstance(target, str):
        choices = task.doc_to_choice(sample["doc"])
        if target not in choices:
            raise ValueError(f"doc {sample['doc_id']}: target {target!r} is not among its choices")
        target = choices.index(target)
    gold = int(target[0] if isinstance(target, list) else target)
    scores = choice_scores(logliks, gold, len(model.tok_encode(continuations[gold])),
                           len(continuations[gold].encode()))
    return {"doc_id": sample["doc_id"], "gold": gold, "logliks": logliks, "scores": scores}


def generative_items(task, samples: list[dict], model) -> list[dict]:
    """The task's own per-item metrics, plus the gold answer's log-likelihood given the prompt."""
    from lm_eval.api.instance import Instance

    delimiter = getattr(task.config, "target_delimiter", " ")
    golds = []
    for sample in samples:
        target = sample["target"][0] if isinstance(sample["target"], list) else sample["target"]
        golds.append((sample["arguments"][0][0], f"{delimiter}{target}"))
    requests = [Instance(request_type="loglikelihood", doc=sample["doc"], arguments=gold, idx=0)
                for sample, gold in zip(samples, golds, strict=True)]
    logliks = [float(result[0]) for result in model.loglikelihood(requests, disable_tqdm=True)]
    items = []
    for sample, (_, continuation), loglik in zip(samples, golds, logliks, strict=True):
        own = {metric: float(sample[metric]) for metric in sample["metrics"]}
        gold = gold_scores(loglik, len(model.tok_encode(continuation)), len(continuation.encode()))
        items.append({"doc_id": sample["doc_id"], "response": sample["filtered_resps"][0], "scores": {**own, **gold}})
    return items


def task_folders(tasks_dir: str | Path | list[str]) -> list[str]:
    return [str(folder) for folder in tasks_dir] if isinstance(tasks_dir, list) else [str(tasks_dir)]


_EVALUATORS: dict[tuple, Evaluator] = {}
_LOCK = threading.Lock()


def eval_options(settings: dict) -> tuple[list[str], int | None, int | str, str, str | None]:
    """(tasks, limit, batch_size, backend, include_path) of the `eval` settings with the workflow's execution
    settings (the batch size), the schema's defaults filling what they omit."""
    settings = schema_defaults("eval") | settings | execution_settings("eval")
    return settings["tasks"], settings["limit"], settings["batch_size"], settings["backend"], settings["include_path"]


def evaluate_in_process(checkpoint: str, scores_path: str, items_path: str, settings_json: str, tasks_dir: str | list,
                        log_path: str, trust_remote_code: bool = False, hf_home: str = "") -> None:
    """Evaluate one cell with an evaluator shared by every call in this process; output goes to `log_path`.

    Calls are serialised: lm-eval task objects hold per-run state and are not safe to share concurrently.
    `hf_home` (where fetch_tasks cached lm-eval datasets) takes effect before the first Hugging Face import.
    PyTorch runs on the job's threads (`eval.threads`, an execution setting) while it evaluates.
    """
    if hf_home:
        os.environ["HF_HOME"] = hf_home
    tasks, limit, batch_size, backend, include_path = eval_options(json.loads(settings_json))
    folders = tuple(str(Path(folder).resolve()) for folder in task_folders(tasks_dir))
    key = (tuple(tasks), folders, limit, batch_size, trust_remote_code, backend, include_path)
    with _LOCK, open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        started = time.perf_counter()
        if threads := execution_settings("eval").get("threads"):
            import torch

            torch.set_num_threads(threads)
        evaluator = _EVALUATORS.get(key)
        if evaluator is None:
            evaluator = _EVALUATORS[key] = Evaluator(tasks, tasks_dir, limit, batch_size, trust_remote_code, backend,
                                                     include_path)
            print(f"built the evaluator for {', '.join(tasks)} (shared by later jobs in this process)")
        evaluator.evaluate(EvalRequest(checkpoint, scores_path, items_path))
        print(f"evaluated {checkpoint} in {time.perf_counter() - started:.1f} s")


def evaluate_checkpoints(requests: list[EvalRequest], tasks: list[str], tasks_dir: str | Path,
                         limit: int | None = None, batch_size: int | str = 32, trust_remote_code: bool = False,
                         backend: str = "hf", include_path: str | Path | None = None) -> None:
    """Evaluate several checkpoints in one process, paying lm-eval's start-up once."""
    from rich.console import Console

    console = Console(stderr=True)
    evaluator = Evaluator(tasks, tasks_dir, limit, batch_size, trust_remote_code, backend, include_path)
    started = time.perf_counter()
    for request in requests:
        scores = evaluator.evaluate(request)
        summary = ", ".join(f"{task} " + " ".join(f"{metric} {value['value']:.3f}" for metric, value in values.items())
                            for task, values in scores.items())
        console.print(f"evaluated {request.checkpoint}: {summary}")
    console.print(f"evaluated {len(requests)} checkpoint(s) on {len(tasks)} task(s) in "
                  f"{time.perf_counter() - started + evaluator.startup_seconds:.1f} s "
                  f"(start-up {evaluator.startup_seconds:.1f} s, paid once)")
