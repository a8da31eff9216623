"""Cost of screening one shard for a benchmark's items (`screen_shard`, the job a task left out of
`eval.decontaminate` adds per curated shard), against decontaminating the same documents (the screen
`finish_shard` runs on every batch), and its memory as the shard grows.

It writes a prepared task of `--items` multiple-choice items of about `--item-words` words (MMLU has 14,042 test
items) and, per size in `--megabytes`, a shard of random-word documents of about 400 words with one item in
every 500th document; then times `screen_shard` and the decontamination screen (`ContaminationIndex.tasks` over
the same batches, hashed once), each building its index, and traces screening's peak memory in a second run
(`tracemalloc`, which numpy reports to).
It prints per size: megabytes a second of each, their ratio, the items found (every planted one), and the peak.

Run: python benchmarks/screening.py [--megabytes 32 128] [--items 14042] [--item-words 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from annealscope.core.io import read_jsonl, write_jsonl
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.pipeline import batched, eval_item_texts
from annealscope.curate.screen import screen_shard
from annealscope.curate.text import HashedWords

VOCABULARY = np.array([f"w{index}" for index in range(50_000)])
PLANT_EVERY = 500


def words(rng: np.random.Generator, count: int) -> str:
    return " ".join(VOCABULARY[np.minimum(rng.zipf(1.2, count), len(VOCABULARY)) - 1])


def write_task(folder: Path, items: int, item_words: int, rng: np.random.Generator) -> list[str]:
    questions = [words(rng, item_words) for _ in range(items)]
    write_jsonl(folder / "bench_mc.jsonl", ({"question": question, "choices": ["a", "b"], "gold": 0}
                                            for question in questions))
    return questions


def write_shard(path: Path, megabytes: float, questions: list[str], rng: np.random.Generator) -> int:
    """Documents until `megabytes`; every PLANT_EVERY-th quotes an item. Returns the items planted."""
    written, planted, place = 0, 0, 0
    with path.open("w", encoding="utf-8") as handle:
        while written < megabytes * 1e6:
            text = words(rng, 400)
            if place % PLANT_EVERY == 0:
                text = f"{text} {questions[planted % len(questions)]}"
                planted += 1
            line = f'{{"id": "{place}", "text": "{text}"}}\n'
            handle.write(line)
            written += len(line)
            place += 1
    return min(planted, len(questions))


def decontaminate(documents: Path, tasks: Path) -> int:
    """What `finish_shard` spends on decontamination: the same index, every batch hashed and screened."""
    index = ContaminationIndex(eval_item_texts(tasks), n=13)
    return sum(task is not None for batch in batched(read_jsonl(documents))
               for task in index.tasks([document["text"] for document in batch],
                                       HashedWords.of([document["text"] for document in batch])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, nargs="+", default=[32, 128])
    parser.add_argument("--items", type=int, default=14_042)
    parser.add_argument("--item-words", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as scratch:
        tasks = Path(scratch, "tasks")
        tasks.mkdir()
        questions = write_task(tasks, args.items, args.item_words, rng)
        for megabytes in args.megabytes:
            documents = Path(scratch, "documents.jsonl")
            planted = write_shard(documents, megabytes, questions, rng)
            size = documents.stat().st_size / 1e6
            started = time.perf_counter()
            removed = decontaminate(documents, tasks)
            baseline = time.perf_counter() - started
            started = time.perf_counter()
            found = screen_shard("bench", {"decontamination_ngram": 13}, documents, tasks, Path(scratch, "out.json"))
            seconds = time.perf_counter() - started
            tracemalloc.start()  # again, traced: tracing slows every allocation
            screen_shard("bench", {"decontamination_ngram": 13}, documents, tasks, Path(scratch, "out.json"))
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            items = sum(map(len, found["tasks"]["bench_mc"]["found"].values()))
            print(f"{size:,.0f} MB, {args.items:,} items: screening {size / seconds:.1f} MB/s, decontamination "
                  f"{size / baseline:.1f} MB/s, ratio {seconds / baseline:.2f}; found {items:,} of {planted:,} "
                  f"planted items ({removed:,} documents decontamination removes); peak {peak / 1e6:,.0f} MB traced")


if __name__ == "__main__":
    main()
