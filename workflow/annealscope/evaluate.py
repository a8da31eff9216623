"""Evaluation with lm-evaluation-harness: tasks built once per job, any number of checkpoints scored.

lm-eval's start-up (task indexing, dataset building) is paid once per process: the task manager
indexes only the prepared local tasks (``include_defaults=False`` when every task is local), the
task dictionary is built once, and each checkpoint reuses it. ``evaluate_in_process`` keeps one
evaluator per settings for the life of the process, so the Snakemake rule (a ``run:`` job, executed
inside the Snakemake process on local runs) pays imports and start-up once per workflow run.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from annealscope.io import write_json, write_jsonl
from annealscope.scoring import aggregate, item_scores


@dataclass(frozen=True)
class EvalRequest:
    checkpoint: str
    scores_path: str
    items_path: str


class Evaluator:
    """Holds lm-eval's task dictionary so several checkpoints share one start-up."""

    def __init__(self, tasks: list[str], tasks_dir: str | Path, limit: int | None = None,
                 batch_size: int = 32, trust_remote_code: bool = False):
        from lm_eval.tasks import TaskManager, get_task_dict

        started = time.perf_counter()
        local = {path.stem for path in Path(tasks_dir).glob("*.yaml")}
        self.task_manager = TaskManager(include_path=str(tasks_dir), include_defaults=not set(tasks) <= local)
        self.task_dict = get_task_dict(tasks, self.task_manager)
        self.tasks, self.limit, self.batch_size = tasks, limit, batch_size
        self.trust_remote_code = trust_remote_code
        self.startup_seconds = time.perf_counter() - started

    def evaluate(self, request: EvalRequest) -> dict:
        """Score one checkpoint on every task; write its scores JSON and per-item JSONL.gz."""
        import torch
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        started = time.perf_counter()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = HFLM(pretrained=request.checkpoint, dtype=torch.float32, batch_size=self.batch_size,
                     trust_remote_code=self.trust_remote_code, device=device)
        results = evaluate(lm=model, task_dict=self.task_dict, limit=self.limit, log_samples=True, verbosity="ERROR")
        items, scores = [], {}
        for task in self.tasks:
            task_items = []
            for sample in results["samples"][task]:
                logliks = [float(response[0]) for response in sample["filtered_resps"]]
                gold = int(sample["target"])
                scored = item_scores(logliks, gold)
                task_items.append(scored)
                items.append({"task": task, "doc_id": sample["doc_id"], "gold": gold, "logliks": logliks, **scored})
            if not task_items:
                raise ValueError(f"task {task!r} produced no items for {request.checkpoint}")
            scores[task] = aggregate(task_items)
        seconds = time.perf_counter() - started
        write_jsonl(request.items_path, items)
        write_json(request.scores_path, {"checkpoint": request.checkpoint, "tasks": scores, "seconds": seconds})
        return scores


_EVALUATORS: dict[tuple, Evaluator] = {}
_LOCK = threading.Lock()


def evaluate_in_process(checkpoint: str, scores_path: str, items_path: str, settings_json: str, tasks_dir: str,
                        log_path: str, trust_remote_code: bool = False) -> None:
    """Evaluate one cell with an evaluator shared by every call in this process; output goes to `log_path`.

    Calls are serialised: lm-eval task objects hold per-run state and are not safe to share concurrently.
    """
    settings = json.loads(settings_json)
    key = (tuple(settings["tasks"]), str(Path(tasks_dir).resolve()), settings.get("limit"),
           settings.get("batch_size", 32), trust_remote_code)
    with _LOCK, open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        started = time.perf_counter()
        evaluator = _EVALUATORS.get(key)
        if evaluator is None:
            evaluator = _EVALUATORS[key] = Evaluator(settings["tasks"], tasks_dir, settings.get("limit"),
                                                     settings.get("batch_size", 32), trust_remote_code)
            print(f"built the evaluator for {', '.join(settings['tasks'])} (shared by later jobs)")
        evaluator.evaluate(EvalRequest(checkpoint, scores_path, items_path))
        print(f"evaluated {checkpoint} in {time.perf_counter() - started:.1f} s")


def evaluate_checkpoints(requests: list[EvalRequest], tasks: list[str], tasks_dir: str | Path,
                         limit: int | None = None, batch_size: int = 32, trust_remote_code: bool = False) -> None:
    """Evaluate several checkpoints in one process, paying lm-eval's start-up once."""
    from rich.console import Console

    console = Console(stderr=True)
    evaluator = Evaluator(tasks, tasks_dir, limit, batch_size, trust_remote_code)
    started = time.perf_counter()
    for request in requests:
        scores = evaluator.evaluate(request)
        summary = ", ".join(f"{task} acc {values['acc']['value']:.3f} nll {values['nll']['value']:.3f}"
                            for task, values in scores.items())
        console.print(f"evaluated {request.checkpoint}: {summary}")
    console.print(f"evaluated {len(requests)} checkpoint(s) on {len(tasks)} task(s) in "
                  f"{time.perf_counter() - started + evaluator.startup_seconds:.1f} s "
                  f"(start-up {evaluator.startup_seconds:.1f} s, paid once)")
