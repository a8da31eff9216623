import math

import pytest

from annealscope.scoring import aggregate, item_scores


def test_item_scores_from_log_likelihoods():
    scores = item_scores([math.log(0.7), math.log(0.2), math.log(0.1)], gold=0)
    assert scores["acc"] == 1.0
    assert scores["p_gold"] == pytest.approx(0.7)
    assert scores["brier"] == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)
    assert scores["nll"] == pytest.approx(-math.log(0.7))


def test_wrong_argmax_scores_zero_accuracy_and_a_high_brier():
    scores = item_scores([-5.0, -0.1], gold=0)
    assert scores["acc"] == 0.0
    assert scores["brier"] > 1.0


def test_aggregate_gives_mean_and_standard_error():
    summary = aggregate([{"acc": 1.0, "brier": 0.0, "nll": 1.0}, {"acc": 0.0, "brier": 2.0, "nll": 3.0}])
    assert summary["acc"]["value"] == 0.5
    assert summary["nll"]["stderr"] == pytest.approx(1.0)
    assert summary["brier"]["n_items"] == 2
