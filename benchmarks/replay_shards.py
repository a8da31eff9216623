"""The replay corpus tokenized in shard jobs, against the one job per step that tokenized it before.

It writes a local dataset of `--mb` MB of JSON lines (`hub_parts.local_dataset`), names it as a hub reference
with a `max_tokens` cap, as the 7B examples name their replay, fetches it (`annealscope fetch-dataset`) and
trains a 4,096-token tokenizer. Then, each a fresh process running the command its rule runs:

- before: `annealscope corpus` (reads the cache, counts tokens for the cap, writes a JSONL; the old
  `corpus_documents` job) then `annealscope tokenize --documents` on 2 threads (the old `tokenize` job);
- now: `annealscope tokenize --pieces` of each of the `--shards` shards (`tokenize_replay_shard`, 2 threads
  each, one after another), then `annealscope index-tokens` (`index_replay`).

It checks that both give the same token stream and prints each job's seconds, the critical path (before: the
two jobs in a row; now: the slowest shard job and the index, when a cluster runs the shards at once), the job
seconds summed, their ratios, and each job's peak resident memory.

Run: python benchmarks/replay_shards.py [--mb 256] [--shards 8]
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

import numpy as np
from hub_parts import local_dataset

from annealscope.core.corpora import dataset_slug, read_corpus
from annealscope.core.shards import replay_shards
from annealscope.core.tokens import TokenArray

CAP = 10**12  # a max_tokens cap the data does not reach: every text is counted, as under any cap


def job(*arguments: str, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds and peak resident MB (of its largest process) of one `annealscope` command in a fresh process,
    with `env` added to the environment."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "annealscope.cli", *arguments]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command)
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=256)
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        compare(Path(work), args.mb, args.shards)


def compare(work: Path, megabytes: float, shard_count: int) -> None:
    """Tokenize the dataset both ways in `work`, check the tokens agree and print the figures."""
    from annealscope.base.build import train_tokenizer

    rows, reference = local_dataset(work, megabytes, f"max_tokens={CAP}")
    cache, tokenizer = work / "cache", work / "tokenizer"
    job("fetch-dataset", reference, "--out", str(cache / "datasets" / dataset_slug(reference)))
    texts = [document.text for document in read_corpus("wikipedia:general")]
    train_tokenizer(texts, 4096).save_pretrained(tokenizer)
    common = ("--tokenizer", str(tokenizer), "--cache-dir", str(cache))

    documents = str(work / "documents.jsonl")
    corpus, corpus_mb = job("corpus", reference, *common, "--out", documents)
    whole, whole_mb = job("tokenize", "--documents", documents, "--tokenizer", str(tokenizer), "--threads", "2",
                          "--out", str(work / "whole.bin"))

    sharding = {"bytes": 1 << 28, "tokens": -(-CAP // shard_count), "documents": 100_000}
    shards = replay_shards({"replay": {"corpus": [reference], "fraction": 0.5, "sharding": sharding}})
    bins = [work / "replay" / f"shard{index:05d}.bin" for index in range(len(shards))]
    seconds, peaks = zip(*(job("tokenize", "--pieces", json.dumps(pieces), *common, "--threads", "2", "--out",
                               str(out)) for pieces, out in zip(shards, bins, strict=True)), strict=True)
    index, _ = job("index-tokens", *map(str, bins), "--out", str(work / "replay.json"))

    sharded, baseline = TokenArray.open(work / "replay.json"), TokenArray.open(work / "whole.bin")
    assert sharded.size == baseline.size, (sharded.size, baseline.size)
    assert np.array_equal(sharded.window(0, sharded.size), baseline.window(0, baseline.size))
    before, now = corpus + whole, max(seconds) + index
    print(f"{rows:,} rows, {megabytes:g} MB, {baseline.size:,} tokens. Before: corpus {corpus:.1f} s "
          f"({corpus_mb:.0f} MB peak) + tokenize {whole:.1f} s ({whole_mb:.0f} MB) = {before:.1f} s. Now: "
          f"{len(shards)} shard jobs of {min(seconds):.1f} to {max(seconds):.1f} s (sum {sum(seconds):.1f} s; "
          f"at most {max(peaks):.0f} MB) + index {index:.1f} s. Critical path "
          f"{before:.1f} s vs {now:.1f} s (ratio {before / now:.2f}); job seconds {before:.1f} vs "
          f"{sum(seconds) + index:.1f} (ratio {before / (sum(seconds) + index):.2f})")


if __name__ == "__main__":
    main()
