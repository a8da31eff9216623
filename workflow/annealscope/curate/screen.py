"""Screening of the evaluated tasks that training data was not decontaminated against (`eval.decontaminate`):
which of their items share an n-gram with any source's curated documents, found per shard in parallel and
merged into the file `collect` reads to score those tasks on the other items only
(`evaluate.collect.excluded_items`).

An item is found by the test decontamination applies to documents (`curate.decontaminate`): one of its word
n-grams (`decontamination_ngram` of the source) occurs in a document; an item shorter than n words, by its
whole text of at least eight words. Items are keyed by the (sub)task and doc id lm-eval scores them by.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tqdm import tqdm

from annealscope.core.io import read_json, read_jsonl, write_json
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.pipeline import batched, eval_items


def screen_shard(name: str, settings: dict, documents_path: str | Path, tasks_dir: str | Path,
                 out_path: str | Path) -> dict:
    """Find the screened tasks' items (prepared in `tasks_dir`) in one shard's curated documents."""
    items = eval_items(tasks_dir)
    index = ContaminationIndex({(task, leaf, doc_id): [text] for task, entries in items.items()
                                for leaf, doc_id, text in entries}, n=settings["decontamination_ngram"])
    found: set[tuple[str, str, str]] = set()
    documents = 0
    with tqdm(desc=f"screen {name} {Path(documents_path).parent.name}", unit="doc", mininterval=5) as progress:
        for batch in batched(read_jsonl(documents_path)):
            found |= index.owners([document["text"] for document in batch])
            documents += len(batch)
            progress.update(len(batch))
    tasks = {}
    for task, entries in items.items():
        by_leaf = defaultdict(list)
        for key in sorted(key for key in found if key[0] == task):
            by_leaf[key[1]].append(key[2])
        tasks[task] = {"items": len(entries), "found": dict(by_leaf)}
    result = {"source": name, "documents": documents, "tasks": tasks}
    write_json(out_path, result)
    summary = ", ".join(f"{task} {sum(map(len, entry['found'].values()))} of {entry['items']}"
                        for task, entry in tasks.items())
    print(f"screened {documents:,} documents of {name}: items found: {summary or 'no screened task'}", flush=True)
    return result


def merge_screenings(paths: list[str | Path], out_path: str | Path) -> dict:
    """Every shard's screening merged: per screened task, its items found in any source (by subtask, doc ids
    sorted), how many items it has, and how many were found in each source."""
    merged: dict[str, dict] = {}
    for shard in map(read_json, paths):
        for task, entry in shard["tasks"].items():
            into = merged.setdefault(task, {"items": entry["items"], "found": defaultdict(set), "sources": {}})
            in_source = into["sources"].setdefault(shard["source"], set())
            for leaf, doc_ids in entry["found"].items():
                into["found"][leaf].update(doc_ids)
                in_source.update((leaf, doc_id) for doc_id in doc_ids)
    tasks = {task: {"items": entry["items"], "excluded": sum(map(len, entry["found"].values())),
                    "found": {leaf: sorted(doc_ids, key=int) for leaf, doc_ids in sorted(entry["found"].items())},
                    "by_source": {source: len(found) for source, found in entry["sources"].items()}}
             for task, entry in merged.items()}
    write_json(out_path, {"tasks": tasks})
    for task, entry in tasks.items():
        print(f"{task}: {entry['excluded']} of {entry['items']} items occur in curated training data "
              f"({entry['by_source']}); they are not scored", flush=True)
    return tasks
