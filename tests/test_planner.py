"""The planner on simulated sources with known curves: what it values, what it proposes, and that the
proposal is a valid grid extension."""

import subprocess

import numpy as np
import pandas as pd
import pytest
import yaml
from test_fit import power, table_of

from annealscope.core.config import ConfigError, check_config, validate_schema
from annealscope.core.grid import Cell, cells
from annealscope.fit.curves import FitSettings
from annealscope.fit.suggest import (
    candidate_cells,
    chosen_panels,
    decision,
    decision_curves,
    expected_reduction,
    grid_snippet,
    suggest,
)

BUDGETS = (1, 2, 4)
TARGET = 64e12  # 16x beyond the largest budget: the decision rests on extrapolation


@pytest.fixture(scope="module")
def contest():
    """Two sources that cross beyond the data (`late` starts worse, improves faster, and is best at the
    target) and one that is clearly out, each observed at three small budgets."""
    curves = {"early": power(2.0, 0.2, 0.1), "late": power(1.9, 0.5, 0.3), "out": power(3.0, 0.5, 0.3)}
    table = table_of(curves, budgets=BUDGETS, noise=0.01)
    return table, decision_curves(table, FitSettings(bootstrap=300, metrics=None))


def test_the_decision_is_uncertain_where_the_curves_are_extrapolated(contest):
    _, decisions = contest
    best, p_best = decision(decisions["t", "nll_byte"], TARGET)
    assert best in {"early", "late"} and p_best < 0.95
    assert decision(decisions["t", "nll_byte"], 2e12)[0] == "early"


def test_extending_a_contender_teaches_more_than_repeating_a_seed_or_extending_a_loser(contest):
    _, decisions = contest
    curves = decisions["t", "nll_byte"]
    by_name = {curve.source: curve for curve in curves}
    rng = np.random.default_rng(0)
    extend = expected_reduction(curves, by_name["late"], 8e12, TARGET, rng)
    repeat = expected_reduction(curves, by_name["late"], 2e12, TARGET, rng)
    loser = expected_reduction(curves, by_name["out"], 8e12, TARGET, rng)
    assert extend > 0.02
    assert max(repeat, loser) < extend / 2


def test_suggestions_spread_over_sources_and_extend_the_contenders(contest):
    table, decisions = contest
    suggestions = suggest(decisions, table, TARGET, count=3)
    sources = list(suggestions["source"])
    distinct = list(dict.fromkeys(sources))
    assert sources[:len(distinct)] == distinct  # one per source before a second of any
    assert (suggestions["reduction_per_1e18_flops"] > 0).all()  # none that is expected to teach nothing
    top = suggestions.iloc[0]
    assert top["source"] == "late" and top["budget_tokens"] > max(BUDGETS)
    assert top["uncertainty_after"] < top["uncertainty_now"]
    for block in (suggestions[:len(distinct)], suggestions[len(distinct):]):  # each in order of value
        assert (np.diff(block["reduction_per_1e18_flops"]) <= 1e-9).all()


def test_a_cell_sits_at_its_total_compute_but_costs_its_training():
    # A synthetic source: 1e12 training FLOPs a token, 5e12 of generation for its 3 unique tokens, which a
    # budget reads up to all of them (a budget of 4 repeats them). A plain table charges everything per token.
    rows = [{"source": "synthetic", "budget_tokens": budget, "seed": seed, "train_flops": budget * 1e12,
             "unique_tokens": min(budget, 3), "acquisition_flops": 5e12 * min(budget, 3) / 3, "available_tokens": 3}
            for budget in (1, 2, 4) for seed in (0, 1)]
    table = pd.DataFrame(rows).assign(total_flops=lambda t: t["train_flops"] + t["acquisition_flops"])
    curve = type("Curve", (), {"source": "synthetic"})()
    cells = {(budget, seed): (total, cost) for _, budget, seed, total, cost in candidate_cells(table, [curve], 1e15)}
    assert cells[1, 2] == pytest.approx((1e12 + 5e12 / 3, 1e12))  # a new seed: where its budget's cells are
    assert cells[4, 2] == pytest.approx((4e12 + 5e12, 4e12))
    assert cells[8, 0] == pytest.approx((8e12 + 5e12, 8e12)) and cells[16, 0] == pytest.approx((16e12 + 5e12, 16e12))
    plain = table[["source", "budget_tokens", "seed", "total_flops"]]
    per_token = float(np.median(table["total_flops"] / table["budget_tokens"]))
    cells = {(budget, seed): (total, cost) for _, budget, seed, total, cost in candidate_cells(plain, [curve], 1e15)}
    assert cells[8, 0] == pytest.approx((8 * per_token, 8 * per_token))


