import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from annealscope.base.build import build_model, train_tokenizer
from annealscope.core.config import check_config, validate_schema
from annealscope.core.corpora import local_text_bytes
from annealscope.core.grid import acquisition_estimate, base_parameters, cells, planned_cells
from annealscope.core.shards import planned_shards
from annealscope.core.storage import free_space_lines, planned_storage
from annealscope.core.submission import family_jobs, family_resources, shard_family, submission_table
from annealscope.validation import load_config


def dry_run(root: Path, config: dict, tmp_path: Path) -> str:
    """What `snakemake -n` prints for `config`."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory",
                             str(root)], capture_output=True, text=True, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_dry_run_lists_the_planned_cells_with_their_cost(root, demo_config, tmp_path):
    demo_config["run"] = "plan-check"
    output = dry_run(root, demo_config, tmp_path)
    assert "annealscope plan: run plan-check, 30 anneal cells" in output
    for source in ("sympy_manual", "library_docs", "teacher_docs"):
        assert source in output
    assert "train FLOPs" in output and "GPU-hours" in output
    assert "This was a dry-run" in output
    the_submission_plan_counts_the_jobs_snakemake_plans(output)  # a built base: its corpus and pre-training


def test_a_grid_whose_replay_was_tokenized_whole_keeps_reading_that_array(root, demo_config, tmp_path):
    """A grid made before replay was sharded trained on tokens/replay.bin, the input its anneals recorded: while
    that array is there they read it and no replay shard job is planned (another input would rerun every
    anneal), nor counted in the submission plan; without it, replay is tokenized in shard jobs whose index the
    anneals read."""
    demo_config["run"] = "replay-check"
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"text": f"replay document {index} " * 8}) + "\n" for index in range(30)))
    demo_config["replay"] |= {"corpus": [str(replay)], "sharding": {"bytes": replay.stat().st_size // 3 + 1}}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(demo_config))
    tokens = root / "results" / "replay-check" / "tokens"

    def planned() -> tuple[dict[str, int], set[str]]:
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", str(config),
                                 "--directory", str(root)], capture_output=True, text=True, cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
        the_submission_plan_counts_the_jobs_snakemake_plans(result.stdout + result.stderr)
        jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE)}
        return jobs, set(re.findall(r"--replay (\S+)", result.stdout))

    jobs, replay = planned()
    assert jobs["tokenize_replay_shard"] == 3 and jobs["index_replay"] == 1 and jobs["tokenize"] == 1  # pretrain
    assert replay == {"results/replay-check/tokens/replay.json"}
    try:
        tokens.mkdir(parents=True)
        (tokens / "replay.bin").write_bytes(b"\0\0")
        (tokens / "replay.json").write_text('{"dtype": "uint16", "tokens": 1, "documents": 1}')
        jobs, replay = planned()
        assert "tokenize_replay_shard" not in jobs and "index_replay" not in jobs
        assert replay == {"results/replay-check/tokens/replay.bin"}
    finally:
        shutil.rmtree(tokens.parent)


def test_plan_counts_replay_and_the_demo_model_exactly(demo_config, root):
    validate_schema(demo_config)
    check_config(demo_config)
    planned = planned_cells(demo_config)
    assert len(planned) == len(cells(demo_config)) == 30
    assert all(row.replay_tokens == row.train_tokens for row in planned)  # replay fraction 0.5
    build = demo_config["base_model"]["build"]
    tokenizer = train_tokenizer(["a tiny corpus for a tokenizer of any size"] * 10, build["vocab_size"])
    model = build_model(build, tokenizer)
    expected = base_parameters({"base_model": {"build": {**build, "vocab_size": len(tokenizer)}}})
    assert expected == sum(parameter.numel() for parameter in model.parameters())


def test_real_7b_configs_plan_with_snakemake_without_the_network(root):
    outputs = {}
    for name, sources, fetches in (("math-7b", 4, 8), ("medical-7b", 4, 9)):
        result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile",
                                 f"config/examples/{name}.yaml", "--directory", str(root)],
                                capture_output=True, text=True, cwd=root)
        assert result.returncode == 0, result.stderr[-3000:]
        output = outputs[name] = result.stdout + result.stderr
        assert f"annealscope plan: run {name}, {sources * 4 * 2} anneal cells" in output
        assert "GPU-hours" in output and "This was a dry-run" in output
        jobs = dict(re.findall(r"^(fetch_\w+)\s+(\d+)$", output, flags=re.MULTILINE))
        assert int(jobs["fetch_dataset"]) + int(jobs["fetch_model"]) == fetches, jobs
        assert int(jobs["fetch_tasks"]) == 1
    as_run = r"as run \(0\.6\dx: branched-wsd\)"  # math-7b branches its cooldowns; medical-7b does not
    assert re.search(as_run, outputs["math-7b"]) and not re.search(as_run, outputs["medical-7b"])
    assert re.search(r"^cooldown\s+32$", outputs["math-7b"], flags=re.MULTILINE)
    every_curation_shard_job_is_planned(outputs["math-7b"])
    the_disk_plan_holds_exports_branch_points_and_capped_data(outputs["math-7b"])
    a_pool_a_model_scores_is_curated_on_gpus(outputs["medical-7b"])
    for output in outputs.values():
        the_submission_plan_counts_the_jobs_snakemake_plans(output)


def test_a_7b_grid_with_screened_tasks_plans_a_screening_job_per_shard(root, tmp_path):
    """math-7b decontaminated against its multiple-choice tasks only: gsm8k, minerva_math and the held-out
    OpenWebMath are prepared apart (their lm-eval datasets fetched by a fetch job of their own) and screened in
    every one of the 304 curated shards, counted in the submission plan's curate and default families."""
    config = yaml.safe_load((root / "config" / "examples" / "math-7b.yaml").read_text())
    config["eval"]["decontaminate"] = ["mathqa", "mmlu_high_school_mathematics", "mmlu_college_mathematics",
                                       "mmlu_elementary_mathematics"]
    output = dry_run(root, config, tmp_path)
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}
    assert {name: jobs.get(name) for name in ("prepare_tasks", "prepare_screened_tasks", "screen_shard", "screen",
                                              "finish_shard", "fetch_tasks")} == {
        "prepare_tasks": 1, "prepare_screened_tasks": 1, "screen_shard": 304, "screen": 1, "finish_shard": 304,
        "fetch_tasks": 2}
    the_submission_plan_counts_the_jobs_snakemake_plans(output)


