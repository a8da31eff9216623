"""Curation at scale, through the workflow: peak memory per job and throughput as the pool grows.

For each pool size it writes a pool of JSONL files on disk (sentences of real Wikipedia summaries recombined,
with a tenth exact and a twentieth near duplicates), then curates it as a filtered source (datatrove's Gopher
quality rules, a fastText classifier trained once and scoring every document, at threshold 0 so that every
document goes on to exact and near dedup across shards, decontamination and tokens) with
`snakemake --cores N`, every shard its own job. It prints per size: the peak resident memory of the largest
curation job (Snakemake's benchmark files), wall time, throughput in MB/s per core, and the ratio to a
baseline measured in the same run: reading and tokenizing the pool's first files (at most 4, 268 MB) with the
raw tokenizer (its fastest batch call, `encode_batch_fast`) in as many single-threaded processes at once as the
curation runs jobs, so both keep every core busy, just before and just after the curation (their mean; the
machine's speed drifts); and where the time goes, as the median wall time of each curation rule's jobs. The
1 GB pool (else the first of at least two shards) is curated again with one job at a time, for the speed-up
of parallel shard jobs.

Goals (issue 17): peak memory flat in the pool size and at most 2 GB a job; throughput at least 0.5x the
baseline per core; 2 parallel jobs in at most 0.6x the time of 1.

Run: python benchmarks/curate_scale.py [--sizes 0.25 1 4] [--shard-mb 64] [--cores 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "pool"
BASELINE_FILES = 4  # the baseline's speed does not depend on the pool's size: it reads at most 4 shards' files


def sentences() -> list[str]:
    from annealscope.core.corpora import read_corpus

    found = []
    for document in read_corpus("wikipedia:general"):
        found += [sentence for sentence in re.split(r"(?<=[.!?])\s+", document.text) if len(sentence) > 20]
    return found


def write_pool(directory: Path, size_bytes: int, file_bytes: int, seed: int = 0) -> int:
    """JSONL files of at most `file_bytes` (one a shard) of documents of 3-15 recombined sentences, with exact and
    near duplicates; returns the bytes written."""
    rng = random.Random(seed)
    pool = sentences()
    directory.mkdir(parents=True)
    written, index, recent = 0, 0, []
    while written < size_bytes:
        path = directory / f"part-{index:05d}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            while written + handle.tell() < size_bytes:
                roll = rng.random()
                if recent and roll < 0.10:
                    text = rng.choice(recent)
                elif recent and roll < 0.15:
                    words = rng.choice(recent).split(" ")
                    words[rng.randrange(len(words))] = "changed"
                    text = " ".join(words)
                else:
                    text = " ".join(rng.choices(pool, k=rng.randint(3, 15)))
                    recent = [*recent, text][-1000:]
                line = json.dumps({"text": text}) + "\n"
                if handle.tell() + len(line) > file_bytes:  # ASCII: a character a byte
                    break
                handle.write(line)
            written += handle.tell()
        index += 1
    return written


def config(run: str, pool_dir: Path, cache: Path, shard_bytes: int) -> dict:
    return {
        "run": run, "cache_dir": str(cache),
        "base_model": {"build": {"corpus": ["wikipedia:general"], "vocab_size": 8192, "hidden_size": 64,
                                 "intermediate_size": 160, "num_layers": 2, "num_heads": 2, "pretrain_tokens": 10000}},
        "replay": {"corpus": ["wikipedia:general"], "fraction": 0.0},
        "sources": {SOURCE: {"curation": "filter", "pool": [str(pool_dir)],
                             "heuristics": {"gopher_quality": {"min_doc_words": 20}},
                             "classifier": {"backend": "fasttext", "seeds": "wikipedia:seed",
                                            "positive_labels": ["Mathematics"]},
                             "threshold": 0.0, "sharding": {"bytes": shard_bytes}}},
        "grid": {"budgets": [4096], "seeds": [0]},
        "eval": {"tasks": ["arith_mc", "mmlu_math"], "heldout": {}},
    }


def snakemake(config_path: Path, targets: list[str], cores: int) -> float:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", str(config_path),
                          "--quiet", "all", "--", *targets], cwd=ROOT, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"snakemake failed:\n{run.stderr[-5000:]}")
    return time.perf_counter() - started


CURATION_RULES = ("train_classifier", "curate", "dedup", "finish", "manifest")


def curation_jobs(run_dir: Path) -> list[tuple[str, str, dict]]:
    """(rule, job, benchmark row) of every curation job, from Snakemake's benchmark files."""
    jobs = []
    for path in sorted((run_dir / "logs").glob("*.benchmark.tsv")):
        job = path.name.removesuffix(".benchmark.tsv")
        rule = next((rule for rule in CURATION_RULES if job.startswith(f"{rule}_")), None)
        if rule is not None:
            with open(path) as handle:
                jobs.append((rule, job, next(csv.DictReader(handle, delimiter="\t"))))
    return jobs


