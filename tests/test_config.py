import copy
import importlib.util
import shutil
import subprocess
import sys

import pytest
import yaml

from annealscope.core.config import KERNEL_PACKAGES, ConfigError
from annealscope.validation import load_config, validate_config


def check(config: dict, root) -> None:
    validate_config(config, root / "resources")


def test_demo_config_validates_and_gets_defaults(demo_config, root):
    check(demo_config, root)
    assert demo_config["anneal"]["zero_stage"] == 1
    assert demo_config["anneal"]["communication"]["overlap_comm"] is True  # nested defaults filled in
    assert demo_config["sources"]["library_docs"]["classifier"]["ngram_max"] == 2
    assert demo_config["sources"]["library_docs"]["near_dedup"]["threshold"] == 0.8
    assert demo_config["sources"]["teacher_docs"]["generator"]["temperature"] == 0.7
    assert "ngram_max" not in demo_config["sources"]["sympy_manual"]


BAD = [
    ("wrong type", lambda c: c["grid"].update(budgets="20000"), "budgets"),
    ("unknown curation", lambda c: c["sources"]["sympy_manual"].update(curation="scrape"), "curation"),
    ("budget not positive", lambda c: c["grid"].update(budgets=[20000, 0]), "budgets"),
    ("missing template", lambda c: c["sources"]["teacher_docs"]["generator"].update(template="nope.jinja"),
     "sources.teacher_docs.generator.template"),
    ("missing corpus file", lambda c: c["sources"]["library_docs"].update(pool=["data/missing.jsonl"]),
     "sources.library_docs.pool[0]"),
    ("micro budget off grid", lambda c: c["grid"].update(micro_anneal_budget=123), "grid.micro_anneal_budget"),
    ("fasttext model file missing", lambda c: c["sources"]["library_docs"].update(
        classifier={"backend": "fasttext", "model_file": "models/absent.bin", "label": "__label__hq"}),
     "sources.library_docs.classifier.model_file"),
    ("fasttext with neither a model nor seeds", lambda c: c["sources"]["library_docs"].update(
        classifier={"backend": "fasttext"}), "sources.library_docs.classifier"),
    ("probability threshold above 1", lambda c: c["sources"]["library_docs"].update(threshold=2),
     "sources.library_docs.threshold: 2 lies outside [0, 1]"),
    ("dollars without a price", lambda c: c["plan"].update(gpu_hour_usd=None),
     "fit.allocate_usd: dollars need plan.gpu_hour_usd"),
    ("ZeRO stage 0, whose checkpoint the export cannot gather", lambda c: c["anneal"].update(zero_stage=0),
     "anneal.zero_stage: 0 is not one of [1, 2, 3]"),
    ("unknown communication setting", lambda c: c["anneal"].update(communication={"overlap": True}),
     "anneal.communication"),
    ("bucket of no elements", lambda c: c["anneal"].update(communication={"reduce_bucket_size": 0}),
     "anneal.communication.reduce_bucket_size"),
    ("suite of a task not scored", lambda c: c["fit"].update(suites={"domain": ["arith_mc", "arith_mcq"]}),
     "fit.suites.domain: .*arith_mcq.* is no task the grid scores"),
    ("suite named like a task", lambda c: c["fit"].update(suites={"arith_mc": ["arith_mc", "heldout_sympy_docs"]}),
     "fit.suites.arith_mc: an evaluation task has that name"),
    ("suite of one task", lambda c: c["fit"].update(suites={"domain": ["arith_mc"]}),
     "fit.suites.domain: .* names one task"),
    ("suite of a pattern no task matches", lambda c: c["fit"].update(suites={"domain": ["arith_mc", "zz_*"]}),
     "fit.suites.domain: .*zz_.* is no task the grid scores"),
    *[(f"{key} without its package", lambda c, key=key, value=value: c["anneal"].update({key: value}),
       f"anneal.{key}: .* pip install") for key, (value, module, *_) in KERNEL_PACKAGES.items()
      if importlib.util.find_spec(module) is None],
]


@pytest.mark.parametrize(("name", "mutate", "key"), BAD, ids=[case[0] for case in BAD])
def test_bad_config_names_the_key(demo_config, root, name, mutate, key):
    config = copy.deepcopy(demo_config)
    mutate(config)
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        check(config, root)


def test_unknown_eval_task_names_the_key(demo_config, root):
    demo_config["eval"]["tasks"] = ["arith_mc", "no_such_task_xyz"]
    with pytest.raises(ConfigError, match=r"eval.tasks.*no_such_task_xyz"):
        check(demo_config, root)


def test_load_config_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize(("name", "mutate", "key"), [BAD[1], BAD[3]], ids=["unknown curation", "missing template"])
def test_snakemake_refuses_bad_config_before_any_job(demo_config, root, tmp_path, name, mutate, key):
    config = copy.deepcopy(demo_config)
    mutate(config)
    config["run"] = "badconfig"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    snakemake = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory", str(root)]
    result = subprocess.run(snakemake, capture_output=True, text=True, cwd=root)
    assert result.returncode != 0
    assert key.split(".")[-1] in result.stdout + result.stderr
    assert not (root / "results" / "badconfig").exists()


def test_schema_errors_are_one_line_each_with_the_closest_key(demo_config, root, tmp_path):
    demo_config["gird"] = demo_config.pop("grid")
    demo_config["anneal"] = {"learning_rate": 0.1}
    with pytest.raises(ConfigError) as raised:
        validate_config(demo_config, root / "resources")
    lines = str(raised.value).splitlines()
    assert "anneal.learning_rate: unknown key; did you mean `lr`?" in lines
    assert "gird: unknown key; did you mean `grid`?" in lines
    assert len(lines) == 3  # and grid is missing
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(demo_config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory",
                             str(root)], capture_output=True, text=True, cwd=root)
    assert result.returncode != 0 and "did you mean `lr`?" in result.stdout + result.stderr
    assert len(result.stdout + result.stderr) < 2000  # not the whole schema