def every_curation_shard_job_is_planned(output: str) -> None:
    """math-7b: OpenWebMath capped at 14e9 tokens in shards of 2^26 (209), 2M program problems in shards of
    100,000 (20), and two teachers' 500,000 and 1,000,000 prompts in shards of 20,000 (25 + 50 GPU jobs)."""
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}
    assert {name: jobs[name] for name in ("train_classifier", "curate_shard", "generate_shard", "dedup",
                                          "finish_shard", "manifest")} == {
        "train_classifier": 1, "curate_shard": 209 + 20, "generate_shard": 25 + 50, "dedup": 4,
        "finish_shard": 304, "manifest": 4}
    for source, shards, hours in (("openwebmath_filtered", 209, 0), ("teacher_gsm_variants", 25, 25 * 8 * 24),
                                  ("mind_dialogues", 50, 50 * 8 * 24)):
        assert re.search(rf"│ {source}\s+│ \w+\s+│\s+{shards} │\s+{hours:,} │", output), source
    assert jobs["tokenize_replay_shard"] == 299 and jobs["index_replay"] == 1  # 20e9 replay tokens in shards of 2^26
    curate = 2 * 304 - 75 + 2 * 4 + 1 + 299  # shard and finish jobs, dedup and manifest, a classifier, replay shards
    assert re.search(rf"│ curate\s+│\s+{curate} │", output) and re.search(r"│ generate\s+│\s+75 │\s+1 │\s+8 │", output)


def the_disk_plan_holds_exports_branch_points_and_capped_data(output: str) -> None:
    """math-7b: 32 bf16 exports of 7,298,011,136 parameters (trained in bf16 on GPUs); a ZeRO-3 checkpoint (12
    bytes a parameter) at each of the 4 branch points of 8 stable phases; the filtered pool's 14e9 and replay's
    20e9 capped tokens at 4 bytes; 8 bytes a token of the two capped fetches; the teachers' and the program's
    arrays and 3 uncapped fetches are not bounded. Pruned after the cooldowns, one checkpoint per phase stays."""
    table = output[output.index("disk, planned"):output.index("submission plan")]
    rows = {what.strip(): cells for what, *cells in
            (re.split(r"\s*│\s*", line.strip("│ ")) for line in table.splitlines() if line.startswith("│"))}
    assert rows["exported models (bf16 safetensors)"] == ["results/math-7b/anneal/*/*/seed*/model", "32", "14.6 GB",
                                                          "467 GB"]
    assert rows["stable-phase checkpoints, one per branch point (bf16, ZeRO-3)"][1:] == ["32", "87.6 GB", "2.8 TB"]
    assert rows["openwebmath_filtered's token array"][1:] == ["1", "56 GB", "56 GB"]
    assert rows["replay's token array"][1:] == ["1", "80 GB", "80 GB"]
    assert rows["program_problems's token array"][3] == rows["mind_dialogues's token array"][3] == "n/a"
    assert rows["fetched hub datasets capped by max_tokens (8 bytes a token)"][1:] == ["2", "", "272 GB"]
    assert rows["fetched hub datasets without max_tokens"][1] == "3"
    kept = 7_298_011_136 * (32 * 2 + 32 * 12) + (14e9 + 20e9) * 4 + 34e9 * 8  # 3.68 TB
    assert rows["kept in all (and 4 rows the config does not bound)"][3] == f"{kept / 1e12:.3g} TB"
    pruned = 8 * 7_298_011_136 * 12  # the newest branch point of each stable phase
    assert f"`annealscope prune-branches results/math-7b` keeps 8 of the 32 stable-phase checkpoints, the newest " \
        f"of each (source, seed): {pruned / 1e9:.3g} GB instead of 2.8 TB" in " ".join(output.split())


