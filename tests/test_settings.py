"""Defaults live in one place, the schema: typed settings built without a config, and the CLI's fit without a
settings file, agree with what the workflow's rules get from a validated config."""

import argparse
import copy
import dataclasses
import json

import numpy as np
import pandas as pd

from annealscope.anneal import launch
from annealscope.anneal.spec import TrainSpec
from annealscope.cli import _source_settings, main
from annealscope.core import settings as settings_module
from annealscope.core.config import schema_defaults
from annealscope.core.settings import EXECUTION_VARIABLE, RuleSettings, execution_settings
from annealscope.fit.curves import FitSettings
from annealscope.validation import validate_config


def test_typed_settings_take_their_defaults_from_the_schema():
    fit = FitSettings()
    for key, default in schema_defaults("fit").items():
        assert getattr(fit, key) == default, key
    anneal = schema_defaults("anneal")
    spec_defaults = {field.name: field.default_factory() for field in dataclasses.fields(TrainSpec)
                     if field.default_factory is not dataclasses.MISSING}
    assert spec_defaults and all(spec_defaults[key] == anneal[key] for key in spec_defaults)
    assert spec_defaults["checkpoint_every"] == anneal["checkpoint_every"] == 100


def test_defaults_are_copies_that_a_caller_may_change():
    FitSettings().forms.append("constant")
    assert "constant" not in FitSettings().forms


def test_the_cli_fit_without_settings_fits_what_the_workflow_rule_fits(tmp_path, demo_config, root):
    """The rule passes the validated config's fit block (plus grid.micro_anneal_budget) as --settings."""
    rng = np.random.default_rng(0)
    rows = [{"source": source, "budget_tokens": budget, "seed": 0, "total_flops": budget * 1e9, "task": "t",
             "metric": metric, "value": offset + slope * np.log(budget) + rng.normal(0, 0.01), "stderr": 0.01}
            for source, slope in (("a", -0.05), ("b", -0.02)) for budget in (1000, 2000, 4000, 8000)
            for metric, offset in (("brier", 0.6), ("nll", 3.0), ("acc", 0.3))]
    pd.DataFrame(rows).to_csv(tmp_path / "metrics.csv", index=False)
    config = {"run": "t", "base_model": {"pretrained": "org/model", "parameters": 1000},
              "sources": {"a": {"curation": "given", "corpus": ["pydoc:topics"]},
                          "b": {"curation": "given", "corpus": ["pydoc:topics"]}},
              "replay": {"fraction": 0}, "grid": {"budgets": [1000, 2000, 4000, 8000]}, "eval": {"tasks": ["arith_mc"]},
              "fit": {"bootstrap": 40}}
    validate_config(config, root / "resources")
    rule_settings = json.dumps({**config["fit"], "micro_anneal_budget": config["grid"]["micro_anneal_budget"]})
    main(["fit", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "rule"), "--settings", rule_settings])
    main(["fit", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "cli"), "--bootstrap", "40"])
    for name in ("fits.csv", "predictions.csv", "decisions.csv"):
        assert pd.read_csv(tmp_path / "rule" / name).equals(pd.read_csv(tmp_path / "cli" / name)), name
    assert set(pd.read_csv(tmp_path / "cli" / "fits.csv")["metric"]) == {"brier", "acc"}  # nll is not in fit.metrics


def test_a_job_command_run_by_hand_gets_the_schemas_execution_defaults(monkeypatch, demo_config, root, capsys):
    """A job's command copied from its log and run without the workflow's execution variable runs with the
    schema's defaults for how it runs (ranks, threads, a teacher's batch size); under the workflow, the config's."""
    config = copy.deepcopy(demo_config)
    config["anneal"] |= {"ranks": 2, "threads": 3, "zero_stage": 2}
    config["sources"]["teacher_docs"]["generator"]["batch_size"] = 8
    validate_config(config, root / "resources", tasks=False)
    settings = RuleSettings(config)
    launched = []
    monkeypatch.setattr(launch, "run_training", launched.append)
    train = ["train", "--settings", settings.cell("library_docs", 5000, 0), "--init", "m", "--source", "s.json",
             "--out", "model", "--summary", "summary.json"]
    teacher = argparse.Namespace(name="teacher_docs", settings=settings.source("teacher_docs", {}))
    monkeypatch.delenv(EXECUTION_VARIABLE, raising=False)
    settings_module._say_defaults_apply.cache_clear()  # said once a process; an earlier test may have run by hand
    main(train)
    by_hand = _source_settings(teacher)["generator"]
    assert f"{EXECUTION_VARIABLE} is not set" in capsys.readouterr().err
    settings_module._say_defaults_apply.cache_clear()
    assert execution_settings("anneal", job=False) == {} and not capsys.readouterr().err  # fit, report: no job
    monkeypatch.setenv(EXECUTION_VARIABLE, settings.execution())
    main(train)
    workflow = _source_settings(teacher)["generator"]
    defaults = schema_defaults("anneal")
    assert [(spec.ranks, spec.threads, spec.zero_stage) for spec in launched] == [
        (defaults["ranks"], defaults["threads"], defaults["zero_stage"]), (2, 3, 2)]
    assert launched[0].seq_len == launched[1].seq_len == config["anneal"]["seq_len"]
    assert (by_hand["batch_size"], workflow["batch_size"]) == (16, 8)  # 16: the schema's default for a teacher
    assert workflow == config["sources"]["teacher_docs"]["generator"]
    assert {key: value for key, value in by_hand.items() if key != "batch_size"} == {
        key: value for key, value in workflow.items() if key != "batch_size"}
