"""Cluster execution on a real SLURM cluster (tests/slurm/start_cluster.sh starts one; CI does): the test
grid end to end through snakemake-executor-plugin-slurm, a cancelled anneal resubmitted and resumed from
its checkpoint, a failing job's SLURM log in the error, and GPU requests scheduled on fake GPUs. The
resource mapping and the dry-run plan need no cluster."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake_executor_plugin_slurm.utils import set_gres_string

from annealscope.anneal.checkpoints import COMPLETE
from annealscope.core.submission import slurm_resources

ROOT = Path(__file__).resolve().parent.parent
RUN = "test-grid-slurm"
RESULTS = ROOT / "results" / RUN
STATUS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
          "--seconds-between-status-checks", "3"]
RESOURCES = {"gpus": 2, "cpus": 8, "mem_mb": 64000, "runtime": 600, "partition": "gpu", "account": "lab",
             "constraint": "h100"}


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return state.returncode == 0 and state.stdout.strip().startswith(("idle", "mix", "alloc"))


needs_cluster = pytest.mark.skipif(
    not cluster_up() and not os.environ.get("ANNEALSCOPE_REQUIRE_SLURM"),
    reason="no SLURM cluster here: start one with `sudo bash tests/slurm/start_cluster.sh`")


def snakemake(config: Path, *args: str, cluster: bool = True, **kwargs
              ) -> subprocess.CompletedProcess | subprocess.Popen:
    """Snakemake on `config`, through SLURM (the slurm profile) unless `cluster` is false."""
    profile = ["--profile", str(ROOT / "profiles" / "slurm")] if cluster else []
    command = [sys.executable, "-m", "snakemake", "--configfile", str(config), "--directory", str(ROOT),
               *profile, *args]
    if kwargs.pop("background", False):
        return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, **kwargs)


def grid_config(directory: Path, **changes) -> Path:
    config = yaml.safe_load((ROOT / "tests" / "config" / "test_grid.yaml").read_text())
    config |= {"run": RUN, "cache_dir": f"results/{RUN}/cache"}
    config["eval"]["tasks"] = ["arith_mc"]  # test_workflow scores every task kind; here the cluster is the point
    del config["fit"]["suites"]  # a suite of the tasks left out
    del config["sources"]["program_problems"]  # filtered_web's shards run curate_shard, the teacher's generate_shard
    for key, value in changes.items():
        config[key] = {**config.get(key, {}), **value}
    path = directory / f"config-{len(list(directory.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_one_node_jobs_ask_for_gpus_and_several_nodes_ask_per_node():
    one = slurm_resources(RESOURCES)
    assert one == {"mem_mb": 64000, "runtime": 600, "cpus_per_task": 8, "gpu": 2, "slurm_partition": "gpu",
                   "slurm_account": "lab", "constraint": "h100"}
    assert set_gres_string(SimpleNamespace(resources=SimpleNamespace(**one, get=one.get))) == " --gpus=2"
    two = slurm_resources(RESOURCES, nodes=2)
    assert two["gres"] == "gpu:2" and two["nodes"] == 2 and "gpu" not in two
    assert set_gres_string(SimpleNamespace(resources=SimpleNamespace(**two, get=two.get))) == " --gres=gpu:2"
    assert slurm_resources({**RESOURCES, "gpus": 0, "partition": None}).keys() == {
        "mem_mb", "runtime", "cpus_per_task", "slurm_account", "constraint"}


def test_a_dry_run_on_a_cluster_config_plans_without_contacting_the_scheduler(tmp_path):
    """sbatch, squeue, sinfo, sacct and scontrol on PATH are traps that record any call and fail. The plan
    succeeds without them; only the plugin's own read of `scontrol show config` (for its help text) runs."""
    traps = tmp_path / "bin"
    traps.mkdir()
    for name in ("sbatch", "squeue", "sinfo", "sacct", "scontrol", "sacctmgr", "scancel"):
        (traps / name).write_text(f"#!/bin/sh\necho {name} >> {tmp_path}/called\nexit 1\n")
        (traps / name).chmod(0o755)
    environment = {**os.environ, "PATH": f"{traps}:{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm",
                             "--configfile", "config/examples/math-7b.yaml"], cwd=ROOT, env=environment,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "submission plan" in output and "GPU-hours reserved" in output
    assert "anneal" in output and "total" in output and "Job stats" in output
    called = set((tmp_path / "called").read_text().split()) if (tmp_path / "called").exists() else set()
    assert called <= {"scontrol"}, called


@pytest.fixture(scope="module")
def slurm_grid(tmp_path_factory) -> Path:
    """The test grid run once through SLURM, from a clean results directory. Only the base model, which real
    configs download instead of building, is built first without the cluster: its four jobs in a chain would
    add the plugin's status-check backoff (2, 12, 22 s ... between checks) four times."""
    if not cluster_up():
        pytest.fail("ANNEALSCOPE_REQUIRE_SLURM is set but no SLURM cluster is up (tests/slurm/start_cluster.sh)")
    directory = tmp_path_factory.mktemp("slurm")
    shutil.rmtree(RESULTS, ignore_errors=True)
    config = grid_config(directory, grid={"budgets": [4096, 8192]})
    base = snakemake(config, "--cores", "2", "--until", "pretrain_base", cluster=False)
    assert base.returncode == 0, base.stdout[-3000:] + base.stderr[-3000:]
    run = snakemake(config, "-j", "4", *STATUS)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-6000:]
    return directory


