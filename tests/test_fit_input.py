"""`annealscope fit` refuses or flags what would make its answer wrong, and writes its folder whole or not at all."""

import numpy as np
import pandas as pd
import pytest

from annealscope.cli import main
from annealscope.core.layout import FIT_OUTPUTS
from annealscope.core.tables import read_fit_input


def table(budgets=(1000, 2000, 4000, 8000), stderr=0.01) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"source": source, "budget_tokens": budget, "seed": 0, "total_flops": budget * 1e9,
                          "task": "t", "metric": "brier", "stderr": stderr,
                          "value": 0.6 + slope * np.log(budget) + rng.normal(0, 0.005)}
                         for source, slope in (("a", -0.03), ("b", -0.01)) for budget in budgets])


def fit(frame: pd.DataFrame, tmp_path, *options: str) -> None:
    frame.to_csv(tmp_path / "metrics.csv", index=False)
    main(["fit", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "fit"), "--bootstrap", "20", *options])


@pytest.mark.parametrize("bad", [-0.01, np.nan])
def test_a_negative_or_missing_stderr_is_refused_naming_the_rows(tmp_path, capsys, bad):
    frame = table()
    frame.loc[2, "stderr"] = bad
    with pytest.raises(SystemExit):
        fit(frame, tmp_path)
    error = capsys.readouterr().err
    assert "1 rows whose stderr is negative or not a number, e.g. source=a budget_tokens=4000" in error
    assert not (tmp_path / "fit").exists()


@pytest.mark.parametrize("options", [(), ("--seeds", "0")])  # seeds are chosen from a checked table
@pytest.mark.parametrize("column", ["value", "total_flops", "seed"])
def test_text_in_a_number_column_is_refused_naming_the_column_and_row(tmp_path, capsys, column, options):
    frame = table().astype({column: object})
    frame.loc[5, column] = "1e9 (est.)"
    with pytest.raises(SystemExit):
        fit(frame, tmp_path, *options)
    error = capsys.readouterr().err
    assert f"column {column} has 1 entries that are not numbers, e.g. '1e9 (est.)' at source=b budget_tokens=2000" \
        in error
    assert not (tmp_path / "fit").exists()


def test_zero_stderr_everywhere_is_flagged_on_the_console(tmp_path, capsys):
    fit(table(stderr=0.0), tmp_path)
    assert "8 row(s) have stderr 0 and no per-item results to resample (every row" in capsys.readouterr().err


def test_a_repeated_row_and_two_values_for_one_row_are_refused(tmp_path, capsys):
    frame = table()
    with pytest.raises(SystemExit):
        fit(pd.concat([frame, frame.iloc[[0]]]), tmp_path)
    assert "2 rows sharing their (source, budget_tokens, seed, task, metric) twice" in capsys.readouterr().err
    other = frame.iloc[[0]].assign(value=0.9)
    with pytest.raises(SystemExit):
        fit(pd.concat([frame, other]), tmp_path)
    assert "with different values, e.g. source=a budget_tokens=1000" in capsys.readouterr().err


def test_one_budget_gets_a_status_per_curve_and_every_output(tmp_path):
    fit(table(budgets=(1000,)), tmp_path)
    assert sorted(path.name for path in (tmp_path / "fit").iterdir()) == sorted(FIT_OUTPUTS)
    status = pd.read_csv(tmp_path / "fit" / "fits.csv")["status"]
    assert status.str.contains("a curve needs at least 2").all()


def test_a_header_only_table_is_refused_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        fit(table().iloc[:0], tmp_path)
    assert "metrics table has no rows" in capsys.readouterr().err
    assert not (tmp_path / "fit").exists()


