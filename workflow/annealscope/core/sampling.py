"""The training order: which windows of the source and of replay data each step trains on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SOURCE, REPLAY = 0, 1


@dataclass(frozen=True)
class TrainingOrder:
    """Every sequence of a run, in training order, as (kind, window index) rows; deterministic per seed."""

    order: np.ndarray
    seq_len: int
    global_batch: int
    source_windows: int

    @property
    def steps(self) -> int:
        return len(self.order) // self.global_batch

    def count(self, kind: int) -> int:
        return int((self.order[:, 0] == kind).sum())

    @property
    def source_tokens(self) -> int:
        return self.count(SOURCE) * self.seq_len

    @property
    def replay_tokens(self) -> int:
        return self.count(REPLAY) * self.seq_len

    def source_tokens_before(self, step: int) -> int:
        """Source tokens trained on in the steps before `step`."""
        return int((self.order[:step * self.global_batch, 0] == SOURCE).sum()) * self.seq_len

    @property
    def unique_source_tokens(self) -> int:
        return len(np.unique(self.order[self.order[:, 0] == SOURCE, 1])) * self.seq_len

    @property
    def epochs(self) -> float:
        return self.count(SOURCE) / self.source_windows if self.source_windows else 0.0

    def batch(self, step: int, rank: int, world_size: int) -> np.ndarray:
        """The rows of `step` that `rank` trains on: a contiguous share of the global batch."""
        rows = self.order[step * self.global_batch:(step + 1) * self.global_batch]
        share = self.global_batch // world_size
        return rows[rank * share:(rank + 1) * share]


def epoch_permutations(available: int, needed: int, rng: np.random.Generator) -> np.ndarray:
    """`needed` window indices: whole fresh permutations of `available` windows, repeating only when needed."""
    if available <= 0:
        raise ValueError("the token array is shorter than one sequence")
    repeats = math.ceil(needed / available)
    return np.concatenate([rng.permutation(available) for _ in range(repeats)])[:needed]


class EpochLimitError(ValueError):
    """A budget would repeat the source more often than its `max_epochs` allows."""


def check_epochs(budget_tokens: int, unique_tokens: int, max_epochs: float | None, source: str = "the source") -> None:
    if max_epochs is not None and budget_tokens > max_epochs * unique_tokens:
        raise EpochLimitError(
            f"budget {budget_tokens:,} tokens needs {budget_tokens / unique_tokens:.2f} epochs of {source}'s "
            f"{unique_tokens:,} unique tokens, above sources.{source}.max_epochs = {max_epochs}; lower the "
            "budget, raise max_epochs or curate more data")


def training_order(source_budget_tokens: int, replay_fraction: float, source_windows: int, replay_windows: int,
              seq_len: int, global_batch: int, seed: int, max_epochs: float | None = None) -> TrainingOrder:
    """Plan a run of at least `source_budget_tokens` source tokens plus replay at `replay_fraction` of all.

    The source count is rounded up to whole sequences; replay (or, without replay, the source) fills
    the last global batch so every step is full and the tokens of each kind are exact. An order needing
    more than `max_epochs` passes over the source is refused.
    """
    if not 0 <= replay_fraction < 1:
        raise ValueError(f"replay fraction must be in [0, 1), got {replay_fraction}")
    rng = np.random.default_rng(seed)
    n_source = math.ceil(source_budget_tokens / seq_len)
    if replay_windows == 0 or replay_fraction == 0:
        n_source = math.ceil(n_source / global_batch) * global_batch
    check_epochs(n_source * seq_len, source_windows * seq_len, max_epochs)
    n_replay_wanted = round(n_source * replay_fraction / (1 - replay_fraction))
    total = math.ceil((n_source + n_replay_wanted) / global_batch) * global_batch
    n_replay = total - n_source
    source = np.stack([np.full(n_source, SOURCE), epoch_permutations(source_windows, n_source, rng)], axis=1)
    rows = [source]
    if n_replay:
        rows.append(np.stack([np.full(n_replay, REPLAY), epoch_permutations(replay_windows, n_replay, rng)], axis=1))
    order = np.concatenate(rows)
    order = order[rng.permutation(len(order))]
    return TrainingOrder(order=order, seq_len=seq_len, global_batch=global_batch, source_windows=source_windows)


def replay_rows(rows: int, replay_fraction: float) -> np.ndarray:
    """Which of the first `rows` stream rows are replay: row i is when floor((i + 1)·f) passes floor(i·f),
    so every prefix holds replay at the fraction, spread evenly."""
    index = np.arange(rows)
    return np.floor((index + 1) * replay_fraction) > np.floor(index * replay_fraction)


def stream_steps(source_budget_tokens: int, replay_fraction: float, seq_len: int, global_batch: int) -> int:
    """Steps of the data stream (`stream_order`) until it has trained on `source_budget_tokens` source tokens."""
    source_rows = math.ceil(source_budget_tokens / seq_len)
    # The smallest row count whose source rows (rows − floor(rows·f), never decreasing) reach the budget: it
    # lies between (source_rows − 1) / (1 − f) and source_rows / (1 − f), so only that short range is searched.
    rows = max(source_rows, math.floor((source_rows - 1) / (1 - replay_fraction)))
    while rows - math.floor(rows * replay_fraction) < source_rows:
        rows += 1
    return math.ceil(rows / global_batch)


def stream_order(steps: int, replay_fraction: float, source_windows: int, replay_windows: int, seq_len: int,
                global_batch: int, seed: int, max_epochs: float | None = None) -> TrainingOrder:
    """The first `steps` steps of a run's data stream, for branched schedules: unlike `training_order`, the rows
    of a step depend only on the seed and the step, never on how long the run is, so a stable phase can be
    extended and every budget's cooldown continues the same stream. Source and replay windows are each
    fresh permutations epoch after epoch; replay rows are interleaved at `replay_fraction`."""
    if not 0 <= replay_fraction < 1:
        raise ValueError(f"replay fraction must be in [0, 1), got {replay_fraction}")
    fraction = replay_fraction if replay_windows else 0.0
    is_replay = replay_rows(steps * global_batch, fraction)
    n_replay = int(is_replay.sum())
    n_source = len(is_replay) - n_replay
    check_epochs(n_source * seq_len, source_windows * seq_len, max_epochs)
    order = np.empty((len(is_replay), 2), dtype=np.int64)
    order[:, 0] = np.where(is_replay, REPLAY, SOURCE)
    order[~is_replay, 1] = epoch_permutations(source_windows, n_source, np.random.default_rng([seed, SOURCE]))
    if n_replay:
        order[is_replay, 1] = epoch_permutations(replay_windows, n_replay, np.random.default_rng([seed, REPLAY]))
    return TrainingOrder(order=order, seq_len=seq_len, global_batch=global_batch, source_windows=source_windows)
