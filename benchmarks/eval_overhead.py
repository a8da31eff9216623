"""Evaluation wall time per checkpoint against the model work alone, on the demo's arith_mc task.

Compares, per checkpoint: (a) one plain `lm_eval.simple_evaluate` call; (b) annealscope's Evaluator, tasks
built once, in one process; (c) the per-cell job the Snakemake rule runs (`annealscope evaluate`, a fresh
process); and the model work alone (`HFLM.loglikelihood` on the task's requests).
Run: python benchmarks/eval_overhead.py [--checkpoints 3]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

TASK = "arith_mc"


def model_work(checkpoint: str, tasks_dir: Path) -> float:
    """Seconds of `loglikelihood` on the task's requests, with the model already loaded."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(tasks_dir), include_defaults=False).load([TASK])["tasks"][TASK]
    task.build_all_requests(rank=0, world_size=1)
    requests = [instance for instance in task.instances]
    model = HFLM(pretrained=checkpoint, dtype=torch.float32, batch_size=32, device="cpu")
    started = time.perf_counter()
    model.loglikelihood(requests, disable_tqdm=True)
    return time.perf_counter() - started


def plain_simple_evaluate(checkpoint: str, tasks_dir: Path) -> float:
    import lm_eval
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={checkpoint},dtype=float32", tasks=[TASK],
                            task_manager=TaskManager(include_path=str(tasks_dir)), batch_size=32, device="cpu",
                            log_samples=True, verbosity="ERROR")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=3)
    args = parser.parse_args()
    from annealscope.base.build import initialise_base
    from annealscope.evaluate.harness import EvalRequest, Evaluator
    from annealscope.evaluate.tasks import prepare_tasks
    from annealscope.validation import load_config

    work = Path(tempfile.mkdtemp(prefix="eval_overhead."))
    checkpoint = str(work / "model")
    demo = load_config(Path("config", "config.yaml"))["base_model"]["build"]
    initialise_base(["pydoc:topics"], demo, checkpoint)  # the demo's model shape, untrained
    tasks_dir = work / "tasks"
    prepare_tasks([TASK], "resources", tasks_dir)
    n = args.checkpoints

    work_seconds = min(model_work(checkpoint, tasks_dir) for _ in range(2))
    plain = [plain_simple_evaluate(checkpoint, tasks_dir) for _ in range(n)]
    started = time.perf_counter()
    evaluator = Evaluator([TASK], tasks_dir)
    for index in range(n):
        evaluator.evaluate(EvalRequest(checkpoint, str(work / f"s{index}.json"), str(work / f"i{index}.jsonl.gz")))
    in_process = (time.perf_counter() - started) / n
    jobs = []
    for index in range(n):
        started = time.perf_counter()
        subprocess.run(["annealscope", "evaluate", "--tasks-dir", str(tasks_dir), "--settings",
                        f'{{"tasks": ["{TASK}"]}}', "--job", checkpoint, str(work / f"j{index}.json"),
                        str(work / f"j{index}.jsonl.gz")], check=True, capture_output=True)
        jobs.append(time.perf_counter() - started)
    job = min(jobs)
    print(f"model work alone          : {work_seconds:6.2f} s per checkpoint ({TASK}, {n} checkpoints)")
    for name, seconds, note in (("plain simple_evaluate", min(plain), ""),
                                ("annealscope, one process", in_process, ""),
                                ("annealscope, job per cell", job, " (with a fresh process's imports)")):
        print(f"{name:<26}: {seconds:6.2f} s per checkpoint, overhead {seconds - work_seconds:6.2f} s{note}")
    print(f"ratio plain / job per cell = {min(plain) / job:.2f}x")


if __name__ == "__main__":
    main()
