"""grid.schedule branched-wsd end to end: one stable phase per (source, seed), one cooldown per budget,
with real DeepSpeed and Snakemake; then how the grid grows (Snakemake's own plan) and what it costs."""

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_workflow import planned_jobs, snakemake

from annealscope.anneal.checkpoints import complete_steps, pruned_steps
from annealscope.anneal.launch import run_training
from annealscope.anneal.spec import TrainSpec
from annealscope.core.attribution import attribution_table
from annealscope.core.branches import branch_point
from annealscope.core.schedule import learning_rate

pytestmark = pytest.mark.slow
RUN = "test-branched"
SOURCE = "program_problems"


def branched_config(root: Path) -> dict:
    """The test grid cut to one source and one task, with branched cooldowns."""
    config = yaml.safe_load((root / "tests" / "config" / "test_grid.yaml").read_text())
    config.update(run=RUN, cache_dir=f"results/{RUN}/cache")
    config["sources"] = {SOURCE: config["sources"][SOURCE]}
    config["grid"] = {"budgets": [4096, 8192], "schedule": "branched-wsd"}
    config["eval"] = {"tasks": ["arith_mc"], "limit": 40}
    del config["fit"]["suites"]  # a suite of the tasks left out
    return config


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def branch(config: dict, budget: int):
    anneal = {"seq_len": 64, "global_batch": 8, "cooldown_fraction": 0.2} | config.get("anneal", {})
    return branch_point(budget, config["replay"]["fraction"], anneal["seq_len"], anneal["global_batch"],
                        anneal["cooldown_fraction"])