def submitted_rules() -> list[str]:
    """The rules of the jobs SLURM ran (squeue keeps finished jobs for MinJobAge; the comment names the rule)."""
    listing = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%k"], capture_output=True, text=True, check=True)
    return [line.split("_wildcards")[0].removeprefix("rule_") for line in listing.stdout.split()]


@needs_cluster
@pytest.mark.slow
def test_the_test_grid_runs_end_to_end_through_slurm(slurm_grid):
    rules = submitted_rules()
    for rule in ("train_classifier", "curate_shard", "generate_shard", "dedup", "finish_shard", "manifest",
                 "tokenize_replay_shard", "index_replay", "anneal", "evaluate", "collect", "fit", "backtest", "report"):
        assert rule in rules, (rule, sorted(set(rules)))
    assert rules.count("anneal") >= 4 and rules.count("evaluate") >= 5
    for name in ("metrics.csv", "items.parquet", "report.html", "fit/decisions.csv", "backtest/backtest.csv"):
        assert (RESULTS / name).stat().st_size > 0


@needs_cluster
@pytest.mark.slow
def test_a_cancelled_anneal_is_resubmitted_and_resumes_from_its_checkpoint(slurm_grid):
    """scancel lands mid-anneal (after the first checkpoint); --retries resubmits it and it resumes."""
    budget = 131072  # 256 steps: the retry resumes at step 100 or later
    config = grid_config(slurm_grid, grid={"budgets": [4096, 8192, 16384, budget]})  # a checkpoint every 100 steps
    cell = RESULTS / "anneal" / "filtered_web" / str(budget) / "seed0"
    shutil.rmtree(cell, ignore_errors=True)
    running = snakemake(config, "-j", "1", "--retries", "1", *STATUS,
                        str((cell / "summary.json").relative_to(ROOT)), background=True)
    try:
        marker = cell / "checkpoints" / COMPLETE
        deadline = time.monotonic() + 300
        while not marker.exists() and time.monotonic() < deadline and running.poll() is None:
            time.sleep(0.5)
        assert marker.exists(), f"no checkpoint appeared: {running.communicate(timeout=60)[0][-4000:]}"
        jobs = subprocess.run(["squeue", "-h", "-t", "running", "-o", "%i %k"], capture_output=True, text=True).stdout
        anneal = [line.split()[0] for line in jobs.splitlines() if "rule_anneal" in line]
        assert len(anneal) == 1, jobs
        subprocess.run(["scancel", anneal[0]], check=True)
        output, _ = running.communicate(timeout=600)
    finally:
        running.kill()
    assert running.returncode == 0, output[-6000:]
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["resumed_from_step"] > 0, summary
    assert f"SLURM-job '{anneal[0]}' failed" in output and "CANCELLED" in output


@needs_cluster
@pytest.mark.slow
def test_a_failing_job_reports_its_slurm_log(slurm_grid):
    config = grid_config(slurm_grid, grid={"budgets": [4096, 8192, 16384, 12288]},
                         anneal={"lr": 30.0, "warmup_steps": 0, "dtype": "fp32"})
    target = RESULTS / "anneal" / "filtered_web" / "12288" / "seed0" / "summary.json"
    # only the new cell runs: by its changed parameters alone (lr, dtype) the base would be pre-trained again
    failed = snakemake(config, "-j", "1", "--retries", "0", "--rerun-triggers", "mtime", *STATUS,
                       str(target.relative_to(ROOT)))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    logs = sorted((ROOT / ".snakemake" / "slurm_logs" / "rule_anneal").rglob("*.log"))
    assert logs and any(str(log.relative_to(ROOT)) in output or str(log) in output for log in logs), output[-4000:]
    assert "training diverged" in "".join(log.read_text() for log in logs) + "".join(
        path.read_text() for path in (RESULTS / "logs").glob("anneal_filtered_web_12288_seed0.log"))


@needs_cluster
def test_fake_gpus_are_scheduled_with_the_flags_an_anneal_job_gets(tmp_path):
    resources = slurm_resources({**RESOURCES, "partition": None, "account": None, "constraint": None,
                                 "mem_mb": 1000, "cpus": 1})
    flags = set_gres_string(SimpleNamespace(resources=SimpleNamespace(**resources, get=resources.get))).split()
    out = tmp_path / "gpus.txt"
    subprocess.run(["sbatch", "--wait", "--parsable", *flags, "--mem", "1000", "--output", str(out),
                    "--wrap", "echo GPUS=$CUDA_VISIBLE_DEVICES"], check=True, capture_output=True, timeout=120)
    assert out.read_text().strip() == "GPUS=0,1"
