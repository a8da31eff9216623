"""Words and n-grams, one definition for every curation step that counts them: heuristics, near-dedup
shingles, decontamination and diversity.

A word is a maximal run of letters or digits (Unicode `\\w`, underscore included) of the lower-cased text, so
"Answer:" and "answer" are the same word and punctuation never splits or joins a match. Decontamination and
diversity hash each word once (`WordHasher`, stable across processes) and every run of n words from those
hashes (`window_hashes`), for a whole batch of documents at once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence

import numpy as np

WORD = re.compile(r"\w+")
MAX_CACHED_WORDS = 1 << 20
FIELD_BITS = 21
WINDOW_MULTIPLIERS = np.random.default_rng(20250101).integers(1, 1 << 63, size=64, dtype=np.uint64) | np.uint64(1)


class WordTable(dict):
    """A word's value under `rule`, computed on first sight (a text's vocabulary is small), so that
    `map(table.__getitem__, words)` runs in C for every word seen before; cleared at MAX_CACHED_WORDS words."""

    def __init__(self, rule: Callable[[str], int]):
        super().__init__()
        self.rule = rule

    def __missing__(self, word: str) -> int:
        if len(self) >= MAX_CACHED_WORDS:
            self.clear()
        value = self[word] = self.rule(word)
        return value


class WordStatistics(WordTable):
    """Statistics of each word, one per rule, packed into one integer per word on first sight, FIELD_BITS bits
    a rule, so that a text's totals are one lookup per word and one sum. Every rule but the last gives 0 or 1;
    the last any count. The sums are exact: a text of 2^FIELD_BITS words or more is summed rule by rule."""

    def __init__(self, rules: Sequence[Callable[[str], int]]):
        super().__init__(lambda word: sum(rule(word) << (FIELD_BITS * place) for place, rule in enumerate(rules)))
        self.rules = rules

    def totals(self, tokens: list[str]) -> list[int]:
        """Each rule's values summed over `tokens`."""
        if len(tokens) >= 1 << FIELD_BITS:
            return [sum(map(rule, tokens)) for rule in self.rules]
        packed = sum(map(self.__getitem__, tokens))
        *flags, count = [packed >> (FIELD_BITS * place) for place in range(len(self.rules))]
        return [flag & ((1 << FIELD_BITS) - 1) for flag in flags] + [count]


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of `n` consecutive tokens, in order (none when there are fewer than `n`)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def stable_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


class WordHasher:
    """A stable 64-bit hash per word, looked up in a table of the words seen."""

    def __init__(self):
        self.table = WordTable(stable_hash)

    def __call__(self, tokens: list[str]) -> np.ndarray:
        return np.fromiter(map(self.table.__getitem__, tokens), dtype=np.uint64, count=len(tokens))


class HashedWords:
    """The word hashes of a batch of texts, end to end, and where each text ends."""

    def __init__(self, hashes: np.ndarray, lengths: np.ndarray):
        self.hashes, self.lengths = hashes, lengths
        self.owner = np.repeat(np.arange(len(lengths)), lengths)  # the text of each word

    @classmethod
    def of(cls, hasher: WordHasher, texts: list[str]) -> HashedWords:
        tokens = [words(text) for text in texts]
        return cls(hasher([word for text_words in tokens for word in text_words]),
                   np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens)))

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