FAMILIES = {"anneal": ("anneal", "stable", "cooldown", "pretrain_base"), "classify": ("classify_shard",),
            "curate": ("train_classifier", "curate_shard", "dedup", "finish_shard", "manifest", "tokenize",
                       "tokenize_replay_shard", "screen_shard"),
            "generate": ("generate_shard",), "evaluate": ("evaluate",),
            "default": ("prepare_tasks", "corpus_documents", "index_replay", "collect", "fit", "backtest", "report",
                        "base_init", "prepare_screened_tasks", "screen")}


def the_submission_plan_counts_the_jobs_snakemake_plans(output: str) -> None:
    """Each resource family's row of the submission plan holds as many jobs as Snakemake plans of its rules."""
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}
    table = output[output.index("submission plan"):]
    planned = {family: int(count) for family, count in re.findall(r"│ (\w+)\s+│\s+(\d+) │\s+\d+ │", table)}
    assert planned == {family: sum(jobs.get(rule, 0) for rule in rules) for family, rules in FAMILIES.items()
                       if family in planned}, planned
    assert set(FAMILIES) - set(planned) <= {"classify"}


def a_pool_a_model_scores_is_curated_on_gpus(output: str) -> None:
    """medical-7b: edu_web's 895 shards, scored by a 109M-parameter transformers classifier, are `classify_shard`
    jobs of one GPU an hour each; the given PubMed's 90 stay CPU `curate_shard` jobs."""
    jobs = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", output, flags=re.MULTILINE)}
    assert {name: jobs[name] for name in ("curate_shard", "classify_shard", "generate_shard")} == {
        "curate_shard": 90, "classify_shard": 895, "generate_shard": 50 + 60}
    assert re.search(r"│ edu_web\s+│ filter\s+│\s+895 │\s+895 │", output)
    assert re.search(r"│ classify\s+│\s+895 │\s+1 │\s+1 │\s+8 │", output)


def test_a_pool_a_transformers_classifier_scores_takes_the_classify_family_else_curate_s(root):
    config = yaml.safe_load((root / "config" / "examples" / "medical-7b.yaml").read_text())
    validate_schema(config)
    assert {name: shard_family(source) for name, source in config["sources"].items()} == {
        "pubmed_abstracts": "curate", "edu_web": "classify", "mind_dialogues": "generate", "textbook_qa": "generate"}
    planned = family_jobs(config, 32, planned_shards(config))
    assert planned["classify"] == 895 and family_resources(config, "classify")["gpus"] == 1
    del config["resources"]["classify"]
    assert family_resources(config, "classify") == config["resources"]["curate"]
    assert family_jobs(config, 32, planned_shards(config)) == planned
    del config["sources"]["edu_web"]
    assert family_jobs(config, 24, planned_shards(config))["classify"] == 0
    assert "classify" not in [row for row in submission_table(config, 24, planned_shards(config)).columns[0].cells]


def test_the_dry_run_warns_where_the_disk_the_grid_keeps_does_not_fit(root, monkeypatch, tmp_path):
    """math-7b keeps up to 3.41 TB under results/ (exports, stable-phase checkpoints, token arrays) and 272 GB in
    its cache (capped fetches), each measured against the free space of the filesystem it will be on, found
    from the nearest folder that exists; only the one that does not fit is warned of, with its fix."""
    config = load_config(root / "config" / "examples" / "math-7b.yaml", root / "resources")
    config["cache_dir"] = str(tmp_path / "not" / "made" / "yet")
    asked = []

    def disk_usage(path):
        asked.append(Path(path))
        free = 300e9 if Path(path) == tmp_path else 4e12
        return shutil._ntuple_diskusage(free * 2, free, free)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.chdir(tmp_path)
    lines = free_space_lines(config, planned_storage(config))
    assert asked == [tmp_path, tmp_path]  # results/math-7b and the cache, neither made yet
    kept = 7_298_011_136 * (32 * 2 + 32 * 12) + (14e9 + 20e9) * 4  # exports, checkpoints, token arrays
    assert lines[0] == f"disk: results/math-7b keeps up to {kept / 1e12:.3g} TB; its filesystem has 300 GB free. " \
        "warning: that does not fit; run the workflow from a larger filesystem (snakemake --directory)"
    assert lines[1] == f"disk: {config['cache_dir']} keeps up to 272 GB; its filesystem has 300 GB free"


