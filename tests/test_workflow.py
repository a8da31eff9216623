"""End to end: the test grid through every stage with real DeepSpeed, lm-eval and Snakemake, then the
incremental behaviour (new budget, new source, new fit settings) checked by Snakemake's own plan."""

import copy
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import load_benchmark, sequence_classifier

from annealscope.core.layout import FIT_OUTPUTS
from annealscope.core.tables import METRICS_COLUMNS
from annealscope.fit.analysis import analyse
from annealscope.fit.curves import FitSettings

pytestmark = pytest.mark.slow
RUN = "test-grid"


def snakemake(root: Path, config: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--configfile", str(config), "--directory", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=root, env=env)


def planned_jobs(root: Path, config: Path, env: dict | None = None) -> dict[str, list[str]]:
    """Rule -> outputs of every job a dry-run plans."""
    result = snakemake(root, config, "-n", "--cores", "8", env=env)  # threads above this machine's 2 render too
    assert result.returncode == 0, result.stdout + result.stderr
    jobs: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=(?:local)?rule )", result.stdout):
        match = re.match(r"(?:local)?rule (\w+):", block.strip())
        if match:
            output = re.search(r"output: (.*)", block)
            jobs.setdefault(match[1], []).append(output[1] if output else "")
    jobs.pop("all", None)
    return jobs


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Run the test grid once, end to end, from a clean results directory."""
    root = Path(__file__).resolve().parent.parent
    config = tmp_path_factory.mktemp("grid") / "config.yaml"
    config.write_text((root / "tests" / "config" / "test_grid.yaml").read_text())
    results = root / "results" / RUN
    subprocess.run(["rm", "-rf", str(results)], check=True)
    run = snakemake(root, config, "--cores", "2")
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    config.with_name("run.log").write_text(run.stderr)
    return root, config, results


def test_every_stage_produced_its_artifacts(grid):
    _, _, results = grid
    metrics = pd.read_csv(results / "metrics.csv")
    assert list(metrics.columns[: len(METRICS_COLUMNS)]) == METRICS_COLUMNS
    assert set(metrics["source"]) == {"base", "program_problems", "teacher_problems", "filtered_web"}
    assert set(metrics["task"]) == {"arith_mc", "arith_gen", "mmlu_math", "heldout_sympy_docs"}
    assert set(metrics.loc[metrics["task"] == "arith_mc", "metric"]) == {"acc", "brier", "nll", "nll_token",
                                                                         "nll_byte", "p_gold"}
    assert set(metrics.loc[metrics["task"] == "arith_gen", "metric"]) == {"exact_match", "nll", "nll_token",
                                                                          "nll_byte"}
    assert set(metrics.loc[metrics["task"] == "heldout_sympy_docs", "metric"]) == {"bpb"}
    fits = pd.read_csv(results / "fit" / "fits.csv")
    assert set(fits["metric"]) == {"acc", "brier", "nll_byte", "bpb", "exact_match"}
    assert set(fits.loc[fits["task"] == "math", "metric"]) == {"acc", "brier", "nll_byte"}  # fit.suites.math
    assert (metrics.loc[metrics["source"] == "base", "total_flops"] == 0).all()
    annealed = metrics[metrics["source"] != "base"]
    assert (annealed["total_flops"] >= annealed["train_flops"]).all()
    teacher = annealed[annealed["source"] == "teacher_problems"]
    assert (teacher["acquisition_flops"] > 0).all() and (teacher["epochs"] > 1).any()
    for name in FIT_OUTPUTS:
        assert (results / "fit" / name).stat().st_size > 0
    items = pd.read_parquet(results / "items.parquet")
    assert set(items["task"]) == set(metrics["task"]) and items["value"].notna().all()
    assert (metrics.loc[metrics["source"] != "base", "total_usd"] > 0).all()
    assert "bootstrap replicates over items and seeds" in (results / "logs" / "fit.log").read_text()
    report = (results / "report.html").read_text()
    assert "<img" in report and "Backtest" in report
    values = pd.read_csv(results / "backtest" / "backtest.csv")
    assert set(values["source"]) == set(annealed["source"]) and (values["held_out_budget"] == 16384).all()
    held = values.set_index(["task", "metric", "source"])["observed"]  # one seed: the cell's own values
    assert np.allclose(held.loc["math", "acc"], (held.loc["arith_mc", "acc"] + held.loc["mmlu_math", "acc"]) / 2)
    assert set(pd.read_csv(results / "backtest" / "backtest_decisions.csv")["method"]) == {
        "fit", "micro_anneal", "largest_remaining"}


def test_anneal_exports_load_and_logs_decay_to_zero(grid):
    from transformers import AutoModelForCausalLM

    _, _, results = grid
    cell = results / "anneal" / "program_problems" / "16384" / "seed0"
    model = AutoModelForCausalLM.from_pretrained(cell / "model")
    assert model.config.model_type == "llama"
    log = [json.loads(line) for line in (cell / "train_log.jsonl").read_text().splitlines()]
    assert {"step", "lr", "loss", "tokens", "tokens_per_s"} <= set(log[0])
    assert log[-1]["lr"] < log[len(log) // 2]["lr"] <= max(entry["lr"] for entry in log)
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["source_tokens"] >= 16384 and summary["replay_tokens"] > 0


def test_manifests_account_for_acquisition(grid):
    _, _, results = grid
    teacher = json.loads((results / "curate" / "teacher_problems" / "manifest.json").read_text())
    acquisition = teacher["acquisition"]
    assert teacher["acquisition_flops"] == pytest.approx(
        2 * acquisition["generator_parameters"] * (acquisition["prompt_tokens"] + acquisition["generated_tokens"]))
    web = json.loads((results / "curate" / "filtered_web" / "manifest.json").read_text())
    assert 0 < web["acquisition"]["pass_rate"] < 1
    assert web["acquisition_flops"] == pytest.approx(
        web["acquisition"]["flops_per_token"] * web["acquisition"]["scanned_tokens"])
    program = json.loads((results / "curate" / "program_problems" / "manifest.json").read_text())
    assert program["acquisition_flops"] == 0 and program["tokens"] > 0


def test_hub_datasets_are_fetched_once_and_curation_steps_are_recorded(grid):
    _, _, results = grid
    fetched = list((results / "cache" / "datasets").glob("*/fetch.json"))
    assert len(fetched) == 1 and json.loads(fetched[0].read_text())["rows"] == 8
    teacher = json.loads((results / "curate" / "teacher_problems" / "manifest.json").read_text())
    assert teacher["provenance"][0]["rows"] == 8 and "train.jsonl" in teacher["provenance"][0]["local_files"]
    assert teacher["acquisition"]["shards"] == 2 and teacher["acquisition"]["prompts"] == 8
    assert [shard["pieces"] for shard in teacher["shards"]] == [["prompts 0..3"], ["prompts 4..7"]]  # two jobs
    web = json.loads((results / "curate" / "filtered_web" / "manifest.json").read_text())
    steps = [step["step"] for step in web["steps"]]
    assert steps == ["read", "heuristics", "classify", "exact_dedup", "near_dedup", "decontaminate"]
    assert web["steps"][1]["removed_by"]["gopher_quality"]["gopher_below_alpha_threshold"] > 0  # datatrove's rule
    for manifest in (teacher, web):
        assert 0 < manifest["diversity"]["distinct_2"] <= 1 and manifest["diversity"]["length_histogram"]
        assert manifest["tokens"] == manifest["steps"][-1]["tokens_out"]


def test_evaluations_run_one_at_a_time_beside_the_anneals(grid):
    """Local evaluations take turns with one evaluator, so never two at once; each starts once its checkpoint
    exists, on the core an anneal left (one core each in the test grid), not after the last anneal."""
    _, config, _ = grid
    jobs = load_benchmark("stage_times").job_intervals(config.with_name("run.log").read_text())
    evaluations = sorted(jobs["evaluate"])
    assert len(evaluations) == 10 and len(jobs["anneal"]) == 9
    assert not any(later[0] < earlier[1] for earlier, later in itertools.pairwise(evaluations))
    last_anneal = max(start for start, _ in jobs["anneal"])
    assert sum(start < last_anneal for start, _ in evaluations) >= 2  # the base model's and at least one cell's


def test_nothing_left_to_do_after_the_run(grid):
    root, config, _ = grid
    assert planned_jobs(root, config) == {}


def test_a_lost_per_cell_file_is_named_and_forcing_collect_remakes_only_its_cell(grid):
    root, config, results = grid
    scores = results / "eval" / "program_problems" / "8192" / "seed0" / "scores.json"
    kept = scores.rename(scores.with_name("kept.json"))  # a rename back keeps its time stamp
    try:
        refused = snakemake(root, config, "-n", "--cores", "2")
        assert refused.returncode != 0 and str(scores.relative_to(root)) in refused.stdout + refused.stderr
        assert "snakemake --forcerun collect" in refused.stdout + refused.stderr
        forced = snakemake(root, config, "-n", "--cores", "2", "--forcerun", "collect")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert forced.stdout.count("rule evaluate:") == 1 and "program_problems/8192/seed0" in forced.stdout
    finally:
        kept.rename(scores)


def test_adding_a_budget_reruns_only_the_new_cells(grid, tmp_path):
    root, config, _ = grid
    changed = yaml.safe_load(config.read_text())
    changed["grid"]["budgets"].append(32768)
    path = tmp_path / "more_budget.yaml"
    path.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(root, path)
    assert sorted(jobs) == ["anneal", "backtest", "collect", "evaluate", "fit", "report"]
    assert len(jobs["anneal"]) == 3 and all("/32768/" in output for output in jobs["anneal"])
    assert len(jobs["evaluate"]) == 3 and all("/32768/" in output for output in jobs["evaluate"])


def test_extra_cells_run_only_themselves(grid, tmp_path):
    root, config, _ = grid
    changed = yaml.safe_load(config.read_text())
    changed["grid"]["extra_cells"] = [{"source": "program_problems", "budget": 32768},
                                      {"source": "filtered_web", "budget": 4096, "seed": 1},
                                      {"source": "filtered_web", "budget": 4096, "seed": 0}]  # already in the grid
    path = tmp_path / "extra.yaml"
    path.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(root, path)
    assert sorted(jobs) == ["anneal", "backtest", "collect", "evaluate", "fit", "report"]
    assert sorted(output.split(",")[0] for output in jobs["anneal"]) == [
        f"results/{RUN}/anneal/filtered_web/4096/seed1/model",
        f"results/{RUN}/anneal/program_problems/32768/seed0/model"]


def test_adding_a_source_reruns_only_its_cells(grid, tmp_path):
    root, config, _ = grid
    changed = yaml.safe_load(config.read_text())
    changed["sources"]["more_problems"] = {"curation": "synthesize",
                                           "generator": {"kind": "program", "documents": 300, "seed": 7}}
    path = tmp_path / "more_source.yaml"
    path.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(root, path)
    assert sorted(jobs) == ["anneal", "backtest", "collect", "curate_shard", "dedup", "evaluate", "finish_shard",
                            "fit", "manifest", "report"]
    for rule in ("curate_shard", "dedup", "finish_shard", "manifest", "anneal", "evaluate"):
        assert all("more_problems" in output for output in jobs[rule]), (rule, jobs[rule])
    assert len(jobs["anneal"]) == 3


def test_a_task_screened_on_a_trained_grid_reruns_no_curation_or_training(grid, tmp_path):
    """A held-out domain added to a trained grid and left out of eval.decontaminate is prepared apart and found
    in every shard's curated documents: the cells are evaluated again to score it, and nothing is curated or
    trained. Decontaminated against instead, it reruns every source's decontamination and every training, and
    the plan warns of that first, saying how to screen it."""
    root, config, results = grid
    changed = yaml.safe_load(config.read_text())
    changed["eval"]["heldout"]["numpy_docs"] = ["docstrings:numpy"]
    screened = copy.deepcopy(changed)
    screened["eval"]["decontaminate"] = [*changed["eval"]["tasks"], "heldout_sympy_docs"]
    path = tmp_path / "screened.yaml"
    path.write_text(yaml.safe_dump(screened))
    jobs = planned_jobs(root, path)
    assert sorted(jobs) == ["backtest", "collect", "evaluate", "fit", "prepare_screened_tasks", "report", "screen",
                            "screen_shard"]
    assert len(jobs["screen_shard"]) == len(list(results.glob("curate/*/shard*/documents.jsonl")))
    assert len(jobs["evaluate"]) == len(list(results.glob("eval/*/*/seed*/scores.json")))
    path = tmp_path / "decontaminated.yaml"
    path.write_text(yaml.safe_dump(changed))
    jobs = planned_jobs(root, path)
    assert {"prepare_tasks", "finish_shard", "anneal"} <= set(jobs) and "screen_shard" not in jobs
    warning = " ".join(snakemake(root, path, "-n").stderr.split())
    assert "were decontaminated against other tasks than the config lists now (it adds ['heldout_numpy_docs'])" \
        in warning
    assert "set eval.decontaminate: ['arith_gen', 'arith_mc', 'heldout_sympy_docs', 'mmlu_math']" in warning


def test_reordering_the_tasks_of_a_trained_grid_reruns_nothing(grid, tmp_path):
    """Neither the prepared tasks nor the scores depend on the order eval.tasks lists them in, so the rules that
    prepare and score them keep the order they ran with."""
    root, config, _ = grid
    changed = yaml.safe_load(config.read_text())
    changed["eval"]["tasks"].reverse()
    path = tmp_path / "reordered.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert planned_jobs(root, path) == {}


def test_changing_fit_settings_reruns_only_fit_backtest_and_report(grid, tmp_path):
    root, config, _ = grid
    changed = yaml.safe_load(config.read_text())
    changed["fit"] = {"bootstrap": 7, "forms": ["log_linear"]}
    path = tmp_path / "refit.yaml"
    path.write_text(yaml.safe_dump(changed))
    assert sorted(planned_jobs(root, path)) == ["backtest", "fit", "report"]


def test_changed_code_reruns_the_cheap_stages_it_runs_and_never_a_training(grid, tmp_path):
    """A copy of the package, edited, first on the import path, then a dependency's metadata at a new version:
    what an upgrade of annealscope or of a package it runs does to a finished run."""
    root, config, _ = grid
    package = tmp_path / "workflow"
    shutil.copytree(root / "workflow" / "annealscope", package / "annealscope",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for folder in ("schemas", "report"):  # read beside the package
        (package / folder).symlink_to(root / "workflow" / folder)
    env = {**os.environ, "PYTHONPATH": str(package)}

    def planned_after(module: str, addition: str) -> list[str]:
        path = package.joinpath(*module.split(".")).with_suffix(".py")
        original = path.read_text()
        path.write_text(original + addition)
        try:
            return sorted(planned_jobs(root, config, env))
        finally:
            path.write_text(original)

    assert planned_after("annealscope.fit.forms", "\n# a comment, and a blank line\n\n") == []
    assert planned_after("annealscope.fit.forms", "\nSMALLEST = 1e-12\n") == ["backtest", "fit", "report"]
    assert planned_after("annealscope.core.tables", "\nSMALLEST = 1e-12\n") == [
        "backtest", "collect", "fit", "report"]
    assert planned_after("annealscope.anneal.rank", "\nSMALLEST = 1e-12\n") == []
    assert planned_after("annealscope.evaluate.harness", "\nSMALLEST = 1e-12\n") == []
    for distribution, rerun in (("scipy", ["fit", "report"]), ("deepspeed", [])):  # the fit imports scipy
        upgraded = tmp_path / distribution  # its metadata first on the path: the version an upgrade installs
        (upgraded / f"{distribution}-99.0.dist-info").mkdir(parents=True)
        (upgraded / f"{distribution}-99.0.dist-info" / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 99.0\n")
        (upgraded / f"{distribution}-99.0.dist-info" / "top_level.txt").write_text(f"{distribution}\n")
        assert sorted(planned_jobs(root, config, {**os.environ, "PYTHONPATH": str(upgraded)})) == rerun


def test_an_edited_report_caption_remakes_only_the_report(grid):
    root, config, _ = grid
    caption = root / "workflow" / "report" / "costs.rst"
    text, stamp = caption.read_text(), caption.stat()
    caption.write_text(text + "Costs are FLOPs.\n")  # Snakemake compares the text too: a touch alone reruns nothing
    try:
        assert sorted(planned_jobs(root, config)) == ["report"]
    finally:
        caption.write_text(text)
        os.utime(caption, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def changed_config(config: Path, tmp_path: Path, block: str | None, key: str, value) -> Path:
    """The config with `block`'s `key` (a top-level key when `block` is None) set to `value`."""
    changed = yaml.safe_load(config.read_text())
    (changed if block is None else changed.setdefault(block, {}))[key] = value
    path = tmp_path / f"{block}-{key}.yaml"
    path.write_text(yaml.safe_dump(changed))
    return path


