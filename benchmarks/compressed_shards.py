"""A large compressed JSON-lines file, a Parquet file of one row group, or a large text file, curated in parallel
shard jobs, through the workflow.

It writes one pool file of recombined Wikipedia sentences (`curate_scale.write_pool`), compresses a copy of it in
one stream (one Zstandard frame, or one gzip member), writes its records as one Parquet row group (`--format
parquet`, zstd pages) or as a text file of documents separated by blank lines (`--format txt`), and curates it
as `curate_scale` does, with `snakemake --cores N`, three ways:

- the plain file, split at byte offsets into as many shard jobs as the compressed one (the baseline);
- the compressed file, split into shard jobs of about `--shard-mb` on disk, each decompressing the file (or
  decoding the row group) up to its range (what the workflow plans now);
- the compressed file in one shard job (what it planned before: such a file was read whole).

It prints each run's wall time, its curation jobs' summed seconds (Snakemake's benchmark files) and its
documents and tokens kept (the three must keep the same), the ratios of the compressed split to the baseline
and to the single job, and how fast a job skips what comes before its range: the time `read_piece` takes for
a piece holding only the file's last block (or row), in MB of text skipped a second (a text file's job seeks
to its range instead).

Run: python benchmarks/compressed_shards.py [--pool-mb 268] [--shard-mb 12] [--format zst|gz|parquet|txt]
[--cores 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from curate_scale import ROOT, SOURCE, config, curation_jobs, snakemake, write_pool


def compress(plain: Path, form: str) -> Path:
    """`plain` compressed in one stream beside it, or its records as one Parquet row group, or as a text file."""
    from annealscope.core.io import read_jsonl

    if form == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as parquet

        target = plain.with_suffix(".parquet")
        table = pa.table({"text": [record["text"] for record in read_jsonl(plain)]})
        parquet.write_table(table, target, row_group_size=len(table), compression="zstd")
        return target
    if form == "txt":  # `plain` rewritten to hold the text file's documents: a text with a blank line is two
        from annealscope.core.corpora import read_corpus
        from annealscope.core.io import write_jsonl

        target = plain.with_suffix(".txt")
        with open(target, "w", encoding="utf-8") as handle:
            handle.writelines(record["text"] + "\n\n" for record in read_jsonl(plain))
        write_jsonl(plain, ({"text": document.text} for document in read_corpus(str(target))))
        return target
    target = plain.with_name(plain.name + (".zst" if form == "zst" else ".gz"))
    with open(plain, "rb") as source, open(target, "wb") as sink:
        if form == "zst":
            import zstandard

            zstandard.ZstdCompressor(level=3).copy_stream(source, sink)
        else:
            with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6) as stream:
                shutil.copyfileobj(source, stream, 1 << 20)
    return target


def skip_mb_per_s(packed: Path, text_bytes: int) -> float:
    """MB of the file's text a second that a shard job decompresses (or decodes) and skips before its range:
    the best of three reads of a piece that holds only the file's last block, or last row."""
    from annealscope.core.compressed import READ
    from annealscope.core.corpora import parquet_row_groups, read_piece

    size = packed.stat().st_size
    if packed.suffix == ".parquet":
        rows = parquet_row_groups(packed)[0][1]
        piece = {"reference": str(packed), "path": str(packed), "row_groups": [0, 1], "rows": [rows - 1, rows]}
    else:
        piece = {"reference": str(packed), "path": str(packed), "start": (size - 1) // READ * READ, "end": size}
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in read_piece(piece):
            pass
        best = min(best, time.perf_counter() - started)
    return text_bytes / 1e6 / best


def curate(name: str, pool: Path, shard_bytes: int, cores: int, work: Path) -> dict:
    """Curate `pool` as run `name`, its setup (base model, tasks) untimed; wall time, jobs' seconds, output."""
    import yaml

    run_dir = ROOT / "results" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    config_path = work / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config(name, pool, work / "cache", shard_bytes)))
    snakemake(config_path, [f"results/{name}/base/init", f"results/{name}/tasks"], cores)
    wall = snakemake(config_path, [f"results/{name}/curate/{SOURCE}/manifest.json"], cores)
    manifest = json.loads((run_dir / "curate" / SOURCE / "manifest.json").read_text())
    jobs = curation_jobs(run_dir)
    curate_seconds = sum(float(row["s"]) for rule, _, row in jobs if rule == "curate")
    result = {"wall_s": wall, "shards": len(manifest["shards"]), "curate_job_s": curate_seconds,
              "documents": manifest["documents"], "tokens": manifest["tokens"]}
    shutil.rmtree(run_dir)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool-mb", type=int, default=268)
    parser.add_argument("--shard-mb", type=int, default=12, help="compressed bytes a shard job of the split file")
    parser.add_argument("--format", choices=("zst", "gz", "parquet", "txt"), default="zst")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="compressed-shards-") as scratch:
        work = Path(scratch)
        written = write_pool(work / "pool", args.pool_mb << 20, args.pool_mb << 21)
        plain = next((work / "pool").glob("*.jsonl"))
        packed = compress(plain, args.format)
        plain_bytes = plain.stat().st_size
        ratio = plain_bytes / packed.stat().st_size
        skipping = skip_mb_per_s(packed, plain_bytes) if args.format != "txt" else None
        split = max(2, -(-packed.stat().st_size // (args.shard_mb << 20)))
        plain.rename(work / "plain.jsonl")
        (work / "plain").mkdir()
        (work / "plain.jsonl").rename(work / "plain" / "pool.jsonl")
        runs = {
            "plain, split": curate("compressed-shards-plain", work / "plain", -(-plain_bytes // split), args.cores,
                                   work),
            f"{args.format}, split": curate("compressed-shards-split", packed, -(-packed.stat().st_size // split),
                                            args.cores, work),
            f"{args.format}, one job": curate("compressed-shards-whole", packed, packed.stat().st_size, args.cores,
                                              work),
        }
    print(f"pool: {written / 1e6:,.0f} MB of JSON lines in one file, {args.format} {ratio:.2f}x smaller; "
          f"--cores {args.cores}")  # a text file is smaller by the JSON markup it lacks
    for name, run in runs.items():
        print(f"{name:20s} {run['shards']:3d} shard jobs  {run['wall_s']:7.1f} s wall  curate jobs "
              f"{run['curate_job_s']:7.1f} s  kept {run['documents']:,} documents, {run['tokens']:,} tokens")
    baseline, split_run, whole = runs.values()
    same = len({(run["documents"], run["tokens"]) for run in runs.values()}) == 1
    print(f"{args.format} split / plain split: {split_run['wall_s'] / baseline['wall_s']:.2f}x wall, "
          f"{split_run['curate_job_s'] / baseline['curate_job_s']:.2f}x curate-job seconds; "
          f"{args.format} split / one job: {split_run['wall_s'] / whole['wall_s']:.2f}x wall; "
          f"same documents and tokens kept: {same}")
    if skipping is not None:
        print(f"a job skips what comes before its range at {skipping:.0f} MB of text a second")


if __name__ == "__main__":
    main()
