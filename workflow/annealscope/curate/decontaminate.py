"""Decontamination: drop training documents that share a word n-gram with any evaluation item.

A batch is screened at once with numpy: every word is hashed to 64 bits, every window of the index's lengths
gets a hash from its words, and a window whose hash is an item n-gram's marks its document. Only marked
documents are checked word by word, so the result (which documents, and which task each is charged to) is
exactly that of the word-by-word check alone.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable

import numpy as np

from annealscope.core.arrays import sorted_unique
from annealscope.curate.text import ngrams, words

MIN_ITEM_WORDS = 8


def word_hashes(tokens: list[str]) -> np.ndarray:
    """A 64-bit hash of each word (Python's string hash: stable within the process, which holds the index)."""
    return np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)


def window_hashes(hashes: np.ndarray, length: int, weights: np.ndarray) -> np.ndarray:
    """The hash of each run of `length` consecutive words: their hashes weighted by position, summed mod 2^64."""
    count = len(hashes) - length + 1
    out = np.zeros(max(count, 0), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(length if count > 0 else 0):
            out += hashes[offset:offset + count] * weights[offset]
    return out


class ContaminationIndex:
    """The n-grams of every evaluation item, by task. Items shorter than n words contribute their
    whole text when it has at least MIN_ITEM_WORDS words (shorter ones cannot be matched reliably)."""

    def __init__(self, items_by_task: dict[str, Iterable[str]], n: int = 13):
        self.n = n
        self.index: dict[int, dict[tuple[str, ...], str]] = {}
        for task, texts in items_by_task.items():
            for text in texts:
                tokens = words(text)
                length = min(n, len(tokens))
                if length >= MIN_ITEM_WORDS:
                    for gram in ngrams(tokens, length):
                        self.index.setdefault(length, {})[gram] = task
        self.weights = np.random.default_rng(n).integers(1, 1 << 63, size=n, dtype=np.uint64) | np.uint64(1)
        self.hashes = {length: self._gram_hashes(list(grams), length) for length, grams in self.index.items()}

    def _gram_hashes(self, grams: list[tuple[str, ...]], length: int) -> np.ndarray:
        """The sorted window hashes of the item n-grams of one length (as `window_hashes` computes them)."""
        hashes = word_hashes(list(itertools.chain.from_iterable(grams))).reshape(len(grams), length)
        with np.errstate(over="ignore"):
            return sorted_unique((hashes * self.weights[:length]).sum(axis=1, dtype=np.uint64))

    def match(self, text: str) -> str | None:
        """The task of the first evaluation n-gram found in `text`, or None."""
        tokens = words(text)
        for length, grams in self.index.items():
            for i in range(len(tokens) - length + 1):
                task = grams.get(tuple(tokens[i:i + length]))
                if task is not None:
                    return task
        return None

    def suspects(self, texts: list[str]) -> set[int]:
        """Which texts have a window whose hash is an item n-gram's (every text with a match, and rarely one
        more by a hash collision)."""
        tokens = [words(text) for text in texts]
        lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        hashes = word_hashes(list(itertools.chain.from_iterable(tokens)))
        owner = np.repeat(np.arange(len(texts)), lengths)
        ends = np.cumsum(lengths)[owner]  # where each word's text ends
        found: set[int] = set()
        for length, table in self.hashes.items():
            windows = window_hashes(hashes, length, self.weights)
            places = np.minimum(np.searchsorted(table, windows), len(table) - 1)
            hit = (table[places] == windows) & (np.arange(len(windows)) + length <= ends[:len(windows)])
            found.update(owner[:len(windows)][hit].tolist())
        return found

    def filter(self, documents: Iterable[dict]) -> tuple[list[dict], Counter]:
        documents = list(documents)
        suspects = self.suspects([document["text"] for document in documents]) if self.index else set()
        kept, removed = [], Counter()
        for position, document in enumerate(documents):
            task = self.match(document["text"]) if position in suspects else None
            if task is None:
                kept.append(document)
            else:
                removed[task] += 1
        return kept, removed