def test_a_source_the_target_cannot_buy_is_neither_decided_on_nor_proposed(contest, tmp_path):
    table, _ = contest
    costly = table[table["source"] == "late"].assign(source="costly", acquisition_flops=2 * TARGET)
    costly = costly.assign(total_flops=costly["total_flops"] + costly["acquisition_flops"])
    table = pd.concat([table.assign(acquisition_flops=0.0), costly], ignore_index=True)
    decisions = decision_curves(table, FitSettings(bootstrap=200, metrics=None))
    assert "costly" in {curve.source for curve in decisions["t", "nll_byte"]}
    assert decision(decisions["t", "nll_byte"], TARGET)[0] in {"early", "late"}
    assert "costly" not in set(suggest(decisions, table, TARGET, count=6)["source"])
    table.to_csv(tmp_path / "metrics.csv", index=False)
    result = subprocess.run(["annealscope", "suggest", str(tmp_path / "metrics.csv"), "--budget", str(TARGET),
                             "--bootstrap", "200"], capture_output=True, text=True, check=True)
    assert "(costly: acquisition above it)" in result.stdout


def test_the_snippet_adds_exactly_the_suggested_cells_to_the_grid(contest, demo_config):
    table, decisions = contest
    suggestions = suggest(decisions, table, TARGET, count=2)
    config = dict(demo_config, sources={name: demo_config["sources"]["sympy_manual"]
                                        for name in ("early", "late", "out")})
    config["grid"] = {**config["grid"], **yaml.safe_load(grid_snippet(suggestions))["grid"]}
    validate_schema(config)
    check_config(config)
    added = [cell for cell in cells(config) if cell.budget not in config["grid"]["budgets"]
             or cell.seed not in config["grid"]["seeds"]]
    assert added == [Cell(row.source, row.budget_tokens, row.seed) for row in suggestions.itertuples()]


def test_an_extra_cell_of_an_unknown_source_is_refused(demo_config):
    config = dict(demo_config, grid={**demo_config["grid"], "extra_cells": [{"source": "nope", "budget": 10}]})
    validate_schema(config)
    with pytest.raises(ConfigError, match=r"grid.extra_cells\[0\].source: 'nope'"):
        check_config(config)


def test_the_cli_prints_the_decision_and_writes_the_suggestions(contest, tmp_path):
    table, _ = contest
    table.to_csv(tmp_path / "metrics.csv", index=False)
    command = ["annealscope", "suggest", str(tmp_path / "metrics.csv"), "--budget", str(TARGET), "--count", "2",
               "--bootstrap", "200", "--out", str(tmp_path / "next.csv")]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "P(best)" in result.stdout and "extra_cells:" in result.stdout
    assert len(pd.read_csv(tmp_path / "next.csv")) == 2


def test_following_the_planner_reaches_the_right_decision_for_less_than_the_full_grid():
    curves = {"early": power(2.0, 0.2, 0.1), "late": power(1.9, 0.5, 0.3), "out": power(3.0, 0.5, 0.3)}
    rng = np.random.default_rng(1)

    def observe(source: str, budget: int, seed: int = 0) -> dict:
        flops = budget * 1e12
        return {"source": source, "budget_tokens": budget, "seed": seed, "total_flops": flops, "task": "t",
                "metric": "nll", "value": curves[source](flops) + rng.normal(0, 0.01), "stderr": 0.01}

    full_grid = sum(budget * 1e12 for budget in (1, 2, 4, 8, 16, 32, 64)) * len(curves)
    rows = [observe(source, budget) for source in curves for budget in BUDGETS]
    for _ in range(15):
        table = pd.DataFrame(rows)
        decisions = decision_curves(table, FitSettings(bootstrap=200, metrics=None))
        best, p_best = decision(decisions["t", "nll"], TARGET)
        if p_best >= 0.99:
            break
        proposal = suggest(decisions, table, TARGET, count=1).iloc[0]
        rows.append(observe(proposal["source"], int(proposal["budget_tokens"]), int(proposal["seed"])))
    assert (best, p_best >= 0.99) == ("late", True)
    assert pd.DataFrame(rows)["total_flops"].sum() < 0.5 * full_grid


def test_the_decision_informed_is_the_panels_named_else_all_but_the_tasks_a_group_stands_for(contest, tmp_path):
    table, decisions = contest
    curves = decisions["t", "nll_byte"]
    panels = {("subject_a", "acc"): curves, ("subject_b", "acc"): curves, ("mmlu", "acc"): curves,
              ("docs", "bpb"): curves}
    groups = {"mmlu": {"tasks": ["subject_a", "subject_b"], "weight_by_size": True}}
    assert set(chosen_panels(panels, [], groups)) == {("mmlu", "acc"), ("docs", "bpb")}
    assert set(chosen_panels(panels, [], {})) == set(panels)
    assert set(chosen_panels(panels, ["subject_a:acc"], groups)) == {("subject_a", "acc")}
    with pytest.raises(ValueError, match=r"--panel \['mmlu:bpb'\]: no such fitted panel; the fit has \['docs:bpb'"):
        chosen_panels(panels, ["mmlu:bpb"], groups)
    table.to_csv(tmp_path / "metrics.csv", index=False)
    command = ["annealscope", "suggest", str(tmp_path / "metrics.csv"), "--budget", str(TARGET), "--count", "1",
               "--bootstrap", "100"]
    chosen = subprocess.run([*command, "--panel", "t:nll_byte"], capture_output=True, text=True, check=True)
    assert "t · nll_byte: best at" in chosen.stdout
    refused = subprocess.run([*command, "--panel", "t:acc"], capture_output=True, text=True)
    assert refused.returncode != 0 and "--panel ['t:acc']: no such fitted panel" in refused.stderr
