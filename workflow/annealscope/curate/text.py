"""Words and n-grams, one definition for every curation step that counts them: heuristics, near-dedup
shingles, decontamination and diversity.

A word is a maximal run of letters or digits (Unicode `\\w`, underscore included) of the lower-cased text, so
"Answer:" and "answer" are the same word and punctuation never splits or joins a match. Decontamination and
diversity find and hash the words of a whole batch of documents at once (`HashedWords`, with
annealscope.curate.word_spans: a hash of each word's code points, stable across processes), then every run of
n words from those hashes (`window_hashes`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import numpy as np

from annealscope.curate.word_spans import CharacterClasses, WordSpans, chunks

WORD = re.compile(r"\w+")
WORD_CLASSES = CharacterClasses([lambda character: WORD.match(character) is not None])  # grows as it meets text
WINDOW_MULTIPLIERS = np.random.default_rng(20250101).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of `n` consecutive tokens, in order (none when there are fewer than `n`)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


class HashedWords:
    """The word hashes of a batch of texts, end to end, and where each text ends."""

    def __init__(self, hashes: np.ndarray, lengths: np.ndarray):
        self.hashes, self.lengths = hashes, lengths
        self.owner = np.repeat(np.arange(len(lengths)), lengths)  # the text of each word

    @classmethod
    def of(cls, texts: list[str]) -> HashedWords:
        """The hashed `words` of each text, found for a batch at once (annealscope.curate.word_spans)."""
        lowered = [text.lower() for text in texts]
        hashes, lengths = [], []
        for part in chunks(lowered):
            spans = WordSpans.runs(lowered[part], WORD_CLASSES)
            hashes.append(spans.hashes())
            lengths.append(spans.per_text())
        return cls(np.concatenate(hashes or [np.zeros(0, np.uint64)]),
                   np.concatenate(lengths or [np.zeros(0, np.int64)]))

    def select(self, chosen: np.ndarray) -> HashedWords:
        """The hashed words of the texts where `chosen` (one flag per text) is true."""
        return HashedWords(self.hashes[chosen[self.owner]], self.lengths[chosen])

    def windows(self, lengths: Sequence[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(n, hashes, owners) of the runs of n words within one text, for each n in `lengths`, ascending."""
        ends = np.cumsum(self.lengths)[self.owner]  # where each word's text ends
        for n, hashes in window_hashes(self.hashes, max(lengths, default=0)):
            if n in lengths:
                inside = np.arange(len(hashes)) + n <= ends[:len(hashes)]
                yield n, hashes[inside], self.owner[:len(hashes)][inside]


def window_hashes(hashes: np.ndarray, longest: int) -> Iterator[tuple[int, np.ndarray]]:
    """(n, a 64-bit hash of every run of n consecutive hashes) for n = 1 .. `longest`, each from the last."""
    combined = np.zeros(len(hashes), dtype=np.uint64)
    for n in range(1, min(longest, len(hashes)) + 1):
        combined = extended(combined[:len(hashes) - n + 1], hashes[n - 1:], n)
        yield n, combined


def run_hashes(rows: np.ndarray) -> np.ndarray:
    """The hash of each row of word hashes as one run (what `window_hashes` gives that run)."""
    combined = np.zeros(len(rows), dtype=np.uint64)
    for n, column in enumerate(rows.T, start=1):
        combined = extended(combined, column, n)
    return combined


def extended(combined: np.ndarray, following: np.ndarray, n: int) -> np.ndarray:
    """Hashes of runs of n - 1 words extended by the next word's hash to runs of n."""
    with np.errstate(over="ignore"):
        combined = (combined ^ following) * WINDOW_MULTIPLIERS[(n - 1) % len(WINDOW_MULTIPLIERS)]
        return combined ^ (combined >> np.uint64(29))