@pytest.mark.parametrize(("block", "key", "value"), [
    ("anneal", "checkpoint_every", 7), ("anneal", "threads", 2), ("anneal", "keep_checkpoints", True),
    ("anneal", "max_loss_ratio", 9.0), ("anneal", "peak_flops", 1e12), ("anneal", "micro_batch", 4),
    ("anneal", "activation_checkpointing", True), ("anneal", "export_dtype", "auto"), ("eval", "batch_size", 8),
    ("eval", "threads", 2), (None, "fetch_workers", 1), ("resources", "curate", {"cpus": 4})])
def test_an_execution_setting_reruns_nothing(grid, tmp_path, block, key, value):
    root, config, _ = grid
    assert planned_jobs(root, changed_config(config, tmp_path, block, key, value)) == {}


def test_a_price_reruns_only_what_it_prices_and_a_result_setting_exactly_its_cells(grid, tmp_path):
    root, config, _ = grid
    assert sorted(planned_jobs(root, changed_config(config, tmp_path, "plan", "gpu_peak_flops", 5e14))) == [
        "backtest", "collect", "fit", "report"]  # the dollars change; no anneal (it only fed MFU's peak)
    jobs = planned_jobs(root, changed_config(config, tmp_path, "anneal", "lr", 1e-3))
    assert sorted(jobs) == ["anneal", "backtest", "collect", "evaluate", "fit", "report"]  # pre-training has its own lr
    assert len(jobs["anneal"]) == len(jobs["evaluate"]) == 9
    jobs = planned_jobs(root, changed_config(config, tmp_path, "anneal", "export_dtype", "bf16"))
    assert len(jobs["anneal"]) == 9 and len(jobs["pretrain_base"]) == 1  # unlike auto, explicit is a result setting