@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_a_table_of_the_base_model_alone_is_refused_and_writes_nothing(tmp_path, capsys, command):
    table().assign(source="base", budget_tokens=0).drop_duplicates(["task", "metric"]).to_csv(
        tmp_path / "metrics.csv", index=False)
    with pytest.raises(SystemExit):
        main([command, str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "out")])
    assert "metrics table has only the base model's rows (source 'base')" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_output_folder_is_replaced_whole_and_dropped_values_are_said(tmp_path, capsys):
    (tmp_path / "fit").mkdir()
    (tmp_path / "fit" / "stale.csv").write_text("from an older fit\n")
    frame = table()
    frame.loc[0, "value"] = np.nan
    fit(frame, tmp_path)
    assert sorted(path.name for path in (tmp_path / "fit").iterdir()) == sorted(FIT_OUTPUTS)
    assert "1 row(s) with a non-finite value are not fitted: source=a budget_tokens=1000" in capsys.readouterr().err
    assert not list(tmp_path.glob(".fit.*"))  # no temporary folder left behind


def test_seeds_selects_their_runs_and_keeps_the_base_and_an_absent_seed_is_refused(tmp_path, capsys):
    base = pd.DataFrame([{**table().iloc[0].to_dict(), "source": "base", "budget_tokens": 0, "total_flops": 0.0}])
    two = pd.concat([base, table(), table().assign(seed=1, value=lambda frame: frame["value"] + 1)])
    two.to_csv(tmp_path / "metrics.csv", index=False)
    items = pd.DataFrame({"source": ["base", "a", "a"], "budget_tokens": [0, 1000, 1000], "seed": [0, 0, 1],
                          "task": "t", "metric": "brier", "item": 0, "value": 0.5})
    items.to_parquet(tmp_path / "items.parquet")
    metrics, kept = read_fit_input(tmp_path / "metrics.csv", tmp_path / "items.parquet", [1])
    assert set(metrics["seed"]) == {0, 1} and (metrics["source"] == "base").sum() == 1
    assert len(metrics) == 1 + len(table()) and metrics.loc[metrics["source"] != "base", "value"].min() > 1
    assert kept[["source", "seed"]].values.tolist() == [["base", 0], ["a", 1]]
    with pytest.raises(SystemExit):
        main(["fit", str(tmp_path / "metrics.csv"), "--out", str(tmp_path / "fit"), "--seeds", "1", "5"])
    assert "--seeds [5]" in capsys.readouterr().err and not (tmp_path / "fit").exists()


def test_options_out_of_range_are_refused_naming_the_option_or_key(tmp_path, capsys):
    table().to_csv(tmp_path / "metrics.csv", index=False)
    metrics, out = str(tmp_path / "metrics.csv"), str(tmp_path / "out")
    for argv, message in [
            (["fit", metrics, "--out", out, "--target-flops", "1e20", "-5"],
             "fit.target_flops.1: -5.0 is less than or equal to the minimum of 0"),
            (["fit", metrics, "--out", out, "--forms", "cubic"], "fit.forms.0: 'cubic' is not one of"),
            (["backtest", metrics, "--out", out, "--micro-anneal-budget", "-1"],
             "argument --micro-anneal-budget: -1 is not above 0"),
            (["suggest", metrics, "--budget", "nan"], "argument --budget: nan is not above 0"),
            (["suggest", metrics, "--budget", "1e13", "--count", "0"], "argument --count: 0 is not above 0")]:
        with pytest.raises(SystemExit):
            main(argv)
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "out").exists()


def test_a_decision_below_every_cell_is_said_to_be_extrapolated(tmp_path, capsys):
    table().to_csv(tmp_path / "metrics.csv", index=False)
    main(["suggest", str(tmp_path / "metrics.csv"), "--budget", "1e6", "--bootstrap", "20", "--count", "1"])
    assert "1e+06 FLOPs is below the smallest compute any cell ran at (1e+12)" in capsys.readouterr().out
    main(["suggest", str(tmp_path / "metrics.csv"), "--budget", "1e13", "--bootstrap", "20", "--count", "1"])
    assert "below the smallest compute" not in capsys.readouterr().out
