"""Branched warmup-stable-decay grids without training: the data stream, branch points, config checks and
the compute a branched grid is charged and costs."""

import copy
import math

import numpy as np
import pandas as pd
import pytest

from annealscope.core.attribution import as_run, attribution_table
from annealscope.core.branches import branch_point
from annealscope.core.config import ConfigError, check_config, validate_schema
from annealscope.core.grid import planned_as_run, planned_cells
from annealscope.core.sampling import REPLAY, SOURCE, stream_order, stream_steps
from annealscope.core.schedule import learning_rate
from annealscope.core.settings import RuleSettings


def test_a_longer_stream_starts_with_the_shorter_one():
    short = stream_order(10, 0.5, 37, 23, 64, 8, seed=3)
    long = stream_order(25, 0.5, 37, 23, 64, 8, seed=3)
    assert np.array_equal(long.order[: len(short.order)], short.order)
    assert not np.array_equal(stream_order(10, 0.5, 37, 23, 64, 8, seed=4).order, short.order)


def test_every_prefix_of_the_stream_holds_replay_at_the_fraction_and_epochs_are_whole():
    order = stream_order(40, 0.25, 50, 1000, 64, 8, seed=0)
    kinds = order.order[:, 0]
    for rows in (8, 80, 320):
        assert abs((kinds[:rows] == REPLAY).mean() - 0.25) <= 1 / rows
    source = order.order[kinds == SOURCE, 1]
    assert sorted(source[:50]) == list(range(50))  # a full permutation before any window repeats
    assert order.source_tokens_before(10) == stream_source_tokens(10, 0.25, 64, 8)


def stream_source_tokens(steps: int, replay_fraction: float, seq_len: int, global_batch: int) -> int:
    """Source tokens in the first `steps` steps of a stream: every row not interleaved as replay."""
    rows = steps * global_batch
    return (rows - math.floor(rows * replay_fraction)) * seq_len


def test_stream_steps_are_the_fewest_that_reach_the_budget():
    for budget, fraction in ((4096, 0.5), (20000, 0.5), (20000, 0.0), (12345, 0.3)):
        steps = stream_steps(budget, fraction, 128, 16)
        assert stream_source_tokens(steps, fraction, 128, 16) >= budget
        assert stream_source_tokens(steps - 1, fraction, 128, 16) < budget
    rng = np.random.default_rng(0)  # and at every size, including 7B-scale budgets planned in a dry run
    for budget, fraction, seq_len, batch in zip(rng.integers(1, 10**11, 300), rng.uniform(0, 0.95, 300),
                                                 rng.choice([1, 7, 128, 4096], 300), rng.integers(1, 512, 300),
                                                 strict=True):
        steps = stream_steps(int(budget), fraction, int(seq_len), int(batch))
        assert stream_source_tokens(steps, fraction, seq_len, batch) >= budget
        assert steps == 1 or stream_source_tokens(steps - 1, fraction, seq_len, batch) < budget


def test_a_cooldown_starts_where_the_wsd_schedule_leaves_the_peak():
    branch = branch_point(160000, 0.5, 128, 16, 0.2)
    total = branch.total_steps
    assert learning_rate(branch.step - 1, total, 1.0, 5, "wsd", 0.2) == 1.0
    assert learning_rate(branch.step, total, 1.0, 5, "wsd", 0.2) < 1.0
    assert learning_rate(branch.step - 1, total, 1.0, 5, "constant") == 1.0  # the stable phase's LR there


def branched(demo_config: dict, **anneal) -> dict:
    config = copy.deepcopy(demo_config)
    config["grid"]["schedule"] = "branched-wsd"
    config["anneal"] = {**config.get("anneal", {}), **anneal}
    validate_schema(config)
    return config


def test_the_config_resolves_the_schedule_and_refuses_what_cannot_branch(demo_config):
    config = branched(demo_config)
    check_config(config)
    assert config["anneal"]["schedule"] == "wsd"
    with pytest.raises(ConfigError, match=r"anneal\.schedule: cosine cannot branch"):
        check_config(branched(demo_config, schedule="cosine"))
    with pytest.raises(ConfigError, match=r"budget 5000 cools down from step \d+ of \d+, before anneal.warmup_steps"):
        check_config(branched(demo_config, warmup_steps=40))
    independent = copy.deepcopy(demo_config)
    validate_schema(independent)
    check_config(independent)
    assert independent["anneal"]["schedule"] == "linear_decay"


def test_the_demo_grid_as_run_costs_under_two_thirds_of_independent_anneals(demo_config):
    config = branched(demo_config)
    check_config(config)
    rows = planned_cells(config)
    flops, _ = planned_as_run(rows)
    independent = sum(row.train_flops for row in rows)
    assert flops / independent < 0.65
    largest = {(row.cell.source, row.cell.seed): row.shared_flops for row in rows if row.cell.budget == 80000}
    own = sum(row.train_flops - row.shared_flops for row in rows)
    assert flops == pytest.approx(own + sum(largest.values()))


def test_extra_cells_branch_only_their_own_phase(demo_config):
    config = branched(demo_config)
    config["grid"]["extra_cells"] = [{"source": "sympy_manual", "budget": 160000, "seed": 0},
                                     {"source": "library_docs", "budget": 10000, "seed": 2}]
    check_config(config)
    phases = RuleSettings(config).phases
    assert sorted(phases["sympy_manual", 0]) == [5000, 10000, 20000, 40000, 80000, 160000]
    assert sorted(phases["library_docs", 0]) == [5000, 10000, 20000, 40000, 80000]
    assert phases["library_docs", 2] == [10000]


def test_attribution_counts_each_shared_prefix_once():
    metrics = pd.DataFrame({"source": ["a", "a", "a", "b", "base"], "budget_tokens": [1, 2, 4, 1, 0],
                            "seed": [0, 0, 0, 0, 0], "train_flops": [10.0, 20.0, 40.0, 10.0, 0.0],
                            "shared_flops": [8.0, 16.0, 32.0, 0.0, 0.0]})
    assert as_run(metrics[metrics["source"] == "a"], "train_flops", "shared_flops") == pytest.approx(2 + 4 + 8 + 32)
    table = attribution_table(pd.concat([metrics, metrics.assign(task="other")])).set_index("source")
    assert table.loc["grid", "cells"] == 4
    assert table.loc["grid", "train_flops_as_run"] == pytest.approx(46 + 10)
    assert table.loc["b", "as_run_over_charged"] == 1.0
    retrained = metrics.assign(retrained_flops=[0.0, 16.0, 0.0, None, 0.0])  # a's second cooldown, pruned branch
    table = attribution_table(retrained).set_index("source")
    assert table.loc["a", "train_flops_as_run"] == pytest.approx(46 + 16)
    assert table.loc["grid", "train_flops_as_run"] == pytest.approx(46 + 16 + 10)
    assert table.loc["a", "shared_prefix_flops"] == 32
