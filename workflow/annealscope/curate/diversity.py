"""Descriptive statistics of a curated source for its manifest: diversity and document lengths, computed per
shard and merged, so no job holds the source.

Distinct-n (Li et al. 2016) needs the distinct word n-grams of the whole source. Each shard keeps a sketch per
n: the sorted distinct 64-bit hashes of its n-grams while there are at most EXACT_LIMIT, else a HyperLogLog of
2^HLL_PRECISION registers (about 0.4% error). Merging two exact sketches is their union, exact while it stays
under the limit; so the demo's and the tests' figures are exact, and a 14B-token source's are estimated in
bounded memory. Word hashes are stable across processes (annealscope.curate.word_spans), unlike Python's
`hash`, and each batch's are shared with decontamination.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annealscope.core.arrays import merged_unique, sorted_unique
from annealscope.curate.text import HashedWords

ORDERS = (1, 2, 3)
EXACT_LIMIT = 1 << 22  # distinct hashes kept exactly per n (32 MB)
HLL_PRECISION = 16


@dataclass
class Sketch:
    """The distinct hashes of one n-gram order: exact (sorted unique) or a HyperLogLog's registers."""

    exact: np.ndarray | None
    registers: np.ndarray | None
    total: int  # n-grams seen, repeats included

    @classmethod
    def empty(cls) -> Sketch:
        return cls(np.zeros(0, dtype=np.uint64), None, 0)

    def merge(self, other: Sketch) -> Sketch:
        total = self.total + other.total
        if self.exact is not None and other.exact is not None:
            union = merged_unique([self.exact, other.exact])
            if len(union) <= EXACT_LIMIT:
                return Sketch(union, None, total)
            return Sketch(None, _registers(union), total)
        return Sketch(None, np.maximum(self._as_registers(), other._as_registers()), total)

    def _as_registers(self) -> np.ndarray:
        return self.registers if self.registers is not None else _registers(self.exact)

    def distinct(self) -> float:
        if self.exact is not None:
            return float(len(self.exact))
        return _hll_estimate(self.registers)

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        kind, values = ("exact", self.exact) if self.exact is not None else ("hll", self.registers)
        return {f"{prefix}_{kind}": values, f"{prefix}_total": np.array([self.total])}

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> Sketch:
        total = int(arrays[f"{prefix}_total"][0])
        if f"{prefix}_exact" in arrays:
            return cls(arrays[f"{prefix}_exact"], None, total)
        return cls(None, arrays[f"{prefix}_hll"], total)


def _registers(hashes: np.ndarray) -> np.ndarray:
    registers = np.zeros(1 << HLL_PRECISION, dtype=np.uint8)
    rest_bits = 64 - HLL_PRECISION
    index = (hashes >> np.uint64(rest_bits)).astype(np.int64)
    rest = hashes & np.uint64((1 << rest_bits) - 1)
    bit_length = np.zeros(len(rest), dtype=np.int64)
    nonzero = rest > 0
    bit_length[nonzero] = np.floor(np.log2(rest[nonzero].astype(np.float64))).astype(np.int64) + 1
    np.maximum.at(registers, index, (rest_bits - bit_length + 1).astype(np.uint8))
    return registers


def _hll_estimate(registers: np.ndarray) -> float:
    """Flajolet et al.'s estimate with the linear-counting correction for small counts."""
    m = len(registers)
    estimate = 0.7213 / (1 + 1.079 / m) * m * m / np.sum(np.power(2.0, -registers.astype(np.float64)))
    zeros = int(np.sum(registers == 0))
    if estimate <= 2.5 * m and zeros:
        return m * math.log(m / zeros)
    return float(estimate)


class Diversity:
    """Distinct-n sketches and token counts of the documents added, mergeable across shards."""

    def __init__(self):
        self.sketches = {n: Sketch.empty() for n in ORDERS}
        self.pending: dict[int, list[np.ndarray]] = {n: [] for n in ORDERS}  # merged in bulk: a union per
        self.pending_total = dict.fromkeys(ORDERS, 0)                       # batch would re-sort the set
        self.token_counts: list[np.ndarray] = []

    def add(self, hashed: HashedWords, token_counts: list[int]) -> None:
        """Add a batch of documents: their words' hashes and their token counts."""
        for n, grams, _ in hashed.windows(ORDERS):
            if self.sketches[n].exact is None:  # estimated already: registers take the batch as it is
                self.sketches[n] = self.sketches[n].merge(Sketch(None, _registers(grams), len(grams)))
                continue
            self.pending[n].append(sorted_unique(grams))
            self.pending_total[n] += len(grams)
            if sum(map(len, self.pending[n])) > max(EXACT_LIMIT // 4, len(self.sketches[n].exact)):
                self._flush(n)
        self.token_counts.append(np.asarray(token_counts, dtype=np.int64))

    def _flush(self, n: int) -> None:
        if self.pending[n]:
            batch = Sketch(merged_unique(self.pending[n]), None, self.pending_total[n])
            self.sketches[n] = self.sketches[n].merge(batch)
            self.pending[n], self.pending_total[n] = [], 0

    def arrays(self) -> dict[str, np.ndarray]:
        for n in ORDERS:
            self._flush(n)
        arrays = {"token_counts": np.concatenate(self.token_counts) if self.token_counts else np.zeros(0, np.int64)}
        for n, sketch in self.sketches.items():
            arrays |= sketch.arrays(f"distinct_{n}")
        return arrays


def saved_sketches(paths: Iterable[str | Path]) -> Iterator[dict]:
    """Each shard's saved `Diversity.arrays()` in turn, its file closed before the next opens: a source's
    thousands of shards are never open at once (a process may open 1,024 files on many systems)."""
    for path in paths:
        with np.load(path) as arrays:
            yield dict(arrays)


def merged_description(shard_arrays: Iterable[dict]) -> dict:
    """The manifest's diversity block from every shard's saved `Diversity.arrays()`, taken one at a time."""
    sketches = {n: Sketch.empty() for n in ORDERS}
    counts = []
    for arrays in shard_arrays:
        for n in ORDERS:
            sketches[n] = sketches[n].merge(Sketch.from_arrays(arrays, f"distinct_{n}"))
        counts.append(arrays["token_counts"])
    token_counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return {**{f"distinct_{n}": sketch.distinct() / sketch.total if sketch.total else 0.0
               for n, sketch in sketches.items()},
            "distinct_exact": all(sketch.exact is not None for sketch in sketches.values()),
            "mean_tokens": float(np.mean(token_counts)) if len(token_counts) else 0.0,
            "median_tokens": float(np.median(token_counts)) if len(token_counts) else 0.0,
            "length_histogram": length_histogram(token_counts)}


def length_histogram(token_counts) -> dict[str, int]:
    """Documents per power-of-two bin of tokens: {"[16, 32)": 12, ...}."""
    if not len(token_counts):
        return {}
    exponents = np.floor(np.log2(np.maximum(token_counts, 1))).astype(int)
    values, counts = np.unique(exponents, return_counts=True)
    return {f"[{2 ** value}, {2 ** (value + 1)})": int(count) for value, count in zip(values, counts, strict=True)}