@pytest.fixture(scope="module")
def branched(tmp_path_factory):
    root = Path(__file__).resolve().parent.parent
    config = branched_config(root)
    path = write_config(config, tmp_path_factory.mktemp("branched") / "config.yaml")
    results = root / "results" / RUN
    subprocess.run(["rm", "-rf", str(results)], check=True)
    run = snakemake(root, path, "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return root, config, path, results


def cell(results: Path, budget: int) -> Path:
    return results / "anneal" / SOURCE / str(budget) / "seed0"


def test_each_cooldown_continues_the_stable_phase_with_a_wsd_decay(branched):
    _, config, _, results = branched
    stable = json.loads((results / "stable" / SOURCE / "seed0" / "branches.json").read_text())
    assert [entry["step"] for entry in stable["branches"]] == [branch(config, 4096).step, branch(config, 8192).step]
    first = [json.loads(line) for line in (cell(results, 4096) / "train_log.jsonl").read_text().splitlines()]
    second = [json.loads(line) for line in (cell(results, 8192) / "train_log.jsonl").read_text().splitlines()]
    split = branch(config, 4096).step
    assert [entry["loss"] for entry in first[:split]] == [entry["loss"] for entry in second[:split]]
    total = branch(config, 8192).total_steps
    expected = [learning_rate(step, total, 0.003, 5, "wsd", 0.2) for step in range(total)]
    assert [entry["lr"] for entry in second] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert second[-1]["lr"] == 0.0 and second[branch(config, 8192).step - 1]["lr"] == pytest.approx(0.003)
    summary = json.loads((cell(results, 8192) / "summary.json").read_text())
    assert summary["branch_step"] == branch(config, 8192).step and summary["source_tokens"] >= 8192
    assert 0 < summary["shared_flops"] < summary["train_flops"]


def test_cells_are_charged_their_prefix_and_the_report_attributes_it(branched):
    _, _, _, results = branched
    metrics = pd.read_csv(results / "metrics.csv")
    cells = metrics[metrics["source"] == SOURCE].drop_duplicates("budget_tokens")
    assert (cells["shared_flops"] > 0).all() and (cells["total_flops"] >= cells["train_flops"]).all()
    grid = attribution_table(metrics).set_index("source").loc["grid"]
    expected = cells["train_flops"].sum() - cells["shared_flops"].min()  # the 4096 prefix lies inside the 8192 one
    assert grid["train_flops_as_run"] == pytest.approx(expected)
    assert grid["as_run_over_charged"] < 0.8
    assert "Grid compute" in (results / "report.html").read_text()
    assert planned_jobs(*branched[::2]) == {}


def test_a_new_budget_extends_the_stable_phase_and_adds_one_cooldown(branched, tmp_path):
    root, config, _, results = branched
    config = {**config, "grid": {**config["grid"], "budgets": [4096, 8192, 16384]}}
    path = write_config(config, tmp_path / "more.yaml")
    jobs = planned_jobs(root, path)
    assert sorted(jobs) == ["backtest", "collect", "cooldown", "evaluate", "fit", "report", "stable"]
    assert len(jobs["cooldown"]) == 1 and "/16384/" in jobs["cooldown"][0]
    finished = (cell(results, 8192) / "summary.json").stat().st_mtime
    target = str(cell(results, 16384).relative_to(root) / "summary.json")
    run = snakemake(root, path, target, "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    stable = json.loads((results / "stable" / SOURCE / "seed0" / "branches.json").read_text())
    assert stable["resumed_from_step"] == branch(config, 8192).step
    assert stable["trained_steps"] == branch(config, 16384).step - branch(config, 8192).step
    assert (cell(results, 8192) / "summary.json").stat().st_mtime == finished

    # the stable phase grown budget by budget holds the weights of one uninterrupted run
    grown = TrainSpec.load(results / "stable" / SOURCE / "seed0" / "train_spec.json")
    fresh = TrainSpec(**{**grown.__dict__, "branch_budgets": [16384], "out_dir": str(tmp_path / "checkpoints"),
                         "summary_path": str(tmp_path / "branches.json")})
    run_training(fresh)
    tag = f"step{branch(config, 16384).step}"
    once = torch.load(tmp_path / "checkpoints" / tag / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    extended = torch.load(Path(grown.out_dir) / tag / "mp_rank_00_model_states.pt", weights_only=False)["module"]
    assert once.keys() == extended.keys()
    assert all(torch.equal(once[name], extended[name]) for name in once)


def test_inserting_a_budget_or_changing_settings_reruns_what_it_must(branched, tmp_path):
    root, config, _, _ = branched
    inserted = {**config, "grid": {**config["grid"], "budgets": [4096, 6144, 8192]}}
    jobs = planned_jobs(root, write_config(inserted, tmp_path / "inserted.yaml"))
    assert len(jobs["stable"]) == 1 and len(jobs["cooldown"]) == 1 and "/6144/" in jobs["cooldown"][0]
    extra = {**config, "grid": {**config["grid"], "extra_cells": [{"source": SOURCE, "budget": 6144, "seed": 1}]}}
    jobs = planned_jobs(root, write_config(extra, tmp_path / "extra.yaml"))
    assert jobs["cooldown"] == [f"results/{RUN}/anneal/{SOURCE}/6144/seed1/model, results/{RUN}/anneal/{SOURCE}/6144/"
                                f"seed1/train_log.jsonl, results/{RUN}/anneal/{SOURCE}/6144/seed1/summary.json"]
    assert len(jobs["stable"]) == 1 and "/seed1/" in jobs["stable"][0]  # nothing of seed 0 reruns
    faster = {**config, "anneal": {**config["anneal"], "lr": 0.001}}
    jobs = planned_jobs(root, write_config(faster, tmp_path / "lr.yaml"))
    assert {"stable_start", "stable"} <= set(jobs) and len(jobs["cooldown"]) == 2


def test_a_schedule_that_cannot_branch_is_refused(branched, tmp_path):
    root, config, _, _ = branched
    cosine = {**config, "anneal": {**config["anneal"], "schedule": "cosine"}}
    result = snakemake(root, write_config(cosine, tmp_path / "cosine.yaml"), "-n")
    assert result.returncode != 0 and "anneal.schedule: cosine cannot branch" in result.stdout + result.stderr


def test_pruned_branch_points_are_not_trained_again_and_a_cooldown_rebuilds_its_own(branched, tmp_path):
    """After the cooldowns, prune-branches keeps only the newest branch checkpoint. A budget inserted below it
    then trains the stable stretch to its own branch point only, and a cooldown whose branch point is gone
    trains its stretch itself, to the same weights it had. Runs last: it inserts a budget into the grid, one no
    other test plans (Snakemake keeps the metadata of the markers it wrote, beyond this run's folder)."""
    root, config, _, results = branched
    checkpoints = results / "stable" / SOURCE / "seed0" / "checkpoints"
    budgets = sorted(json.loads(path.read_text())["budget"] for path in checkpoints.parent.glob("branch[0-9]*.json"))
    pruned = subprocess.run(["annealscope", "prune-branches", str(results)], capture_output=True, text=True,
                            cwd=root)
    assert pruned.returncode == 0, pruned.stderr
    newest = branch(config, budgets[-1]).step
    assert complete_steps(checkpoints) == {newest: f"step{newest}"}
    assert pruned_steps(checkpoints) == {branch(config, budget).step for budget in budgets[:-1]}

    rebuilt = TrainSpec.load(cell(results, 4096) / "train_spec.json")
    rebuilt = TrainSpec(**{**rebuilt.__dict__, "out_dir": str(tmp_path / "model"), "log_path": str(
        tmp_path / "train_log.jsonl"), "summary_path": str(tmp_path / "summary.json"), "checkpoint_every": 5,
        "keep_checkpoints": True})
    original = (cell(results, 4096) / "train_log.jsonl").read_text().splitlines()
    for attempt in ("rebuilt", "resumed"):  # the second resumes from the first's last checkpoint, as after a kill
        if attempt == "resumed":
            shutil.rmtree(tmp_path / "model")
            (tmp_path / "summary.json").unlink()
        run_training(rebuilt)
        again = (tmp_path / "train_log.jsonl").read_text().splitlines()
        assert [json.loads(line)["loss"] for line in again] == [json.loads(line)["loss"] for line in original]
        assert (tmp_path / "model" / "model.safetensors").read_bytes() == \
            (cell(results, 4096) / "model" / "model.safetensors").read_bytes()
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["resumed_from_step"] == (15 if attempt == "resumed" else None)
        assert summary["stable_steps_retrained"] == branch(config, 4096).step
        assert summary["shared_flops"] > 0 and summary["retrained_flops"] == pytest.approx(summary["shared_flops"])

    inserted = {**config, "grid": {**config["grid"], "budgets": sorted({*budgets, 5120})}}
    path = write_config(inserted, tmp_path / "inserted.yaml")
    run = snakemake(root, path, str(cell(results, 5120).relative_to(root) / "summary.json"), "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    stable = json.loads((checkpoints.parent / "branches.json").read_text())
    assert stable["trained_steps"] == branch(config, 5120).step and stable["resumed_from_step"] is None
    assert set(complete_steps(checkpoints)) == {branch(config, 5120).step, newest}