def test_fit_cli_accepts_the_collected_table(grid, tmp_path):
    _, _, results = grid
    out = tmp_path / "fit"
    command = ["annealscope", "fit", str(results / "metrics.csv"), "--out", str(out), "--target-flops", "1e13",
               "--bootstrap", "10", "--items", str(results / "items.parquet"), "--allocate-usd", "1e-6"]
    subprocess.run(command, check=True, capture_output=True)
    assert sorted(path.name for path in out.iterdir()) == sorted(FIT_OUTPUTS)
    decisions = pd.read_csv(out / "decisions.csv")
    assert set(decisions["total_flops"].dropna()) == {1e13}
    assert {"fitted", "micro_anneal"} <= set(decisions["kind"])
    assert set(pd.read_csv(out / "allocation.csv")["budget_unit"]) == {"usd"}


def test_the_fit_is_a_pure_function_of_the_table(grid):
    _, _, results = grid
    metrics = pd.read_csv(results / "metrics.csv")
    items = pd.read_parquet(results / "items.parquet")
    first = analyse(copy.deepcopy(metrics), FitSettings(bootstrap=5), items)
    second = analyse(metrics, FitSettings(bootstrap=5), items)
    for name, frame in first.tables().items():
        pd.testing.assert_frame_equal(frame, second.tables()[name], obj=name)


