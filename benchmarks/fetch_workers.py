"""A hub dataset of many files fetched by worker processes, against one process streaming them all.

It writes a local dataset folder of `--files` parquet files, `--mb` MB of text in all (Wikipedia summaries with
a running number, so no two rows repeat), the form a hub dataset such as FineWeb takes, and names it as a hub
reference capped at 3/4 of its text (`max_tokens`, at FETCH_BYTES_PER_TOKEN bytes a token), so the fetch stops
inside a file as a capped 7B replay does. Then it runs the `fetch_dataset` rule's command
(`annealscope fetch-dataset`) in a fresh process with OMP_NUM_THREADS set to the rule's threads, as Snakemake
runs it: once with 1 (the baseline) and once with `--workers`. It checks that both caches hold the same files,
their text byte for byte, and prints each fetch's seconds, MB/s of text fetched and peak resident memory (the largest
process: `wait4`), and the baseline's seconds over the workers'.

Run: python benchmarks/fetch_workers.py [--mb 1024] [--files 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import tempfile
from pathlib import Path

from replay_shards import job

from annealscope.core.corpora import FETCH_BYTES_PER_TOKEN, dataset_slug, read_corpus


def write_parquet_dataset(directory: Path, megabytes: float, files: int) -> int:
    """`files` parquet files under `directory/data` of about `megabytes` MB of text in all; their rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [document.text for document in read_corpus("wikipedia:general")]
    (directory / "data").mkdir(parents=True)
    rows = 0
    for index in range(files):
        batch, size = [], 0
        while size < megabytes * 1e6 / files:
            batch.append(f"{rows}: {texts[rows % len(texts)]}")
            size += len(batch[-1].encode())
            rows += 1
        pq.write_table(pa.table({"text": batch}), directory / "data" / f"train-{index:05d}-of-{files:05d}.parquet")
    return rows


def digests(directory: Path) -> dict[str, str]:
    """Each cached file's MD5, of its text (a gzip header holds the time and the temporary name it was written as)."""
    return {path.name: hashlib.md5(gzip.decompress(path.read_bytes())).hexdigest()
            for path in sorted(directory.glob("*.jsonl.gz"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=1024)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        rows = write_parquet_dataset(work / "dataset", args.mb, args.files)
        cap = int(args.mb * 1e6 * 3 / 4 / FETCH_BYTES_PER_TOKEN)
        reference = f"hf:{work / 'dataset'}?split=train&text=text&max_tokens={cap}"
        results = {}
        for workers in (1, args.workers):
            out = work / f"cache-{workers}" / "datasets" / dataset_slug(reference)
            seconds, memory = job("fetch-dataset", reference, "--out", str(out), env={"OMP_NUM_THREADS": str(workers)})
            provenance = json.loads((out / "fetch.json").read_text())
            results[workers] = seconds, memory, provenance, digests(out)
            text = provenance["bytes"] / 1e6
            print(f"{workers} worker(s): {provenance['rows']:,} of {rows:,} rows, {text:.1f} MB of text from "
                  f"{provenance['files']} files in {seconds:.1f} s ({text / seconds:.1f} MB/s), "
                  f"{len(provenance['chunks'])} cached files, peak {memory:.0f} MB")
        assert results[1][3] == results[args.workers][3], "the caches differ"
        print(f"same {len(results[1][3])} cached files; ratio (1 worker's seconds / {args.workers} workers'): "
              f"{results[1][0] / results[args.workers][0]:.2f}")


if __name__ == "__main__":
    main()
