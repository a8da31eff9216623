"""The report's summary: the answer per panel, read from the fit's and the backtest's own tables."""

import json

import numpy as np
import pandas as pd
import pytest

from annealscope.fit.analysis import analyse, write_analysis
from annealscope.fit.backtest import backtest, write_backtest
from annealscope.fit.curves import FitSettings
from annealscope.report.html import render_report
from annealscope.report.summary import summary_table


def crossing_table(noise: float = 0.01) -> pd.DataFrame:
    """Two sources whose bits per byte cross at e²·1e12 FLOPs (`a` learns faster, `b` starts better), a third
    that is worse everywhere, and the base model: budgets 1 to 64, costing budget·1e12 FLOPs."""
    rng = np.random.default_rng(7)
    truth = {"a": lambda x: 2.0 - 0.3 * x, "b": lambda x: 1.6 - 0.1 * x, "c": lambda x: 2.5 - 0.1 * x}
    rows = [{"source": source, "budget_tokens": budget, "seed": 0, "total_flops": budget * 1e12, "task": "docs",
             "metric": "bpb", "value": curve(np.log(budget)) + rng.normal(0, noise), "stderr": noise}
            for source, curve in truth.items() for budget in (1, 2, 4, 8, 16, 32, 64)]
    rows.append({"source": "base", "budget_tokens": 0, "seed": 0, "total_flops": 0.0, "task": "docs",
                 "metric": "bpb", "value": 2.8, "stderr": noise})
    return pd.DataFrame(rows)


def test_the_summary_names_the_best_source_at_each_end_what_micro_annealing_picks_and_the_backtest(tmp_path):
    table = crossing_table()
    settings = FitSettings(forms=["log_linear"], bootstrap=300, micro_anneal_budget=1)
    analysis = analyse(table, settings)
    values, decisions = backtest(table, settings)
    summary = summary_table(analysis.decisions, analysis.crossovers, decisions).set_index(["task", "metric"])
    row = summary.loc["docs", "bpb"]
    assert (row["best_at_smallest"], row["best_at_largest"], row["micro_anneal_best"]) == ("b", "a", "b")
    assert row["p_best_at_largest"] > 0.95 and row["largest_compute"] > np.exp(2) * 1e12 > row["smallest_compute"]
    assert (row["crossings"], row["crossings_p_0.9"]) == (len(analysis.crossovers), 1)
    held = decisions.set_index("method")["pairwise_accuracy"]
    assert (row["backtest_fit_accuracy"], row["backtest_micro_anneal_accuracy"]) == (held["fit"], held["micro_anneal"])
    assert held["fit"] == 1.0 and held["micro_anneal"] < 1.0  # at 64, `a` leads where the micro-anneal saw `b`
    table.to_csv(tmp_path / "metrics.csv", index=False)
    write_analysis(analysis, table, tmp_path / "fit")
    write_backtest(values, decisions, tmp_path / "backtest")
    render_report(tmp_path / "fit", tmp_path / "metrics.csv", tmp_path / "report.html",
                  backtest_dir=tmp_path / "backtest")
    page = (tmp_path / "report.html").read_text()
    assert page.index("<h2>Summary</h2>") < page.index("<td>docs</td>") < page.index("<h2>Scaling curves</h2>")
    assert "does not record the training FLOPs" in page  # a table with only the columns the fit needs


def test_a_summary_without_a_backtest_leaves_its_columns_out():
    analysis = analyse(crossing_table(), FitSettings(forms=["log_linear"], bootstrap=50, micro_anneal_budget=1))
    summary = summary_table(analysis.decisions, analysis.crossovers)
    assert not any(column.startswith("backtest") for column in summary.columns)
    assert summary[["task", "metric"]].values.tolist() == [["docs", "bpb"]]
    assert summary["p_best_at_smallest"].iloc[0] == pytest.approx(
        analysis.decisions.query("kind == 'fitted'").sort_values("total_flops")["p_best"].iloc[0])


