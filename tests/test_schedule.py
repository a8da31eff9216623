from itertools import pairwise

import pytest

from annealscope.schedule import learning_rate


def test_linear_decay_warms_up_then_reaches_zero_at_the_last_step():
    rates = [learning_rate(step, 10, 1.0, 2, "linear_decay") for step in range(10)]
    assert rates[0] == pytest.approx(0.5)
    assert rates[1] == pytest.approx(1.0)
    assert rates[-1] == 0.0
    assert all(later <= earlier for earlier, later in pairwise(rates[1:]))


def test_constant_schedule_holds_the_peak_after_warmup():
    assert [learning_rate(step, 5, 2.0, 1, "constant") for step in range(5)] == [2.0] * 5


def test_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(0, 10, 1.0, 0, "cosine-ish")