def peak_rss_mb(run_dir: Path) -> tuple[float, str]:
    """The largest max_rss (MB) among the curation jobs, and which job it was."""
    return max((float(row["max_rss"]), job) for _, job, row in curation_jobs(run_dir))


def seconds_by_rule(run_dir: Path) -> str:
    """Where the time goes: per rule, its jobs' count and their median wall seconds (a pool's last shard is
    smaller, so the median, not the mean)."""
    jobs, parts = curation_jobs(run_dir), []
    for rule in CURATION_RULES:
        seconds = [float(row["s"]) for name, _, row in jobs if name == rule]
        if seconds:
            typical = statistics.median_high(seconds)
            parts.append(f"{rule} {len(seconds)} x {typical:.1f} s" if len(seconds) > 1 else f"{rule} {typical:.1f} s")
    return "; ".join(parts)


def baseline_mb_per_s(pool_dir: Path, tokenizer_dir: Path, processes: int) -> float:
    """MB per second of a core's time, reading and tokenizing the pool's first BASELINE_FILES files with the raw
    fast tokenizer (no annealscope code), in `processes` single-threaded processes at once, the files dealt out
    among them: with as many busy cores as the curation keeps busy. Each process times itself, so a process
    left with less to do does not count as idle."""
    files = sorted(pool_dir.glob("*.jsonl"))[:BASELINE_FILES]
    script = f"""
import json, os, sys, time
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer
tokenizer = Tokenizer.from_file({str(tokenizer_dir / "tokenizer.json")!r})
started, tokens = time.perf_counter(), 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    for start in range(0, len(texts), 1024):
        batch = tokenizer.encode_batch_fast(texts[start:start + 1024], add_special_tokens=False)
        tokens += sum(len(encoding.ids) for encoding in batch)
print(time.perf_counter() - started)
"""
    runs = [subprocess.Popen([sys.executable, "-c", script, *map(str, files[rank::processes])],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "true"})
            for rank in range(processes) if files[rank::processes]]
    outputs = [run.communicate()[0] for run in runs]
    if any(run.returncode for run in runs):
        raise SystemExit("the baseline failed")
    seconds = sum(float(output.strip().splitlines()[-1]) for output in outputs)
    return sum(path.stat().st_size for path in files) / 1e6 / seconds


