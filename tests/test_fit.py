import json

import numpy as np
import pandas as pd
import pytest

from annealscope.fit import FitSettings, fit_table


def synthetic_table(curves: dict, budgets=(1, 2, 4, 8, 16), noise=0.002, seed=0) -> pd.DataFrame:
    """Metric rows for sources with known saturating curves y = E + A (C/1e12)^-alpha (lower is better)."""
    rng = np.random.default_rng(seed)
    rows = []
    for source, (asymptote, scale, exponent, flops_per_token) in curves.items():
        for budget in budgets:
            flops = budget * 1e12 * flops_per_token
            value = asymptote + scale * (flops / 1e12) ** -exponent + rng.normal(0, noise)
            rows.append({"source": source, "budget_tokens": budget, "seed": 0, "total_flops": flops,
                         "task": "t", "metric": "nll", "value": value, "stderr": noise})
    return pd.DataFrame(rows)


def test_fit_recovers_known_exponents_and_picks_the_best_source():
    table = synthetic_table({"steep": (1.0, 2.0, 0.6, 1.0), "flat": (1.5, 0.5, 0.3, 1.0)})
    result = fit_table(table, FitSettings(forms=["saturating_power_law"], bootstrap=50, micro_anneal_budget=1))
    fits = result.fits.set_index("source")
    assert (fits["status"] == "ok").all()
    steep = json.loads(fits.loc["steep", "params"])
    assert steep["alpha"] == pytest.approx(0.6, abs=0.1)
    fitted = result.decisions[result.decisions["kind"] == "fitted"]
    assert fitted.iloc[-1]["best_source"] == "steep"


def test_micro_annealing_and_the_fitted_ranking_can_disagree():
    # "flat" wins at the smallest budget, "steep" at the largest: the ranking flips.
    table = synthetic_table({"steep": (1.0, 3.0, 0.8, 1.0), "flat": (1.6, 0.5, 0.3, 1.0)})
    result = fit_table(table, FitSettings(forms=["saturating_power_law"], bootstrap=20, micro_anneal_budget=1))
    decisions = result.decisions.set_index("kind")
    assert decisions.loc["micro_anneal", "best_source"] == "flat"
    assert decisions.loc["fitted_at_largest", "best_source"] == "steep"
    assert decisions.loc["fitted_at_largest", "kendall_tau_vs_micro"] == pytest.approx(-1.0)


def test_micro_anneal_budget_defaults_to_the_smallest_budget():
    table = synthetic_table({"steep": (1.0, 3.0, 0.8, 1.0), "flat": (1.6, 0.5, 0.3, 1.0)})
    decisions = fit_table(table, FitSettings(forms=["saturating_power_law"], bootstrap=5)).decisions
    assert decisions.set_index("kind").loc["micro_anneal", "best_source"] == "flat"


def test_a_source_with_too_few_points_says_why_and_the_rest_still_fit():
    table = synthetic_table({"good": (1.0, 2.0, 0.5, 1.0)})
    sparse = synthetic_table({"sparse": (1.0, 1.0, 0.5, 2.0)}, budgets=(1, 2))
    result = fit_table(pd.concat([table, sparse]), FitSettings(forms=["saturating_power_law"], bootstrap=10))
    fits = result.fits.set_index("source")
    assert fits.loc["good", "status"] == "ok"
    assert "too few points" in fits.loc["sparse", "status"]
    assert set(result.predictions["source"]) == {"good"}


