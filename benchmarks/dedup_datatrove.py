"""Near-deduplication in stages: annealscope's `Signer` + `find_duplicates` against datatrove's four MinHash
stages, on the same pool and one core each.

The pool is curate_scale's (recombined Wikipedia sentences, a tenth exact and a twentieth near copies), in
files of `--file-mb`, one shard (datatrove: one task) each. Both use 5-gram shingles (annealscope of token ids,
datatrove of words) and 14 bands of 8 hashes (datatrove's defaults; annealscope's `near_dedup` picks its bands
from a threshold, so it is given these). annealscope: exact keys, then signatures per shard (the `curate_shard`
part, from the ids that job encodes anyway: a BPE tokenizer of 8,192 ids trained on the first file, its
encoding timed apart), then the `dedup` job.
datatrove: stage 1 signatures per task, stage 2 buckets, stage 3 clusters, stage 4 the filter per task, run by
its LocalPipelineExecutor with one worker. It prints seconds per stage, MB/s, and how far the two removals
agree (annealscope keeps a document unless it shares a band with an earlier *kept* one; datatrove removes
all but one document of each connected cluster of pairs, so it may remove more).

Run: pip install orjson (datatrove's JSONL reader needs it; not an annealscope dependency), then
     python benchmarks/dedup_datatrove.py [--mb 100] [--file-mb 25]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from curate_scale import write_pool

from annealscope.base.build import train_tokenizer
from annealscope.curate.dedup import Signer, find_duplicates
from annealscope.curate.heuristics import RegexWords

BANDS, ROWS, SHINGLE = 14, 8, 5


def ours(files: list[Path], work: Path) -> tuple[dict[str, float], set[tuple[int, int]]]:
    signer_settings = {"threshold": 0.8, "num_perm": BANDS * ROWS, "shingle": SHINGLE}
    seconds = {"signatures": 0.0}
    paths = []
    texts = [[json.loads(line)["text"] for line in path.open(encoding="utf-8")] for path in files]
    backend = train_tokenizer(texts[0], 8192).backend_tokenizer
    started = time.perf_counter()
    ids = [[encoding.ids for encoding in backend.encode_batch_fast(part, add_special_tokens=False)] for part in texts]
    encoding_seconds = time.perf_counter() - started
    for index, (part, part_ids) in enumerate(zip(texts, ids, strict=True)):
        documents = [{"text": text, "tokens": len(values), "ids": np.asarray(values, np.uint16)}
                     for text, values in zip(part, part_ids, strict=True)]
        started = time.perf_counter()
        signer = Signer(signer_settings)
        signer.bands, signer.rows = BANDS, ROWS  # datatrove's layout, instead of the threshold's
        for start in range(0, len(documents), 1024):
            signer.add(documents[start:start + 1024])
        paths.append(work / f"ours{index}.npz")
        signer.save(paths[-1])
        seconds["signatures"] += time.perf_counter() - started
    started = time.perf_counter()
    drop, _ = find_duplicates(paths, signer_settings)
    seconds["dedup job"] = time.perf_counter() - started
    print(f"(annealscope's shard jobs encode the documents anyway: {encoding_seconds:.1f} s here, not counted)")
    return seconds, {(shard, int(position)) for shard, positions in enumerate(drop) for position in positions}


def datatrove(files: list[Path], work: Path) -> tuple[dict[str, float], set[tuple[int, int]]]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    # sha1, as datasketch hashes annealscope's shingles (datatrove's xxhash path needs xxhash<4, which hashes str)
    config = MinhashConfig(n_grams=SHINGLE, num_buckets=BANDS, hashes_per_bucket=ROWS,
                           hash_config=HashConfig(precision=64, hash_fc="sha1"))

    def reader():
        return JsonlReader(str(files[0].parent), glob_pattern="*.jsonl", id_key="id")

    stages = {
        "signatures": ([reader(), MinhashDedupSignature(str(work / "sigs"), config=config, language=RegexWords())],
                       len(files)),
        "buckets": ([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=config)], BANDS),
        "clusters": ([MinhashDedupCluster(str(work / "buckets"), str(work / "remove"), config=config)], 1),
        "filter": ([reader(), MinhashDedupFilter(str(work / "remove")), JsonlWriter(str(work / "kept"))],
                   len(files)),
    }
    seconds = {}
    for name, (pipeline, tasks) in stages.items():
        started = time.perf_counter()
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name),
                              skip_completed=False).run()
        seconds[name] = time.perf_counter() - started
    kept = {json.loads(line)["id"] for path in (work / "kept").glob("*.jsonl*")
            for line in _lines(path)}
    everything = {json.loads(line)["id"] for path in files for line in path.open(encoding="utf-8")}
    return seconds, {_position(identifier) for identifier in everything - kept}


def _lines(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        yield from handle


def _position(identifier: str) -> tuple[int, int]:
    shard, position = identifier.split("/")
    return int(shard), int(position)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--file-mb", type=float, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        write_pool(work / "raw", int(args.mb * 1e6), int(args.file_mb * 1e6))
        (work / "pool").mkdir()
        files = []
        for shard, path in enumerate(sorted((work / "raw").glob("*.jsonl"))):  # ids say shard and position
            files.append(work / "pool" / path.name)
            with files[-1].open("w", encoding="utf-8") as out:
                for position, line in enumerate(path.open(encoding="utf-8")):
                    out.write(json.dumps({"id": f"{shard}/{position}", "text": json.loads(line)["text"]}) + "\n")
        total_mb = sum(path.stat().st_size for path in files) / 1e6
        documents = sum(1 for path in files for _ in path.open(encoding="utf-8"))
        print(f"{documents:,} documents, {total_mb:.0f} MB in {len(files)} files; {BANDS} bands x {ROWS} hashes, "
              f"{SHINGLE}-gram shingles; one core")
        results = {"annealscope": ours(files, work), "datatrove": datatrove(files, work / "datatrove")}
        for name, (seconds, removed) in results.items():
            total = sum(value for stage, value in seconds.items() if stage != "filter")
            stages = ", ".join(f"{stage} {value:.1f} s" for stage, value in seconds.items())
            print(f"{name:12s} {total:7.1f} s  {total_mb / total:5.2f} MB/s  removed {len(removed):,}  ({stages})")
        mine, theirs = results["annealscope"][1], results["datatrove"][1]
        both = len(mine & theirs)
        print(f"removed by both {both:,}; only annealscope {len(mine - theirs):,}; only datatrove "
              f"{len(theirs - mine):,}; Jaccard {both / max(len(mine | theirs), 1):.3f}")
        decide = {name: sum(value for stage, value in seconds.items() if stage != "filter")
                  for name, (seconds, _) in results.items()}
        print(f"ratio datatrove / annealscope time to decide (signatures to the drop list; datatrove's filter "
              f"stage, which rereads and rewrites the documents, left out): "
              f"{decide['datatrove'] / decide['annealscope']:.2f}")


if __name__ == "__main__":
    main()
