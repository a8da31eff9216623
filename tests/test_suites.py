"""Suites: several tasks fitted as one panel, the mean of their values, with a bootstrap that keeps the item
draws paired; checked on tasks of very different sizes, where pooling their items would answer otherwise."""

import subprocess

import numpy as np
import pandas as pd
import pytest

from annealscope.fit.analysis import analyse
from annealscope.fit.backtest import backtest
from annealscope.fit.curves import FitSettings
from annealscope.fit.resample import replicate_values
from annealscope.fit.suites import with_suites

BUDGETS = (1, 2, 4, 8, 16)
SIZES = {"small": 100, "large": 2000}  # items per task


def scored(accuracy: dict, rng: np.random.Generator, failed=()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Metric rows and per-item results of multiple-choice tasks: accuracy[source][task](budget) is the chance
    that an item is answered right, around a difficulty per item that every source shares (paired items); a
    (source, budget, task) in `failed` has no row, as when the task failed there."""
    difficulty = {task: rng.uniform(-0.2, 0.2, size) for task, size in SIZES.items()}
    rows, items = [], []
    for source, tasks in accuracy.items():
        for budget in BUDGETS:
            for task, chance in tasks.items():
                if (source, budget, task) in failed:
                    continue
                correct = (rng.uniform(size=SIZES[task]) < np.clip(chance(budget) + difficulty[task], 0, 1)) * 1.0
                items.append(pd.DataFrame({"source": source, "budget_tokens": budget, "seed": 0, "task": task,
                                           "metric": "acc", "item": np.arange(len(correct)), "value": correct}))
                rows.append({"source": source, "budget_tokens": budget, "seed": 0, "total_flops": budget * 1e12,
                             "task": task, "metric": "acc", "value": correct.mean(),
                             "stderr": correct.std() / np.sqrt(len(correct)), "n_items": len(correct)})
    return pd.DataFrame(rows), pd.concat(items, ignore_index=True)


def rising(start: float, gain: float):
    return lambda budget: start + gain * np.log2(budget)


def test_a_suite_row_is_the_mean_of_its_tasks_in_each_cell_that_scored_them_all():
    table, _ = scored({"a": {"small": rising(0.4, 0.02), "large": rising(0.5, 0.01)},
                       "b": {"small": rising(0.3, 0.03), "large": rising(0.6, 0.0)}},
                      np.random.default_rng(0), failed={("b", 4, "small")})
    heldout = pd.DataFrame([{**table.iloc[0].to_dict(), "task": "docs", "metric": "bpb", "value": 1.2}])
    suited, _ = with_suites(pd.concat([table, heldout], ignore_index=True), {"domain": ["small", "large"]})
    suite = suited[suited["task"] == "domain"].set_index(["source", "budget_tokens"])
    assert set(suite["metric"]) == {"acc"} and len(suite) == 2 * len(BUDGETS) - 1  # b at 4 lacks a task
    assert ("b", 4) not in suite.index
    members = table.pivot_table(index=["source", "budget_tokens"], columns="task", values=["value", "stderr"])
    both = members.dropna()
    assert np.allclose(suite.loc[both.index, "value"], both["value"].mean(axis=1))
    assert np.allclose(suite.loc[both.index, "stderr"], np.hypot(both["stderr", "small"], both["stderr", "large"]) / 2)
    assert (suite.loc[both.index, "n_items"] == sum(SIZES.values())).all()
    assert (suite.loc[both.index, "total_flops"] == [budget * 1e12 for _, budget in both.index]).all()


def test_a_suite_s_replicates_spread_as_its_mean_and_stay_paired_across_sources():
    """The suite's bootstrap spread matches √(se_small² + se_large²) / 2, which the small task dominates, and a
    twin source scored on the same items, a few more right, differs from it by far less than that spread."""
    rng = np.random.default_rng(1)
    table, items = scored({"a": {"small": rising(0.5, 0.0), "large": rising(0.5, 0.0)}}, rng)
    twin_items = items.copy()
    twin_items["source"] = "twin"
    twin_items.loc[twin_items.index[twin_items["value"] == 0][::20], "value"] = 1.0
    twin = twin_items.groupby(["source", "budget_tokens", "seed", "task", "metric"])["value"].agg(["mean", "std"])
    twin = twin.reset_index().rename(columns={"mean": "value"})
    twin["stderr"] = twin.pop("std") / np.sqrt(twin["task"].map(SIZES))
    twin["total_flops"], twin["n_items"] = twin["budget_tokens"] * 1e12, twin["task"].map(SIZES)
    table = pd.concat([table, twin[table.columns]], ignore_index=True)
    items = pd.concat([items, twin_items], ignore_index=True)
    replicates = replicate_values(table, items, 4000, np.random.default_rng(2))
    suited, replicates = with_suites(table, {"domain": ["small", "large"]}, replicates)
    suite = suited.index[suited["task"] == "domain"]
    expected = suited.loc[suite, "stderr"].to_numpy()
    assert np.allclose(replicates[suite].std(axis=1), expected, rtol=0.1)
    assert np.allclose(replicates[suite].mean(axis=1), suited.loc[suite, "value"], atol=3 * expected / np.sqrt(4000))
    first = suited.loc[suite, "source"].to_numpy() == "a"
    difference = replicates[suite[first]] - replicates[suite[~first]]
    assert (difference.std(axis=1) < 0.5 * expected[first]).all()  # unpaired: √2 times it


def test_the_suite_decides_by_the_mean_of_its_tasks_not_by_their_pooled_items():
    """On the small task `a` leads by 0.10, on the large one `b` by 0.04: the tasks' mean puts `a` ahead by 0.03
    at every budget, where pooling the 2,100 items would put `b` ahead. The suite names `a`, and the backtest
    observes the mean at each source's held-out budget."""
    table, items = scored({"a": {"small": rising(0.5, 0.03), "large": rising(0.4, 0.01)},
                           "b": {"small": rising(0.4, 0.03), "large": rising(0.44, 0.01)}},
                          np.random.default_rng(4))
    settings = FitSettings(forms=["log_linear"], bootstrap=300, target_flops=[16e12], micro_anneal_budget=1,
                           suites={"domain": ["small", "large"]})
    decisions = analyse(table, settings, items).decisions.set_index(["task", "kind", "total_flops"])
    assert decisions.loc[("domain", "fitted", 16e12), "best_source"] == "a"
    assert decisions.loc[("large", "fitted", 16e12), "best_source"] == "b"
    values, _ = backtest(table, settings, items)
    held = values[values["task"] == "domain"].set_index("source")
    last = table[table["budget_tokens"] == max(BUDGETS)].groupby("source")["value"].mean()
    assert np.allclose(held.loc[["a", "b"], "observed"], last.loc[["a", "b"]])
    assert held["predicted"].notna().all()


def test_a_pattern_stands_for_every_task_it_matches():
    table, _ = scored({"a": {"small": rising(0.4, 0.02), "large": rising(0.5, 0.01)}}, np.random.default_rng(0))
    named, _ = with_suites(table, {"domain": ["small", "large"]})
    matched, _ = with_suites(table, {"domain": ["*a*"]})  # small and large, as a group's subtasks by prefix
    pd.testing.assert_frame_equal(named, matched)


def test_an_lm_eval_group_weighted_by_size_is_the_items_mean_and_its_replicates_spread_as_that_mean():
    """A group that lm-eval weighs by size: its value is the mean over the 2,100 items, its standard error and its
    bootstrap spread that mean's, √(100² se_small² + 2000² se_large²) / 2100; a group the table cannot make a panel
    of is left out without a word, and a suite of fit.suites of a group's name takes its place."""
    rng = np.random.default_rng(6)
    table, items = scored({"a": {"small": rising(0.3, 0.0), "large": rising(0.7, 0.0)}}, rng)
    docs = table[table["task"] == "small"].assign(task="docs", metric="bpb")
    table = pd.concat([table, docs], ignore_index=True)
    groups = {"sized": {"tasks": ["small", "large"], "weight_by_size": True},
              "plain": {"tasks": ["small", "large", "absent"], "weight_by_size": False},
              "apart": {"tasks": ["small", "docs"], "weight_by_size": True},  # no metric in common
              "alone": {"tasks": ["large", "absent"], "weight_by_size": True}}
    replicates = replicate_values(table, pd.concat([items, items[items["task"] == "small"].assign(
        task="docs", metric="bpb")]), 4000, np.random.default_rng(7))
    suited, replicates = with_suites(table, {}, replicates, groups)
    assert set(suited["task"]) - set(table["task"]) == {"sized", "plain"}
    rows = suited.set_index(["task", "budget_tokens"]).sort_index()
    small, large = rows.loc["small"], rows.loc["large"]
    assert np.allclose(rows.loc["sized", "value"], (100 * small["value"] + 2000 * large["value"]) / 2100)
    assert np.allclose(rows.loc["plain", "value"], (small["value"] + large["value"]) / 2)
    expected = np.hypot(100 * small["stderr"], 2000 * large["stderr"]) / 2100
    assert np.allclose(rows.loc["sized", "stderr"], expected)
    spread = replicates[suited.index[suited["task"] == "sized"]].std(axis=1)
    assert np.allclose(spread, expected, rtol=0.1)
    mine, _ = with_suites(table, {"sized": ["small", "large"]}, groups=groups)
    assert np.allclose(mine.loc[mine["task"] == "sized", "value"], (small["value"] + large["value"]).to_numpy() / 2)


@pytest.mark.parametrize(("suites", "message"), [
    ({"small": ["small", "large"]}, "fit.suites.small: the table has a task of that name"),
    ({"domain": ["small", "larg"]}, r"fit.suites.domain: the table has no task \['larg'\]; its tasks are"),
    ({"domain": ["small", "z*"]}, r"fit.suites.domain: the table has no task \['z\*'\]"),
    ({"domain": ["s*"]}, r"fit.suites.domain: \['s\*'\] is the one task \['small'\]"),
    ({"domain": ["small", "docs"]}, "fit.suites.domain: its tasks share no metric of the fit"),
])
def test_a_suite_the_table_cannot_give_is_refused_naming_it(suites, message):
    table, _ = scored({"a": {"small": rising(0.4, 0.02), "large": rising(0.5, 0.01)}}, np.random.default_rng(0))
    docs = table[table["task"] == "small"].assign(task="docs", metric="bpb")
    with pytest.raises(ValueError, match=message):
        with_suites(pd.concat([table, docs], ignore_index=True), suites)


def test_the_backtest_command_takes_a_suite_and_names_a_task_it_lacks(tmp_path):
    table, items = scored({"a": {"small": rising(0.4, 0.02), "large": rising(0.5, 0.01)},
                           "b": {"small": rising(0.3, 0.03), "large": rising(0.6, 0.0)}}, np.random.default_rng(5))
    table.to_csv(tmp_path / "metrics.csv", index=False)
    items.to_parquet(tmp_path / "items.parquet")
    command = ["annealscope", "backtest", str(tmp_path / "metrics.csv"), "--items", str(tmp_path / "items.parquet"),
               "--bootstrap", "50", "--out", str(tmp_path / "backtest")]
    subprocess.run([*command, "--suite", "domain=small,large"], check=True, capture_output=True)
    values = pd.read_csv(tmp_path / "backtest" / "backtest.csv")
    assert sorted(set(values["task"])) == ["domain", "large", "small"]
    refused = subprocess.run([*command, "--suite", "domain=small,medium"], capture_output=True, text=True)
    assert refused.returncode != 0 and "fit.suites.domain: the table has no task ['medium']" in refused.stderr


def test_the_fit_and_report_commands_take_the_groups_collect_wrote(tmp_path):
    """`annealscope fit --groups task_groups.json` fits the group's panel by the items' mean, and `annealscope
    report --groups` summarises its tasks by it, as the workflow's rules call them."""
    import json

    table, items = scored({"a": {"small": rising(0.4, 0.02), "large": rising(0.5, 0.01)},
                           "b": {"small": rising(0.3, 0.03), "large": rising(0.6, 0.0)}}, np.random.default_rng(8))
    table.to_csv(tmp_path / "metrics.csv", index=False)
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "task_groups.json").write_text(json.dumps({"both": {"tasks": ["small", "large"],
                                                                    "weight_by_size": True}}))
    groups = ["--groups", str(tmp_path / "task_groups.json")]
    subprocess.run(["annealscope", "fit", str(tmp_path / "metrics.csv"), "--items", str(tmp_path / "items.parquet"),
                    "--bootstrap", "50", "--out", str(tmp_path / "fit"), *groups], check=True, capture_output=True)
    fits = pd.read_csv(tmp_path / "fit" / "fits.csv")
    assert set(fits["task"]) == {"small", "large", "both"}
    subprocess.run(["annealscope", "report", "--fit", str(tmp_path / "fit"), "--metrics", str(tmp_path / "metrics.csv"),
                    "--out", str(tmp_path / "report.html"), *groups], check=True, capture_output=True)
    assert "2 tasks of lm-eval groups are summarised" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize(("content", "message"), [
    ('[["small", "large"]]', "not a task_groups.json"),
    ('{"both": {"tasks": "small,large", "weight_by_size": true}}', "group 'both' is"),
    ('{"both": {"tasks": ["small", "large"]}}', "group 'both' is"),
])
def test_a_groups_file_of_another_shape_is_refused_naming_the_group(tmp_path, content, message):
    from annealscope.core.groups import read_groups

    (tmp_path / "task_groups.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        read_groups(tmp_path / "task_groups.json")