def test_intervals_bracket_the_prediction_and_widen_when_extrapolating():
    table = synthetic_table({"a": (1.0, 2.0, 0.5, 1.0)}, noise=0.02)
    result = fit_table(table, FitSettings(forms=["saturating_power_law"], bootstrap=100, target_flops=[1e15]))
    predictions = result.predictions
    assert (predictions["lower"] <= predictions["predicted"] + 1e-9).all()
    assert (predictions["upper"] >= predictions["predicted"] - 1e-9).all()
    width = (predictions["upper"] - predictions["lower"]).to_numpy()
    assert predictions["extrapolated"].iloc[-1]
    assert width[-1] > width[len(width) // 2]


def test_model_choice_prefers_the_form_that_extrapolates_better():
    table = synthetic_table({"a": (1.0, 2.0, 0.7, 1.0)}, budgets=(1, 2, 4, 8, 16, 32))
    result = fit_table(table, FitSettings(forms=["saturating_power_law", "log_linear"], bootstrap=5))
    row = result.fits.iloc[0]
    assert row["form"] == "saturating_power_law"
    assert "log_linear" in row["forms_tried"]


def test_unknown_metric_direction_is_a_clear_error():
    table = synthetic_table({"a": (1.0, 2.0, 0.5, 1.0)})
    table["metric"] = "mystery"
    with pytest.raises(ValueError, match=r"fit\.higher_is_better"):
        fit_table(table, FitSettings(bootstrap=0))


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="total_flops"):
        fit_table(pd.DataFrame({"source": ["a"]}), FitSettings())


def test_a_metric_without_variance_or_with_nans_is_reported_not_fitted():
    rows = [{"source": "flat", "curation": "given", "budget_tokens": budget, "seed": 0, "train_tokens": budget,
             "unique_tokens": budget, "epochs": 1.0, "train_flops": 6e6 * budget, "acquisition_flops": 0.0,
             "total_flops": 6e6 * budget, "task": "t", "metric": "exact_match", "value": 0.0, "stderr": 0.0,
             "n_items": 100, "checkpoint": "x"} for budget in (1000, 2000, 4000, 8000)]
    rows += [{**row, "source": "holey", "value": value, "stderr": 0.01}
             for row, value in zip(rows, [0.1, float("nan"), 0.2, 0.25], strict=True)]
    result = fit_table(pd.DataFrame(rows), FitSettings(bootstrap=5))
    statuses = dict(zip(result.fits["source"], result.fits["status"], strict=True))
    assert statuses["flat"].startswith("no variance: every value is 0")
    holey = result.fits[result.fits["source"] == "holey"].iloc[0]
    assert holey["n_points"] == 3 and "1 non-finite value(s) dropped" in holey["forms_tried"]


def test_pairwise_probabilities_follow_the_curves_and_are_complementary():
    rows = []
    for source, level in (("strong", 0.6), ("weak", 0.3)):
        for budget in (1000, 2000, 4000, 8000):
            rows.append({"source": source, "curation": "given", "budget_tokens": budget, "seed": 0,
                         "train_tokens": budget, "unique_tokens": budget, "epochs": 1.0, "train_flops": 6e6 * budget,
                         "acquisition_flops": 0.0, "total_flops": 6e6 * budget, "task": "t", "metric": "acc",
                         "value": level + 0.02 * np.log2(budget / 1000), "stderr": 0.01, "n_items": 500,
                         "checkpoint": "x"})
    result = fit_table(pd.DataFrame(rows), FitSettings(bootstrap=50))
    pairs = result.pairwise
    assert set(pairs.columns) == {"task", "metric", "total_flops", "source_a", "source_b", "p_a_better"}
    strong_first = pairs["source_a"] == "strong"
    p_strong = np.where(strong_first, pairs["p_a_better"], 1 - pairs["p_a_better"])
    assert (p_strong > 0.95).all() and len(pairs) == len(set(pairs["total_flops"]))


def test_marginal_gain_is_positive_for_an_improving_curve_and_shrinks_with_compute():
    rows = [{"source": "s", "curation": "given", "budget_tokens": budget, "seed": 0, "train_tokens": budget,
             "unique_tokens": budget, "epochs": 1.0, "train_flops": 6e6 * budget, "acquisition_flops": 0.0,
             "total_flops": 6e6 * budget, "task": "t", "metric": "nll", "value": 2.0 + 5.0 * (budget / 1000) ** -0.5,
             "stderr": 0.01, "n_items": 500, "checkpoint": "x"} for budget in (1000, 2000, 4000, 8000, 16000)]
    predictions = fit_table(pd.DataFrame(rows), FitSettings(bootstrap=5)).predictions.sort_values("total_flops")
    gains = predictions["gain_per_1e18_flops"].to_numpy()
    assert (gains > 0).all() and (np.diff(gains) < 0).all()