def test_each_end_of_the_summary_is_one_decision_row_whole():
    """A value missing at the smallest compute stays missing there, not filled from the next compute's row."""
    decisions = pd.DataFrame({"task": "t", "metric": "acc", "kind": ["fitted", "fitted", "fitted", "micro_anneal"],
                              "total_flops": [3e12, 1e12, 2e12, np.nan], "best_source": ["x", "y", "x", "y"],
                              "p_best": [0.9, np.nan, 0.6, np.nan]})
    crossovers = pd.DataFrame(columns=["task", "metric", "p_crossing"])
    row = summary_table(decisions, crossovers).iloc[0]
    assert (row["best_at_smallest"], row["best_at_largest"], row["p_best_at_largest"]) == ("y", "x", 0.9)
    assert np.isnan(row["p_best_at_smallest"]) and row["crossings"] == 0


def test_suites_are_drawn_with_their_points_and_a_group_s_tasks_are_summarised_by_its_panel(tmp_path):
    """The curves figure draws a suite's and a group's observed points and base line, not only their curves; the
    tasks of a group with a panel are left out of the figures and the summary, and stay in every table."""
    crossing = crossing_table()
    table = pd.concat([crossing.assign(task=task, value=crossing["value"] + shift)
                       for task, shift in (("docs_a", 0.0), ("docs_b", 0.05), ("docs_c", -0.05))], ignore_index=True)
    groups = {"docs": {"tasks": ["docs_a", "docs_b"], "weight_by_size": False}}
    settings = FitSettings(forms=["log_linear"], bootstrap=50, micro_anneal_budget=1,
                           suites={"pair": ["docs_b", "docs_c"]}, groups=groups)
    analysis = analyse(table, settings)
    assert analysis.grouped == {"docs_a", "docs_b"}
    assert set(analysis.decisions["task"]) == {"docs", "docs_a", "docs_b", "docs_c", "pair"}
    figures = analysis.figures(table)
    drawn = figures["curves.png"].data
    assert set(drawn["panel"]) == {"docs · bpb", "docs_c · bpb", "pair · bpb"}
    assert (drawn.groupby("panel").size() == 3 * 7).all()  # every annealed cell's point, suites' too
    base_line = figures["curves.png"].layers[-1].geom.data  # the dashed base line
    assert set(base_line["task"]) == {"docs", "docs_c", "pair"}
    assert set(figures["ranking.png"].data["panel"]) == {"docs · bpb", "docs_c · bpb", "pair · bpb"}

    table.to_csv(tmp_path / "metrics.csv", index=False)
    write_analysis(analysis, table, tmp_path / "fit")
    (tmp_path / "task_groups.json").write_text(json.dumps(groups))
    render_report(tmp_path / "fit", tmp_path / "metrics.csv", tmp_path / "report.html",
                  groups_path=tmp_path / "task_groups.json")
    page = (tmp_path / "report.html").read_text()
    summary = page[page.index("<h2>Summary</h2>"):page.index("<h2>Scaling curves</h2>")]
    assert "<td>docs</td>" in summary and "<td>pair</td>" in summary and "<td>docs_a</td>" not in summary
    assert "2 tasks of lm-eval groups are summarised" in summary
    assert "<td>docs_a</td>" in page[page.index("<h2>Fits</h2>"):]


def test_a_figure_of_many_panels_keeps_their_size_and_is_saved(tmp_path):
    """57 panels (mmlu's subjects, listed one by one) make a figure 34.75 inches tall, past plotnine's default
    limit of 25, which refused to save it and failed the fit."""
    from plotnine import theme

    from annealscope.fit.figures import message_figure, panels_height, save_figure

    assert panels_height(57) == panels_height(3) + 18 * 1.75 > 25
    save_figure(message_figure("tall") + theme(figure_size=(12, panels_height(57))), tmp_path / "tall.png")
    assert (tmp_path / "tall.png").stat().st_size > 0
