from itertools import pairwise

import pytest

from annealscope.core.schedule import learning_rate


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


@pytest.mark.parametrize("kind", ["linear_decay", "cosine", "wsd"])
def test_every_decaying_schedule_is_monotone_after_warmup_and_ends_at_zero(kind):
    rates = [learning_rate(step, 100, 1.0, 5, kind) for step in range(100)]
    assert rates[4] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(later <= earlier + 1e-12 for earlier, later in pairwise(rates[4:]))


def test_cosine_is_half_way_at_the_middle_of_the_decay():
    assert learning_rate(49, 100, 1.0, 0, "cosine") == pytest.approx(0.5)


def test_wsd_holds_the_peak_then_cools_down_as_one_minus_sqrt():
    rates = [learning_rate(step, 100, 2.0, 5, "wsd", cooldown_fraction=0.2) for step in range(100)]
    assert rates[5:80] == [2.0] * 75
    assert rates[80] == pytest.approx(2.0 * (1 - (1 / 20) ** 0.5))
    assert rates[89] == pytest.approx(2.0 * (1 - (10 / 20) ** 0.5))