def test_a_pool_a_transformers_classifier_scores_is_curated_by_classify_jobs_with_their_resources(tmp_path, tiny_base):
    """The shard jobs of a pool that a model scores ask for `resources.classify` (GPUs on a cluster), run on its
    CPUs (the tokenizer too), and curate the source as `curate_shard` jobs would: every step recorded, the
    classifier's FLOPs charged."""
    root = Path(__file__).resolve().parent.parent
    config = yaml.safe_load((root / "tests" / "config" / "test_grid.yaml").read_text())
    config |= {"run": "classify-check", "cache_dir": "results/classify-check/cache",
               "resources": {"classify": {"cpus": 2, "mem_mb": 3000, "runtime": 17}}}
    config["sources"]["filtered_web"]["classifier"] = {
        "backend": "transformers", "model": str(sequence_classifier(tiny_base, tmp_path / "classifier")),
        "label": "high", "batch_size": 16, "max_length": 64}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.rmtree(root / "results" / "classify-check", ignore_errors=True)
    manifest = Path("results/classify-check/curate/filtered_web/manifest.json")
    run = snakemake(root, tmp_path / "config.yaml", str(manifest), "--cores", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    job = re.search(r"rule classify_shard:.*?resources: ([^\n]*)", run.stdout + run.stderr, flags=re.DOTALL)
    assert job and "runtime=17" in job[1] and "mem_mb=3000" in job[1], (run.stdout + run.stderr)[-3000:]
    assert "rule curate_shard:" not in run.stdout + run.stderr
    shards = sorted((root / manifest.parent).glob("shard*/filtered.json"))
    assert shards and {json.loads(path.read_text())["threads"] for path in shards} == {2}
    written = json.loads((root / manifest).read_text())
    assert [step["step"] for step in written["steps"]] == ["read", "heuristics", "classify", "exact_dedup",
                                                            "near_dedup", "decontaminate"]
    assert written["documents"] > 0 and written["acquisition_flops"] > 0
    shutil.rmtree(root / "results" / "classify-check")
