import math

import numpy as np
import pytest

from annealscope.evaluate.aggregation import aggregate
from annealscope.evaluate.scoring import bits_per_byte, choice_scores, gold_scores


def test_choice_scores_from_log_likelihoods():
    scores = choice_scores([math.log(0.7), math.log(0.2), math.log(0.1)], gold=0, gold_tokens=2, gold_bytes=5)
    assert scores["acc"] == 1.0
    assert scores["p_gold"] == pytest.approx(0.7)
    assert scores["brier"] == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)
    assert scores["nll"] == pytest.approx(-math.log(0.7))
    assert scores["nll_token"] == pytest.approx(-math.log(0.7) / 2)
    assert scores["nll_byte"] == pytest.approx(-math.log(0.7) / 5)


def test_wrong_argmax_scores_zero_accuracy_and_a_high_brier():
    scores = choice_scores([-5.0, -0.1], gold=0, gold_tokens=1, gold_bytes=1)
    assert scores["acc"] == 0.0
    assert scores["brier"] > 1.0


def test_gold_and_held_out_scores_normalise_by_length():
    assert gold_scores(-6.0, tokens=3, bytes_=12) == {"nll": 6.0, "nll_token": 2.0, "nll_byte": 0.5}
    assert bits_per_byte(-8 * math.log(2), 4) == pytest.approx(2.0)


def test_bootstrap_standard_error_matches_the_analytic_one():
    rng = np.random.default_rng(1)
    values = rng.normal(size=400)
    summary = aggregate([{"nll": value} for value in values])
    assert summary["nll"]["value"] == pytest.approx(values.mean())
    assert summary["nll"]["stderr"] == pytest.approx(values.std(ddof=1) / 20, rel=0.1)
    assert summary["nll"]["n_items"] == 400
    assert math.isnan(aggregate([{"acc": 1.0}])["acc"]["stderr"])
