"""Peak memory of the dedup job's decision (`find_duplicates`) as the source grows, against the size of what it
no longer holds: every LSH band's keys of the whole source at once.

It writes signature files as shard jobs do (4 shards; random 64-bit keys, a tenth of the documents repeating an
earlier text, a twentieth, or the `--colliding` fraction, sharing one key in each band) and prints per source size:
the peak traced memory (`tracemalloc`, which numpy reports to), bytes a document, and the ratio to the bands' keys
alone; and the wall time per million documents, with its ratio to the smallest source's, which stays near 1 when
the job's reads grow with the documents and grows with the passes when each pass rereads the shards.
`--part-documents` lowers the documents a pass sorts (2M in the workflow) so that many passes fit on one machine.

Run: python benchmarks/dedup_memory.py [--documents 1000000 4000000] [--part-documents 250000]
     [--colliding 0.3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from annealscope.curate import dedup
from annealscope.curate.dedup import band_parameters, find_duplicates

NEAR = {"threshold": 0.8, "num_perm": 128, "shingle": 5}
SHARDS = 4


def write_signatures(directory: Path, documents: int, bands: int, colliding: float = 0.05,
                     seed: int = 7) -> list[Path]:
    rng, files = np.random.default_rng(seed), []
    size = documents // SHARDS
    for index in range(SHARDS):
        exact = rng.integers(0, 1 << 63, size, dtype=np.uint64)
        exact[rng.random(size) < 0.1] = exact[:1000][rng.integers(0, 1000)]
        arrays = {"exact": exact, "tokens": rng.integers(1, 500, size)}
        for band in range(bands):
            keys = rng.integers(0, 1 << 63, size, dtype=np.uint64)
            keys[rng.random(size) < colliding] = keys[rng.integers(0, 100)]
            arrays[f"band{band}"] = keys
        files.append(directory / f"shard{index}.npz")
        np.savez(files[-1], **arrays)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=float, nargs="+", default=[1e6, 4e6])
    parser.add_argument("--part-documents", type=float, default=dedup.PART_DOCUMENTS)
    parser.add_argument("--colliding", type=float, default=0.05,
                        help="the fraction of documents that share each band's key with others")
    args = parser.parse_args()
    dedup.PART_DOCUMENTS = int(args.part_documents)
    bands, first = band_parameters(NEAR)[0], None
    for documents in map(int, args.documents):
        with tempfile.TemporaryDirectory() as work:
            files = write_signatures(Path(work), documents, bands, args.colliding)
            tracemalloc.start()
            started = time.perf_counter()
            _, records = find_duplicates(files, NEAR, scratch=work)
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        rate = seconds / documents * 1e6
        first = first or rate
        passes = -(-documents // dedup.PART_DOCUMENTS)
        print(f"{documents:>11,} documents  {passes:>3} passes  peak {peak / 1e6:8.1f} MB  "
              f"{peak / documents:6.1f} bytes a document (ratio to the {bands} bands' keys, {8 * bands} bytes: "
              f"{peak / (8 * bands * documents):.2f})  {seconds:6.1f} s, {rate:5.2f} s a million documents "
              f"(ratio to the first size {rate / first:.2f})  kept {records[-1]['documents_out']:,}", flush=True)


if __name__ == "__main__":
    main()
