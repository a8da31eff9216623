"""`annealscope backtest`: each source's largest budget held out, predicted by the refit, and the decision there
taken by the fit, by micro-annealing and by the largest remaining point, against what was measured."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from annealscope.core.layout import BACKTEST_OUTPUTS
from annealscope.fit.backtest import backtest, held_out
from annealscope.fit.curves import FitSettings

BUDGETS = (1, 2, 4, 8, 16, 32)


def table_of(curves: dict, noise: float, seeds: int = 2, budgets=BUDGETS, base: float | None = None,
             metric: str = "nll_byte") -> pd.DataFrame:
    """Rows of sources whose true value at budget b (b·1e12 FLOPs) is `curves[source](b)`, with noise."""
    rng = np.random.default_rng(1)
    rows = [{"source": source, "budget_tokens": budget, "seed": seed, "total_flops": budget * 1e12, "task": "t",
             "metric": metric, "value": truth(budget) + rng.normal(0, noise), "stderr": noise}
            for source, truth in curves.items() for budget in budgets for seed in range(seeds)]
    if base is not None:
        rows.append({"source": "base", "budget_tokens": 0, "seed": 0, "total_flops": 0.0, "task": "t",
                     "metric": metric, "value": base, "stderr": noise})
    return pd.DataFrame(rows)


# Neither is a fitted form: a Hill curve that saturates early, and a log that keeps going (lower is better).
SMALL_CLEAN = {"small_clean": lambda b: 2.5 - 0.8 * b / (b + 1.0)}
LARGE_NOISY = {"large_noisy": lambda b: 2.5 - 0.3 * np.log1p(b)}


def test_held_out_rows_are_each_sources_largest_budget_and_the_base_stays():
    table = table_of({**SMALL_CLEAN, "short": lambda b: 2.0}, noise=0.01, budgets=(1, 2, 4), base=2.6)
    table = table[~((table["source"] == "short") & (table["budget_tokens"] == 4))]
    kept, out = held_out(table)
    assert set(zip(out["source"], out["budget_tokens"], strict=True)) == {("small_clean", 4), ("short", 2)}
    assert "base" in set(kept["source"]) and len(kept) + len(out) == len(table)


def test_micro_annealing_picks_the_early_winner_and_the_refit_the_source_that_wins_at_the_held_out_budget():
    # small_clean is better up to b ~ 3.6, large_noisy beyond: micro-annealing at b = 1 picks the wrong one.
    table = table_of({**SMALL_CLEAN, **LARGE_NOISY}, noise=0.01, base=2.5)
    values, decisions = backtest(table, FitSettings(bootstrap=300, micro_anneal_budget=1))
    values = values.set_index("source")
    assert (values["held_out_budget"] == 32).all() and values["inside"].all()
    assert values.loc["small_clean", "micro_anneal"] < values.loc["large_noisy", "micro_anneal"]
    assert (values["observed"] - values["predicted"]).abs().max() < 0.1
    by_method = decisions.set_index("method")
    assert by_method.loc["fit", "ranking"] == by_method.loc["fit", "observed_ranking"] == "large_noisy > small_clean"
    assert by_method.loc["fit", "pairwise_accuracy"] == 1.0 and by_method.loc["fit", "best_correct"]
    assert by_method.loc["micro_anneal", "pairwise_accuracy"] == 0.0
    assert by_method.loc["fit", "clear_pairs"] == 1


def test_the_interval_misses_a_held_out_point_that_breaks_the_trend():
    # The last budget jumps far off a smooth curve: the refit cannot know, and its interval must not cover it.
    table = table_of({**LARGE_NOISY, **SMALL_CLEAN}, noise=0.005, base=2.5)
    table.loc[(table["source"] == "large_noisy") & (table["budget_tokens"] == 32), "value"] += 0.5
    values, _ = backtest(table, FitSettings(bootstrap=300, micro_anneal_budget=1))
    values = values.set_index("source")
    assert not values.loc["large_noisy", "inside"] and values.loc["small_clean", "inside"]


def test_the_command_runs_on_any_metrics_table_and_reports_a_source_it_cannot_refit(tmp_path):
    table = table_of({**SMALL_CLEAN, **LARGE_NOISY, "one_budget": lambda b: 1.2}, noise=0.01, base=2.5)
    table = table[(table["source"] != "one_budget") | (table["budget_tokens"] == 4)]
    table.assign(extra="ignored").to_csv(tmp_path / "metrics.csv", index=False)
    done = subprocess.run(["annealscope", "backtest", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "bt"),
                           "--bootstrap", "100", "--micro-anneal-budget", "1"], check=True, capture_output=True,
                          text=True)
    assert sorted(path.name for path in (tmp_path / "bt").iterdir()) == sorted(BACKTEST_OUTPUTS)
    assert "1 (task, metric) panels" in done.stdout and "inside the fit's 90% interval" in done.stdout
    values = pd.read_csv(tmp_path / "bt" / "backtest.csv").set_index("source")
    assert np.isnan(values.loc["one_budget", "predicted"]) and values.loc["one_budget", "status"]
    decisions = pd.read_csv(tmp_path / "bt" / "backtest_decisions.csv").set_index("method")
    assert decisions.loc["fit", "pairs"] == 1 and decisions.loc["largest_remaining", "pairs"] == 1
    assert decisions.loc["fit", "observed_ranking"].startswith("one_budget")
    bad = subprocess.run(["annealscope", "backtest", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "x"),
                          "--higher-is-better", "nll_byte"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--higher-is-better nll_byte" in bad.stderr and not (tmp_path / "x").exists()


@pytest.mark.parametrize("higher", [True, False])
def test_the_metrics_direction_orders_the_sources(higher):
    table = table_of({"a": lambda b: 0.5 + 0.01 * b, "b": lambda b: 0.4 + 0.005 * b}, noise=0.001, metric="acc")
    _, decisions = backtest(table, FitSettings(bootstrap=50, higher_is_better={"acc": higher}, metrics=["acc"]))
    assert decisions.set_index("method").loc["fit", "observed_ranking"] == ("a > b" if higher else "b > a")
