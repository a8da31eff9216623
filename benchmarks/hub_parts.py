"""What a capped hub reference's shard jobs read, against reading its fetched cache once.

It writes a local dataset folder of `--mb` MB of JSON lines (Wikipedia summaries with a running number, so no
two rows repeat), fetches it as the workflow's `fetch_dataset` job does (`annealscope fetch-dataset`, a fresh
process), then reads it as `--parts` shard jobs would, one part after another (`read_piece` of each part), and,
as the baseline, whole, once (`read_corpus`). It prints the fetch's MB/s and the ratio of all parts' reading
time to the baseline's: near 1 when each part reads only its own rows, near the number of parts when each part
decompresses the whole cache to pick its rows out.

Run: python benchmarks/hub_parts.py [--mb 512] [--parts 16]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from annealscope.core.corpora import dataset_slug, read_corpus, read_piece


def write_dataset(directory: Path, megabytes: float) -> int:
    """A local dataset folder (`train.jsonl`, one `text` field a row) of about `megabytes` MB; its rows."""
    texts = [document.text for document in read_corpus("wikipedia:general")]
    directory.mkdir(parents=True)
    written, rows = 0, 0
    with open(directory / "train.jsonl", "w", encoding="utf-8") as handle:
        while written < megabytes * 1e6:
            line = json.dumps({"text": f"{rows}: {texts[rows % len(texts)]}"}) + "\n"
            handle.write(line)
            written += len(line)
            rows += 1
    return rows


def local_dataset(work: Path, megabytes: float, cap: str | None = None) -> tuple[int, str]:
    """A local dataset of about `megabytes` MB in `work`, its rows, and its hub reference, capped by `cap`
    (`key=value`; by default max_documents, all its rows)."""
    rows = write_dataset(work / "dataset", megabytes)
    return rows, f"hf:{work / 'dataset'}?split=train&text=text&{cap or f'max_documents={rows}'}"


def timed(documents) -> tuple[float, int]:
    started, count = time.perf_counter(), 0
    for _ in documents:
        count += 1
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=512)
    parser.add_argument("--parts", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        rows, reference = local_dataset(work, args.mb)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "annealscope.cli", "fetch-dataset", reference, "--out",
                        str(work / "cache" / "datasets" / dataset_slug(reference))], check=True,
                       stdout=subprocess.DEVNULL)
        fetch = time.perf_counter() - started
        cached = sum(path.stat().st_size for path in (work / "cache" / "datasets").rglob("*.gz"))
        whole, count = timed(read_corpus(reference, work / "cache"))
        parts, counted = 0.0, 0
        for part in range(args.parts):
            seconds, documents = timed(read_piece({"reference": reference, "part": part, "parts": args.parts},
                                                  work / "cache"))
            parts += seconds
            counted += documents
        assert count == counted == rows, (count, counted, rows)
        print(f"{rows:,} rows, {args.mb:g} MB: fetched in {fetch:.1f} s ({args.mb / fetch:.1f} MB/s, "
              f"{cached / 1e6:.1f} MB cached); read whole {whole:.2f} s; {args.parts} parts {parts:.2f} s "
              f"(ratio to whole {parts / whole:.2f})")


if __name__ == "__main__":
    main()
