"""Throughput of each datatrove quality filter on one core, with annealscope's regular-expression words and,
where spaCy is installed (`pip install spacy`; not a dependency), with datatrove's default English tokenizer.

The text is curate_scale's pool (recombined Wikipedia sentences). It prints MB/s per filter and the ratio
regex/spaCy: why `curate/heuristics.py` splits words by a regular expression; and annealscope's Gopher quality,
repetition and C4 filters against datatrove's `GopherQualityFilter`, `GopherRepetitionFilter` and `C4QualityFilter`
on the same words (same verdicts, tested in tests/test_curate.py). Every filter takes batches of a shard job's size.

Run: python benchmarks/heuristics_speed.py [--mb 20]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

from curate_scale import write_pool
from datatrove.data import Document
from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter

from annealscope.curate.heuristics import FILTERS, RegexWords
from annealscope.curate.pipeline import BATCH

ARGUMENTS = {"c4_quality": {"filter_no_terminal_punct": False}}  # as FineWeb runs it


def throughput(texts: list[str], name: str, language, filters: dict = FILTERS) -> float:
    """MB/s of one filter over the texts, a batch of BATCH documents at a time, as a shard job runs it."""
    step = filters[name](**ARGUMENTS.get(name, {}), language=language)
    documents = [Document(text=text, id=str(index)) for index, text in enumerate(texts)]
    started = time.perf_counter()
    for start in range(0, len(documents), BATCH):
        step.filter_batch(documents[start:start + BATCH])
    return sum(len(text.encode()) for text in texts) / 1e6 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20, help="megabytes of text")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        write_pool(Path(work) / "pool", int(args.mb * 1e6), int(args.mb * 1e6) + 1)
        texts = [json.loads(line)["text"] for path in sorted((Path(work) / "pool").glob("*.jsonl"))
                 for line in path.open(encoding="utf-8")]
    spacy = importlib.util.find_spec("spacy") is not None
    print(f"{len(texts):,} documents, {args.mb:g} MB; one core" + ("" if spacy else "; spaCy not installed"))
    for name in FILTERS:
        fast = throughput(texts, name, RegexWords())
        line = f"{name:18s} regex words {fast:6.2f} MB/s"
        if spacy:
            slow = throughput(texts, name, "en")
            line += f"   spaCy words {slow:6.2f} MB/s   ratio {fast / slow:5.1f}"
        print(line, flush=True)
    for name, theirs in (("gopher_quality", GopherQualityFilter), ("gopher_repetition", GopherRepetitionFilter),
                         ("c4_quality", C4QualityFilter)):
        speed = throughput(texts, name, RegexWords(), {name: theirs})
        print(f"datatrove's {theirs.__name__}, regex words {speed:6.2f} MB/s; annealscope's {name} "
              f"is {throughput(texts, name, RegexWords()) / speed:.2f}x as fast", flush=True)


if __name__ == "__main__":
    main()
