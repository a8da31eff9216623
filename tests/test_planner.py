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
from annealscope.fit.suggest import decision, decision_curves, expected_reduction, grid_snippet, suggest

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
    assert list(suggestions["source"]) == list(dict.fromkeys(suggestions["source"]))  # one per source first
    top = suggestions.iloc[0]
    assert top["source"] == "late" and top["budget_tokens"] > max(BUDGETS)
    assert top["uncertainty_after"] < top["uncertainty_now"]
    assert (np.diff(suggestions["reduction_per_1e18_flops"]) <= 1e-9).all()


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