def test_a_local_pool_is_planned_from_its_files_and_an_unbounded_one_says_why(demo_config, root, tmp_path):
    """library_docs scans a local Parquet file and a capped hub dataset: its scan is bounded by their bytes and
    cap, and so is its token array on disk (2 bytes a token of the demo's vocabulary). An uncapped hub dataset
    is told to take max_tokens; a built-in corpus is counted when read."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    parquet.write_table(pa.table({"text": [f"document {index} " * 40 for index in range(500)]}),
                        tmp_path / "pool.parquet", row_group_size=100)
    local = local_text_bytes(str(tmp_path / "pool.parquet"))
    assert local >= sum(len(f"document {index} " * 40) for index in range(500))
    demo_config["sources"]["library_docs"]["pool"] = [str(tmp_path / "pool.parquet"), "hf:org/web?max_tokens=1000"]
    validate_schema(demo_config)
    source = demo_config["sources"]["library_docs"]
    assert acquisition_estimate(demo_config, source) == \
        f"<= {4 * (local + 1000):.3e} FLOPs for <= {local + 1000:,} scanned tokens"
    storage = {row.what: row for row in planned_storage(demo_config)}
    assert storage["library_docs's token array"].total == 2 * (local + 1000)
    source["pool"] += ["hf:org/more", "wikipedia:pool"]
    assert acquisition_estimate(demo_config, source) == \
        "4 FLOPs per scanned token; cap hf:org/more with max_tokens; wikipedia:pool counted when read"
    assert storage["sympy_manual's token array"].total is None  # a built-in corpus


def test_the_plan_warns_when_changed_tasks_would_retrain_the_curated_sources(root, monkeypatch, tmp_path):
    """Every source is decontaminated against the listed tasks, so a task added to a curated grid reruns that and
    retrains the source's cells. The plan names the sources whose manifest counted removals for other tasks (the
    order does not matter; a source not curated yet is not named), what they cost (here a quarter of math-7b's
    training as run per source: the same budgets) and, where every curated source agrees, the
    eval.decontaminate that keeps them, which then warns of nothing."""
    from annealscope.core.decontamination import retraining_lines
    from annealscope.core.grid import planned_as_run, print_plan

    config = load_config(root / "config" / "examples" / "math-7b.yaml", root / "resources")
    evaluated = [*config["eval"]["tasks"], "heldout_openwebmath"]
    flops, hours = planned_as_run(planned_cells(config))

    def curated(run, source, tasks):
        manifest = tmp_path / run / "curate" / source / "manifest.json"
        manifest.parent.mkdir(parents=True)
        steps = [{"step": "heuristics"}, {"step": "decontaminate", "removed_by_task": dict.fromkeys(tasks, 0)}]
        manifest.write_text(json.dumps({"steps": steps}))

    curated("mixed", "openwebmath_filtered", evaluated[::-1])
    assert retraining_lines(config, tmp_path / "mixed") == []
    curated("mixed", "mind_dialogues", [task for task in evaluated if task != "mathqa"] + ["gsm8k_cot"])
    [line] = retraining_lines(config, tmp_path / "mixed")
    assert line == ("warning: sources ['mind_dialogues'] were decontaminated against other tasks than the config "
                    "lists now (it adds ['mathqa'] and drops ['gsm8k_cot']), so their decontamination reruns and "
                    f"their 8 cells retrain ({flops / 4:.3g} train FLOPs, {hours / 4:.3g} GPU-hours as planned).")

    before = sorted(set(evaluated) - {"mathqa"})
    for source in ("openwebmath_filtered", "mind_dialogues"):
        curated("agreed", source, before)
    [line] = retraining_lines(config, tmp_path / "agreed")
    assert f"their 16 cells retrain ({flops / 2:.3g} train FLOPs" in line
    assert line.endswith(f"To keep them and screen the other tasks instead, set eval.decontaminate: {before}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "agreed").rename(tmp_path / "results" / "math-7b")
    printed = io.StringIO()
    print_plan(config, printed)
    assert "set eval.decontaminate: ['gsm8k'," in " ".join(printed.getvalue().split())
    config["eval"]["decontaminate"] = before
    assert retraining_lines(config, "results/math-7b") == []  # mathqa screened: nothing retrains
