"""Where a run's time went, per stage: Snakemake's benchmark files of a results folder, summed per rule.

Each job writes `logs/<rule>_<wildcards>.benchmark.tsv` (its wall seconds and peak memory); this groups them
by the first word of the name (the rule family: pretrain, curate, anneal, evaluate, ...) and prints the jobs,
their seconds in all, the shortest and the longest, and the largest peak resident memory. Jobs overlap when
Snakemake runs two at once, so the sum can exceed the wall time. A local run's `evaluate` jobs run in threads of
the main Snakemake process (profiles/default), whose benchmark measures that process with every job running
beside it: their peak memory is not the job's own, and the table says so. Last, the anneal jobs' seconds
around their training: their job time less the training's own (`wall_seconds` of each cell's summary.json),
which is the start-up, export and exit that every anneal pays. With `--log` (the run's Snakemake log, in
.snakemake/log/), also when each rule's jobs ran: the first start and the last end, seconds after the run's
first job started.

Run: python benchmarks/stage_times.py results/demo [--log .snakemake/log/<run>.snakemake.log]
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime
from pathlib import Path

import pandas as pd


def stage_times(run_dir: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((run_dir / "logs").glob("*.benchmark.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"stage": path.name.split("_")[0], "seconds": float(measured["s"]),
                     "max_rss_mb": float(measured["max_rss"]) if measured["max_rss"] != "-" else float("nan")})
    if not rows:
        raise SystemExit(f"{run_dir}/logs holds no *.benchmark.tsv: run the workflow first")
    table = pd.DataFrame(rows).groupby("stage").agg(
        jobs=("seconds", "size"), seconds=("seconds", "sum"), shortest=("seconds", "min"),
        longest=("seconds", "max"), peak_rss_mb=("max_rss_mb", "max"))
    return table.sort_values("seconds", ascending=False)


def anneal_summaries(run_dir: Path) -> list[dict]:
    """Every anneal cell's summary.json (`anneal/<source>/<budget>/seed<seed>/`), in path order."""
    return [json.loads(path.read_text()) for path in sorted(run_dir.glob("anneal/*/*/seed*/summary.json"))]


def job_intervals(log: str) -> dict[str, list[tuple[datetime, datetime]]]:
    """Rule -> (start, end) of every finished job of a run, from Snakemake's log (to the second)."""
    started, intervals, stamp, rule = {}, {}, None, None
    for line in log.splitlines():
        if match := re.fullmatch(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line):
            stamp, rule = datetime.strptime(match[1], "%a %b %d %H:%M:%S %Y"), None
        elif match := re.fullmatch(r"(?:local)?rule (\w+):", line):
            rule = match[1]
        elif (match := re.fullmatch(r"\s+jobid: (\d+)", line)) and rule:
            started[match[1]] = rule, stamp
        elif (match := re.match(r"Finished jobid: (\d+)", line)) and match[1] in started:
            rule, start = started[match[1]]
            intervals.setdefault(rule, []).append((start, stamp))
    return intervals


def stage_spans(log: str) -> pd.DataFrame:
    """Per rule: its jobs, the first one's start and the last one's end, in seconds after the first job."""
    intervals = job_intervals(log)
    if not intervals:
        raise SystemExit("the log names no finished job: pass a run's .snakemake/log/*.snakemake.log")
    origin = min(start for jobs in intervals.values() for start, _ in jobs)
    rows = [{"rule": rule, "jobs": len(jobs), "first_start_s": (min(jobs)[0] - origin).total_seconds(),
             "last_end_s": (max(end for _, end in jobs) - origin).total_seconds()} for rule, jobs in intervals.items()]
    return pd.DataFrame(rows).set_index("rule").sort_values("first_start_s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a results folder, e.g. results/demo")
    parser.add_argument("--log", type=Path, help="the run's Snakemake log (.snakemake/log/*.snakemake.log)")
    arguments = parser.parse_args()
    run_dir = arguments.run_dir
    table = stage_times(run_dir)
    print(table.to_string(float_format=lambda value: f"{value:.1f}"))
    if "evaluate" in table.index:
        print("evaluate's peak_rss_mb: in a local run, the main Snakemake process and every job beside it")
    print(f"{int(table['jobs'].sum())} jobs, {table['seconds'].sum():.0f} s of job time in all")
    training = [summary["wall_seconds"] for summary in anneal_summaries(run_dir)]
    if "anneal" in table.index and len(training) == table.loc["anneal", "jobs"]:
        around = table.loc["anneal", "seconds"] - sum(training)
        print(f"anneal: {sum(training):.1f} s of training (summary.json), {around:.1f} s around it, "
              f"{around / len(training):.1f} s a job")
    if arguments.log:
        print(stage_spans(arguments.log.read_text()).to_string(float_format=lambda value: f"{value:.0f}"))


if __name__ == "__main__":
    main()
