import numpy as np
import pytest

from annealscope.core.sampling import REPLAY, SOURCE, epoch_permutations, training_order


def test_plan_mixes_replay_at_the_fraction_and_fills_whole_batches():
    order = training_order(source_budget_tokens=1000, replay_fraction=0.5, source_windows=100, replay_windows=100,
                     seq_len=10, global_batch=16, seed=0)
    assert order.source_tokens == 1000
    assert len(order.order) % 16 == 0
    assert order.count(REPLAY) >= order.count(SOURCE)
    assert order.count(REPLAY) - order.count(SOURCE) < 16


def test_source_repeats_only_when_the_budget_exceeds_it():
    order = training_order(source_budget_tokens=250, replay_fraction=0.0, source_windows=10, replay_windows=0,
                     seq_len=10, global_batch=5, seed=1)
    assert order.unique_source_tokens == 100
    assert order.epochs == pytest.approx(2.5)
    small = training_order(source_budget_tokens=50, replay_fraction=0.0, source_windows=10, replay_windows=0,
                      seq_len=10, global_batch=5, seed=1)
    assert small.unique_source_tokens == small.source_tokens == 50


def test_plan_is_deterministic_per_seed_and_differs_across_seeds():
    arguments = dict(source_budget_tokens=640, replay_fraction=0.3, source_windows=50, replay_windows=80,
                     seq_len=8, global_batch=8)
    assert np.array_equal(training_order(**arguments, seed=3).order, training_order(**arguments, seed=3).order)
    assert not np.array_equal(training_order(**arguments, seed=3).order, training_order(**arguments, seed=4).order)


def test_ranks_split_each_global_batch_without_overlap():
    order = training_order(source_budget_tokens=320, replay_fraction=0.5, source_windows=40, replay_windows=40,
                     seq_len=8, global_batch=8, seed=0)
    shares = [order.batch(0, rank, 2) for rank in range(2)]
    assert np.array_equal(np.concatenate(shares), order.order[:8])


def test_epoch_permutations_cover_every_window_before_repeating():
    indices = epoch_permutations(7, 7, np.random.default_rng(0))
    assert sorted(indices.tolist()) == list(range(7))
