"""The word n-gram statistics of datatrove's Gopher repetition rules, for a whole batch of texts at once.

datatrove's `GopherRepetitionFilter` joins and counts n-gram strings in Python, word by word, for every n (the
slowest of the four filters by far: benchmarks/heuristics_speed.py). Here the words are spans of the batch's
code points (annealscope.curate.word_spans) and each n-gram is a 64-bit hash, computed for all of a batch's
n-grams with numpy; the statistics are datatrove's, with its quirks:

- top n-gram: the n-gram (words joined by a space) that occurs most often in a text, the earliest first seen on
  a tie, as `Counter.most_common(1)` picks it; its characters times its count.
- duplicate n-grams: scanning left to right, an n-gram (words joined with nothing between them, so "ab c" and
  "a bc" are the same) seen before adds its characters and skips its n words. The scan is sequential, so it runs
  in Python, over the hashes, and only for the texts where some n-gram occurs twice.

N-grams equal as strings have equal hashes; different ones share a hash with probability about 2^-64 a pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annealscope.core.arrays import span_positions
from annealscope.curate.text import window_hashes
from annealscope.curate.word_spans import WordSpans, mixed, powers


class NGrams:
    """The n-grams of every text of a batch, from its words."""

    def __init__(self, words: WordSpans):
        self.texts, self.owner = words.texts, words.owner
        self.hashes = words.hashes()
        lengths = words.lengths()
        self.text_words = words.per_text()
        self.text_first = np.cumsum(self.text_words) - self.text_words  # each text's first word
        first_word = self.text_first[words.owner]  # of each word's text
        self.last_word = first_word + self.text_words[words.owner]  # one past
        self.before = np.concatenate([[0], np.cumsum(lengths)])  # characters of the words before each
        # the words laid end to end, each character's term of a polynomial counted from its text's start
        characters = words.codes[span_positions(words.start, lengths)].astype(np.uint64)
        self.offsets = self.before[:-1] - self.before[first_word]  # each word's place in its text's characters
        places = span_positions(self.offsets, lengths)
        with np.errstate(over="ignore"):
            self.polynomial = np.zeros(len(characters) + 1, dtype=np.uint64)
            np.cumsum(characters * powers(int(places.max(initial=0)) + 1)[places], out=self.polynomial[1:])

    def _inside(self, n: int) -> np.ndarray:
        """Positions of the words that start an n-gram within their text."""
        return np.flatnonzero(np.arange(len(self.hashes)) + n <= self.last_word)

    def top_characters(self, sizes: list[int]) -> dict[int, np.ndarray]:
        """For each n of `sizes`, per text: the characters of its most frequent space-joined n-gram times its
        count (-1: the text has no n-gram)."""
        found = {n: np.full(self.texts, -1, dtype=np.int64) for n in sizes}
        for n, combined in window_hashes(self.hashes, max(sizes, default=0)):
            starts = self._inside(n)
            if n in sizes and len(starts):
                owners = self.owner[starts]
                codes, _ = pd.factorize(self._in_text(combined[starts], owners))  # numbered as first seen
                counts = np.bincount(codes)
                first = np.flatnonzero(np.r_[True, codes[1:] > np.maximum.accumulate(codes)[:-1]])
                # each text's most frequent n-gram, the first seen on a tie: the largest count * places - start
                rank = counts * (len(self.hashes) + 1) - starts[first]
                best = np.full(self.texts, -1, dtype=np.int64)
                np.maximum.at(best, owners[first], rank)
                chosen = first[rank == best[owners[first]]]
                characters = self.before[starts[chosen] + n] - self.before[starts[chosen]] + n - 1
                found[n][owners[chosen]] = characters * counts[codes[chosen]]
        return found

    def duplicate_characters(self, n: int) -> np.ndarray:
        """Per text: the characters of the n-grams (joined with nothing) that datatrove's left-to-right scan
        finds repeated."""
        keys = self._joined_hashes(n)
        starts = self._inside(n)
        owners = self.owner[starts]
        repeated = pd.Series(self._in_text(keys[starts], owners)).duplicated().to_numpy()
        result = np.zeros(self.texts, dtype=np.int64)
        for text in np.unique(owners[repeated]).tolist():
            first = int(self.text_first[text])
            result[text] = self._scan(keys[first:first + int(self.text_words[text]) - n + 1].tolist(), first, n)
        return result

    @staticmethod
    def _in_text(keys: np.ndarray, owners: np.ndarray) -> np.ndarray:
        """Keys made distinct across texts: equal only for equal keys in one text."""
        return mixed(keys, owners)

    def _scan(self, keys: list[int], first: int, n: int) -> int:
        """datatrove's `find_all_duplicate` over the hashes of one text's n-grams (`first`: its first word)."""
        seen, repeated, position = set(), 0, 0
        while position < len(keys):
            if keys[position] in seen:
                repeated += int(self.before[first + position + n] - self.before[first + position])
                position += n
            else:
                seen.add(keys[position])
                position += 1
        return repeated

    def _joined_hashes(self, n: int) -> np.ndarray:
        """The hash of the characters of the n words from each position, joined with nothing between them
        (meaningful where the n words are in one text): equal strings in one text hash alike, wherever they
        are, since each polynomial is divided by the base to the power of its place in its text."""
        ends = np.minimum(np.arange(len(self.hashes)) + n, len(self.hashes))
        starts = self.before[:-1]
        with np.errstate(over="ignore"):
            sums = self.polynomial[self.before[ends]] - self.polynomial[starts]
            inverse = powers(int(self.offsets.max(initial=0)) + 1, inverse=True)
            return mixed(sums * inverse[self.offsets], self.before[ends] - starts)

