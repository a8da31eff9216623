"""What training data must not contain, for lm-eval's own tasks: each evaluation document as lm-eval builds it.

A task that names a decontamination query (`should_decontaminate` with `doc_to_decontamination_query`) gives
that; any other gives its prompt and gold answer (`doc_to_text` and `doc_to_target`, the answer's text for a
multiple-choice task). A group (e.g. `mmlu`) gives the documents of all its subtasks under its own name, so
removals are counted per configured task. The curate stage indexes these texts beside the local tasks' items
and the held-out documents (`annealscope.curate.decontaminate`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from annealscope.core.io import write_jsonl
from annealscope.core.layout import DECONTAMINATION_TEXTS


def write_decontamination_texts(tasks: list[str], out_dir: Path, include_path: str | Path | None = None
                                ) -> dict[str, int]:
    """Write `out_dir/decontamination/<task>.jsonl` for each task through lm-eval, each document under the
    (sub)task and doc id lm-eval scores it by; return the counts."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path)
    folder = out_dir / DECONTAMINATION_TEXTS
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name in tasks:
        items = ({"task": task.config.task, "doc_id": doc_id, "text": text}
                 for task in manager.load([name])["tasks"].values() for doc_id, text in enumerate(task_texts(task)))
        counts[name] = write_jsonl(folder / f"{name}.jsonl", items)
    return counts


def task_texts(task) -> Iterator[str]:
    """The text of every evaluation document of one lm-eval task (its test split, else validation), in the order
    lm-eval numbers them."""
    documents = task.test_docs() if task.has_test_docs() else task.validation_docs()
    name = task.config.task
    for document in tqdm(documents, desc=f"decontamination texts of {name}", unit="doc", mininterval=5):
        if task.should_decontaminate():
            yield str(task.doc_to_decontamination_query(document))
        else:
            yield f"{task.doc_to_text(document)} {_gold(task, document)}"


def _gold(task, document) -> str:
    target = task.doc_to_target(document)
    if task.OUTPUT_TYPE == "multiple_choice" and isinstance(target, int):
        target = task.doc_to_choice(document)[target]
    if isinstance(target, list):
        target = " ".join(str(value) for value in target)
    return str(target)
