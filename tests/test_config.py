import copy
import subprocess
import sys

import pytest
import yaml

from annealscope.core.config import ConfigError
from annealscope.validation import load_config, validate_config


def check(config: dict, root) -> None:
    validate_config(config, root / "resources")


def test_demo_config_validates_and_gets_defaults(demo_config, root):
    check(demo_config, root)
    assert demo_config["anneal"]["zero_stage"] == 1
    assert demo_config["sources"]["filtered_web"]["classifier"]["ngram_max"] == 2
    assert demo_config["sources"]["filtered_web"]["near_dedup"]["threshold"] == 0.8
    assert demo_config["sources"]["teacher_problems"]["generator"]["max_new_tokens"] == 128
    assert "ngram_max" not in demo_config["sources"]["program_problems"]


BAD = [
    ("wrong type", lambda c: c["grid"].update(budgets="20000"), "budgets"),
    ("unknown curation", lambda c: c["sources"]["program_problems"].update(curation="scrape"), "curation"),
    ("budget not positive", lambda c: c["grid"].update(budgets=[20000, 0]), "budgets"),
    ("missing template", lambda c: c["sources"]["teacher_problems"]["generator"].update(template="nope.jinja"),
     "sources.teacher_problems.generator.template"),
    ("missing corpus file", lambda c: c["sources"]["filtered_web"].update(pool=["data/missing.jsonl"]),
     "sources.filtered_web.pool[0]"),
    ("micro budget off grid", lambda c: c["grid"].update(micro_anneal_budget=123), "grid.micro_anneal_budget"),
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