def measure(size_gb: float, shard_mb: int, cores: int, work: Path) -> dict:
    import yaml

    run = f"curate-scale-{size_gb:g}gb"
    run_dir = ROOT / "results" / run
    shutil.rmtree(run_dir, ignore_errors=True)
    pool_dir = work / run / "pool"
    written = write_pool(pool_dir, int(size_gb * (1 << 30)), shard_mb << 20)
    config_path = work / run / "config.yaml"
    config_path.write_text(yaml.safe_dump(config(run, pool_dir, work / "cache", shard_mb << 20)))
    snakemake(config_path, [f"results/{run}/base/init", f"results/{run}/tasks"], cores)  # not timed: setup
    tokenizer = run_dir / "base" / "init"
    before = baseline_mb_per_s(pool_dir, tokenizer, cores)
    wall = snakemake(config_path, [f"results/{run}/curate/{SOURCE}/manifest.json"], cores)
    after = baseline_mb_per_s(pool_dir, tokenizer, cores)
    manifest = json.loads((run_dir / "curate" / SOURCE / "manifest.json").read_text())
    rss, job = peak_rss_mb(run_dir)
    result = {"size_gb": size_gb, "pool_mb": written / 1e6, "shards": len(manifest["shards"]), "wall_s": wall,
              "peak_rss_mb": rss, "peak_job": job, "mb_per_s_per_core": written / 1e6 / wall / cores,
              "baseline_mb_per_s": (before + after) / 2, "baseline_range": (before, after),
              "baseline_one_process": baseline_mb_per_s(pool_dir, tokenizer, 1), "documents_out": manifest["documents"],
              "duplicate_rate": manifest["duplicate_rate"], "by_rule": seconds_by_rule(run_dir),
              "config": config_path, "run_dir": run_dir}
    result["ratio_to_baseline"] = result["mb_per_s_per_core"] / result["baseline_mb_per_s"]
    return result


def baseline_detail(row: dict) -> str:
    """How the baseline's figure was taken: before and after the curation, and on one core with the rest idle."""
    before, after = row["baseline_range"]
    return f"{before:.2f} before and {after:.2f} after the curation; {row['baseline_one_process']:.2f} with one process"


def rerun_serially(result: dict) -> float:
    """The same curation again with one job at a time (outputs removed, the base and tasks kept)."""
    for directory in ("curate", "tokens"):
        shutil.rmtree(result["run_dir"] / directory, ignore_errors=True)
    return snakemake(result["config"], [f"results/{result['run_dir'].name}/curate/{SOURCE}/manifest.json"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1.0, 4.0], help="pool sizes in GB")
    parser.add_argument("--shard-mb", type=int, default=64, help="sharding.bytes in MB")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the pools and results")
    args = parser.parse_args()
    import torch

    print(f"CPU: {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cores; shards of {args.shard_mb} MB; "
          f"{args.cores} parallel jobs")
    work = Path(tempfile.mkdtemp(prefix="curate_scale."))
    results = []
    serial_size = 1.0 if 1.0 in args.sizes else None
    try:
        for size in args.sizes:
            row = measure(size, args.shard_mb, args.cores, work)
            results.append(row)
            print(f"{row['pool_mb']:>9,.0f} MB  {row['shards']:>3} shards  peak {row['peak_rss_mb']:>6,.0f} MB "
                  f"({row['peak_job']})  wall {row['wall_s']:>7.1f} s  {row['mb_per_s_per_core']:.2f} MB/s/core  "
                  f"baseline {row['baseline_mb_per_s']:.2f} MB/s ({baseline_detail(row)})  "
                  f"ratio {row['ratio_to_baseline']:.2f}  "
                  f"kept {row['documents_out']:,} documents, {row['duplicate_rate']:.1%} duplicates\n"
                  f"    median job wall time by rule: {row['by_rule']}", flush=True)
            if size == serial_size or (serial_size is None and row["shards"] >= 2):
                serial_size, serial = size, rerun_serially(row)
                print(f"{row['pool_mb']:,.0f} MB pool: 1 job at a time {serial:.1f} s, {args.cores} parallel jobs "
                      f"{row['wall_s']:.1f} s: ratio {row['wall_s'] / serial:.2f} (goal <= 0.6)", flush=True)
            if not args.keep:
                shutil.rmtree(row["config"].parent, ignore_errors=True)
                shutil.rmtree(row["run_dir"], ignore_errors=True)
        peaks = [row["peak_rss_mb"] for row in results]
        print(f"peak memory of the largest job: {min(peaks):,.0f}-{max(peaks):,.0f} MB over "
              f"{results[0]['pool_mb']:,.0f}-{results[-1]['pool_mb']:,.0f} MB pools "
              f"(ratio {max(peaks) / min(peaks):.2f}; goal flat and <= 2,048 MB)")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
            for row in results:
                shutil.rmtree(row["run_dir"], ignore_errors=True)


if __name__ == "__main__":
    main()
