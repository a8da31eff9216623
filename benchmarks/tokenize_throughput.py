"""Tokens/s of `annealscope tokenize` against raw `tokenizers` `encode_batch` on the same text.

The baseline encodes every document in one `encode_batch` call (no reading, no writing); annealscope
reads the JSONL, encodes in batches, appends EOS and writes the uint16/uint32 array. Each core count
runs in its own process (rayon fixes its thread pool at start-up), best of `--rounds` rounds.
Goal: ratio >= 0.8, and near-linear scaling with cores.
Run: python benchmarks/tokenize_throughput.py [--megabytes 40] [--rounds 3] [--cores 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def corpus(megabytes: float) -> list[str]:
    """Wikipedia summaries and library docstrings, repeated up to `megabytes` of UTF-8."""
    from annealscope.core.corpora import read_corpora

    texts = [document.text for document in read_corpora(["wikipedia:general", "wikipedia:pool", "docstrings:numpy"])]
    size = sum(len(text.encode()) for text in texts)
    return texts * max(1, round(megabytes * 1e6 / size))


def worker(directory: Path, rounds: int) -> dict:
    from transformers import AutoTokenizer

    from annealscope.core.io import read_jsonl
    from annealscope.curate.tokenize import tokenize_documents

    texts = [record["text"] for record in read_jsonl(directory / "docs.jsonl")]
    backend = AutoTokenizer.from_pretrained(str(directory / "tokenizer")).backend_tokenizer
    raw, ours, tokens = [], [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        tokens = sum(len(encoding.ids) + 1 for encoding in backend.encode_batch(texts, add_special_tokens=False))
        raw.append(time.perf_counter() - started)
        started = time.perf_counter()
        meta = tokenize_documents(directory / "docs.jsonl", directory / "tokenizer", directory / "out.bin",
                                  threads=int(os.environ["RAYON_NUM_THREADS"]))
        ours.append(time.perf_counter() - started)
        assert meta["tokens"] == tokens, (meta["tokens"], tokens)
    return {"tokens": tokens, "raw_tokens_per_s": tokens / min(raw), "annealscope_tokens_per_s": tokens / min(ours)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(Path(args.worker), args.rounds)))
        return

    from annealscope.base.build import train_tokenizer
    from annealscope.core.io import write_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        texts = corpus(args.megabytes)
        write_jsonl(directory / "docs.jsonl", ({"text": text} for text in texts))
        train_tokenizer(texts[:5000], 4096).save_pretrained(directory / "tokenizer")
        print(f"{len(texts):,} documents, {sum(len(text.encode()) for text in texts) / 1e6:.1f} MB")
        results = {}
        for cores in dict.fromkeys(args.cores):
            environment = {**os.environ, "RAYON_NUM_THREADS": str(cores), "TOKENIZERS_PARALLELISM": "true"}
            command = [sys.executable, __file__, "--worker", str(directory), "--rounds", str(args.rounds)]
            output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
            results[cores] = json.loads(output.strip().splitlines()[-1])
            row = results[cores]
            print(f"{cores} core(s): raw encode_batch {row['raw_tokens_per_s']:,.0f} tokens/s, annealscope "
                  f"{row['annealscope_tokens_per_s']:,.0f} tokens/s, ratio "
                  f"{row['annealscope_tokens_per_s'] / row['raw_tokens_per_s']:.3f}")
        if len(results) > 1:
            low, high = min(results), max(results)
            speedup = results[high]["annealscope_tokens_per_s"] / results[low]["annealscope_tokens_per_s"]
            print(f"scaling {low} -> {high} cores: {speedup:.2f}x (linear would be {high / low:.0f}x)")


if __name__ == "__main__":
    main()