@pytest.mark.parametrize("key", ["budgets", "seeds"])
def test_budgets_and_seeds_written_as_floats_are_refused(demo_config, root, key):
    demo_config["grid"][key] = [float(value) for value in demo_config["grid"].get(key, [0])]
    with pytest.raises(ConfigError, match=rf"grid\.{key}\.0: .* is not of type 'integer'"):
        validate_config(demo_config, root / "resources")


def test_a_key_written_twice_names_both_lines(root, tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text((root / "config" / "config.yaml").read_text().replace(
        "sources:\n", "sources:\n  library_docs: {curation: given, corpus: [pydoc:topics]}\n", 1))
    with pytest.raises(ConfigError, match=r"twice.yaml: key 'library_docs' appears twice, at lines \d+ and \d+"):
        load_config(path, root / "resources")
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory",
                             str(root)], capture_output=True, text=True, cwd=root)
    assert result.returncode != 0 and "appears twice" in result.stdout + result.stderr


def given(demo_config, corpus: str) -> dict:
    demo_config["sources"]["owned"] = {"curation": "given", "corpus": [corpus]}
    return demo_config


def test_a_dry_run_refuses_an_empty_or_malformed_local_shard_naming_file_and_line(demo_config, root, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ConfigError, match=r"empty.jsonl: the shard is empty"):
        validate_config(given(demo_config, str(tmp_path / "empty.jsonl")), root / "resources")
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": "broken\n')
    with pytest.raises(ConfigError, match=r"bad.jsonl, line 2: not a JSON record"):
        validate_config(given(demo_config, str(tmp_path / "bad.jsonl")), root / "resources")
    (tmp_path / "untexted.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(ConfigError, match=r"untexted.jsonl, line 1: the record has no 'text' string"):
        validate_config(given(demo_config, str(tmp_path / "untexted.jsonl")), root / "resources")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(given(demo_config, str(tmp_path / "bad.jsonl"))))
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory",
                             str(root)], capture_output=True, text=True, cwd=root)
    assert result.returncode != 0 and "bad.jsonl, line 2" in result.stdout + result.stderr


def test_a_dry_run_refuses_a_broken_prompt_template_naming_file_and_line(demo_config, root, tmp_path):
    """Its syntax, then a name it reads that no prompt defines. A template that indexes a document's fourth line
    or reads a param passes: only real documents and params can tell."""
    template = tmp_path / "broken.jinja"
    template.write_text("Rewrite this:\n{{ document }\n")
    demo_config["sources"]["teacher_docs"]["generator"]["template"] = str(template)
    with pytest.raises(ConfigError, match=r"generator.template: .*broken.jinja, line 2"):
        validate_config(demo_config, root / "resources")
    template.write_text("Rewrite this:\n{{ doc }}, {{ params.style | default('plain') }} {{ index }}\n")
    with pytest.raises(ConfigError, match=r"generator.template: .*broken.jinja reads \['doc'\], which no prompt "
                                          r"defines \(a template sees document, index, params"):
        validate_config(demo_config, root / "resources")
    template.write_text("{% set lines = document.split('\\n') %}{{ lines[3] }} {{ params.style }} {{ index }}")
    validate_config(demo_config, root / "resources")  # what one document's shape or the params decide, when run


def test_a_dry_run_refuses_a_task_file_that_is_not_yaml_naming_file_and_line(demo_config, root, tmp_path):
    resources = tmp_path / "resources"
    shutil.copytree(root / "resources", resources)
    task = resources / "tasks" / "arith_mc.yaml"
    task.write_text(task.read_text() + "doc_to_text: [unclosed\n")
    with pytest.raises(ConfigError, match=r"arith_mc.yaml, line \d+: not valid YAML"):
        validate_config(demo_config, resources)


@pytest.mark.parametrize("name", ["config/config.yaml", "config/examples/math-7b.yaml",
                                  "config/examples/medical-7b.yaml", "tests/config/test_grid.yaml"])
def test_the_schema_fills_the_same_defaults_as_snakemakes_validate(root, name):
    from snakemake.utils import validate

    from annealscope.core.config import SCHEMA, validate_schema

    ours = yaml.safe_load((root / name).read_text())
    theirs = copy.deepcopy(ours)
    validate_schema(ours)
    validate(theirs, str(SCHEMA), set_default=True)
    assert ours == theirs


def test_a_job_s_own_snakemake_process_leaves_the_task_check_to_the_main_process(demo_config, root, tmp_path):
    """The check reads lm-eval's task index (seconds, where the user's cache misses); every job's process
    would pay it again, after the main process refused or passed the configuration before any job."""
    demo_config["eval"]["tasks"] = ["arith_mc", "no_such_task_xyz"]
    demo_config["run"] = "jobcheck"
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump(demo_config))
    snakemake = [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--directory", str(root)]
    main = subprocess.run(snakemake, capture_output=True, text=True, cwd=root)
    assert main.returncode != 0 and "eval.tasks: unknown task(s) ['no_such_task_xyz']" in main.stdout + main.stderr
    job = subprocess.run([*snakemake, "--mode", "remote"], capture_output=True, text=True, cwd=root)
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    assert not (root / "results" / "jobcheck").exists()
