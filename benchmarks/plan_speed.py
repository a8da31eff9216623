"""Planning speed: `snakemake -n` of a large grid through the workflow against a bare Snakefile with the same
rules' wildcards and job count, measured back to back in this run (goal: ratio <= 1.5 for both schedules).

The grid: 50 `given` sources x 10 budgets x 2 seeds on a pretrained 7B base (a hub id, never fetched by a dry
run), replay on, local tasks. The bare Snakefile declares the same rule graph with empty shell commands, so
the ratio is what annealscope's parse-time work (validation, input functions, params, the plan table) costs
on top of Snakemake's own DAG building.

    python benchmarks/plan_speed.py [--sources 50 --budgets 10 --seeds 2 --rounds 3]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

BARE = '''
SOURCES = {sources}
BUDGETS = {budgets}
SEEDS = {seeds}
BRANCHED = {branched}

wildcard_constraints:
    source="[A-Za-z0-9_-]+",
    budget="[0-9]+",
    seed="[0-9]+",

rule all:
    input: "results/report.html"

rule fetch_model:
    output: directory("cache/models/base")
    shell: ""

rule prepare_tasks:
    output: directory("results/tasks")
    shell: ""

rule curate:
    input: "cache/models/base", "results/tasks"
    output: "results/curate/{{source}}/documents.jsonl", "results/curate/{{source}}/manifest.json"
    shell: ""

ruleorder: corpus_documents > curate

rule corpus_documents:
    output: "results/curate/replay/documents.jsonl"
    shell: ""

rule tokenize:
    input: "results/curate/{{source}}/documents.jsonl", "cache/models/base"
    output: "results/tokens/{{source}}.bin", "results/tokens/{{source}}.json"
    shell: ""

MARKERS = expand("results/stable/{{{{source}}}}/seed{{{{seed}}}}/branch{{budget}}.json", budget=BUDGETS)

if BRANCHED:
    rule stable_start:
        input: "cache/models/base", "results/tokens/{{source}}.bin", "results/tokens/replay.bin"
        output: "results/stable/{{source}}/seed{{seed}}/start.json"
        shell: ""

    rule stable:
        input: "results/stable/{{source}}/seed{{seed}}/start.json", "cache/models/base",
               "results/tokens/{{source}}.bin", "results/tokens/replay.bin"
        output: "results/stable/{{source}}/seed{{seed}}/branches.json", MARKERS
        shell: ""

    rule cooldown:
        input: "results/stable/{{source}}/seed{{seed}}/start.json",
               ancient("results/stable/{{source}}/seed{{seed}}/branch{{budget}}.json"), "cache/models/base",
               "results/tokens/{{source}}.bin", "results/tokens/replay.bin"
        output: directory("results/anneal/{{source}}/{{budget}}/seed{{seed}}/model"),
                "results/anneal/{{source}}/{{budget}}/seed{{seed}}/summary.json"
        shell: ""
else:
    rule anneal:
        input: "cache/models/base", "results/tokens/{{source}}.bin", "results/tokens/replay.bin"
        output: directory("results/anneal/{{source}}/{{budget}}/seed{{seed}}/model"),
                "results/anneal/{{source}}/{{budget}}/seed{{seed}}/summary.json"
        shell: ""

def checkpoint(wildcards):
    if wildcards.source == "base":
        return "cache/models/base"
    return f"results/anneal/{{wildcards.source}}/{{wildcards.budget}}/seed{{wildcards.seed}}/model"

rule evaluate:
    input: checkpoint, "results/tasks"
    output: "results/eval/{{source}}/{{budget}}/seed{{seed}}/scores.json"
    shell: ""

CELLS = expand("results/eval/{{source}}/{{budget}}/seed{{seed}}/scores.json", source=SOURCES, budget=BUDGETS,
               seed=SEEDS)

rule collect:
    input: ["results/eval/base/0/seed0/scores.json"] + CELLS
    output: "results/metrics.csv"
    shell: ""

rule fit:
    input: "results/metrics.csv"
    output: "results/fit/fits.csv"
    shell: ""

rule report:
    input: "results/fit/fits.csv"
    output: "results/report.html"
    shell: ""
'''


def grid_config(sources: int, budgets: int, seeds: int, schedule: str, corpus: Path) -> dict:
    return {
        "run": "plan-speed",
        "base_model": {"pretrained": "allenai/OLMo-2-1124-7B", "parameters": 7_300_000_000},
        "replay": {"corpus": [str(corpus)], "fraction": 0.5},
        "sources": {f"source_{index:02d}": {"curation": "given", "corpus": [str(corpus)]} for index in range(sources)},
        "grid": {"budgets": [2 ** index * 100_000_000 for index in range(budgets)], "seeds": list(range(seeds)),
                 "schedule": schedule},
        "anneal": {"seq_len": 4096, "global_batch_tokens": 4_194_304, "ranks": 8, "zero_stage": 3},
        "resources": {"anneal": {"gpus": 8, "mem_mb": 512_000, "cpus": 64, "runtime": 1440}},
        "eval": {"tasks": ["arith_mc", "mmlu_math"]},
    }


def dry_run(directory: Path, snakefile: Path, configfile: Path | str | None, *extra: str) -> tuple[float, int]:
    """Seconds of one `snakemake -n` (with `extra` arguments) and the number of jobs it planned."""
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--snakefile", str(snakefile),
               "--directory", str(directory), "--quiet", "rules", *extra]
    if configfile:
        command += ["--configfile", str(configfile)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"dry run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.MULTILINE)
    return seconds, int(total[1]) if total else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        corpus = scratch / "corpus.jsonl"
        corpus.write_text('{"text": "a document"}\n')
        print(f"grid: {args.sources} given sources x {args.budgets} budgets x {args.seeds} seeds, 7B base; "
              f"best of {args.rounds} rounds, alternating")
        for schedule in ("independent", "branched-wsd"):
            config = grid_config(args.sources, args.budgets, args.seeds, schedule, corpus)
            configfile = scratch / f"{schedule}.yaml"
            configfile.write_text(yaml.safe_dump(config))
            bare = scratch / f"bare-{schedule}.smk"
            bare.write_text(BARE.format(sources=list(config["sources"]), budgets=config["grid"]["budgets"],
                                        seeds=config["grid"]["seeds"], branched=schedule != "independent"))
            ours, baseline = [], []
            for _ in range(args.rounds):
                (scratch / schedule).mkdir(exist_ok=True)
                ours.append(dry_run(scratch / schedule, ROOT / "Snakefile", configfile))
                (scratch / f"bare-{schedule}").mkdir(exist_ok=True)
                baseline.append(dry_run(scratch / f"bare-{schedule}", bare, None))
            (seconds, jobs), (bare_seconds, bare_jobs) = min(ours), min(baseline)
            print(f"{schedule:>12}: annealscope {seconds:6.1f} s for {jobs:,} jobs; bare Snakefile "
                  f"{bare_seconds:6.1f} s for {bare_jobs:,} jobs; ratio {seconds / bare_seconds:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
