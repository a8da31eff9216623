"""The words of a batch of texts as spans of its code points, found and hashed with numpy for the whole batch at
once, with no regular-expression scan or Python loop per text or word.

Each distinct character is classed once, by the rules the words are defined with (`CharacterClasses`), so the
spans are exactly what the regular expressions find; tests/test_curate.py and tests/test_tasks.py check them
against the expressions on text mixing scripts, marks, symbols and apostrophes. Two kinds of words:

- `WordSpans.pattern_words`: the words of `heuristics.WORD` (runs of word characters joined by single
  apostrophes, and runs of other non-space characters). A match never holds a space and is as long as it can
  be, so these are the maximal runs of non-space characters that are all "in a word" (a word character, or an
  apostrophe between two) or all not.
- `WordSpans.runs`: maximal runs of the characters one rule accepts (`\\w+` of `text.WORD`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import regex

from annealscope.core.arrays import places_within, span_positions

MAX_CODE, UNKNOWN = 0x10FFFF, 0xFFFF  # the largest code point; no class has every bit set
SEPARATOR = "\n"  # between the texts of a batch: a space to every rule here, so no word spans two texts
PATTERN_RULES: tuple[Callable[[str], bool], ...] = (  # heuristics.WORD's classes: \w, \s and its apostrophes
    lambda character: regex.match(r"\w", character) is not None,
    lambda character: regex.match(r"\s", character) is not None,
    lambda character: character in "'’")
HASH_BASE = np.uint64(0x100000001B3)
CHUNK_CHARACTERS = 1 << 21  # characters classed at once: about 50 MB of arrays
MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


class CharacterClasses:
    """One bit per rule for each character (bit `1 << place`), computed on a character's first sight and kept
    in a table by code point."""

    def __init__(self, rules: Sequence[Callable[[str], bool]]):
        if len(rules) >= 16:
            raise ValueError(f"{len(rules)} character rules: a class holds at most 15, one bit each")
        self.rules = tuple(rules)
        self.table = np.full(MAX_CODE + 1, UNKNOWN, dtype=np.uint16)

    def _classify(self, code: int) -> int:
        return sum(bool(rule(chr(code))) << place for place, rule in enumerate(self.rules))

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        bits = self.table[codes]
        unknown = bits == UNKNOWN
        if unknown.any():
            for code in np.unique(codes[unknown]).tolist():
                self.table[code] = self._classify(code)
            bits[unknown] = self.table[codes[unknown]]
        return bits


class WordSpans:
    """The words of a batch of texts: for each word its `start` and `end` in `codes` (the texts' code points,
    joined by SEPARATOR) and the text it is in (`owner`); `bits` are every code point's classes."""

    def __init__(self, texts: list[str], classes: CharacterClasses, find: Callable[[np.ndarray], tuple]):
        self.codes = code_points(SEPARATOR.join(texts))
        self.bits = classes(self.codes)
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        firsts = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
        self.start, self.end = find(self.bits)
        self.owner = np.searchsorted(firsts, self.start, side="right") - 1
        self.texts = len(texts)

    @classmethod
    def pattern_words(cls, texts: list[str], classes: CharacterClasses) -> WordSpans:
        """heuristics.WORD's words; `classes` start with PATTERN_RULES."""
        return cls(texts, classes, _pattern_spans)

    @classmethod
    def runs(cls, texts: list[str], classes: CharacterClasses, place: int = 0) -> WordSpans:
        """Maximal runs of the characters that rule `place` of `classes` accepts."""
        return cls(texts, classes, lambda bits: _runs((bits & (1 << place)) != 0))

    def lengths(self) -> np.ndarray:
        return self.end - self.start

    def with_bit(self, bit: int) -> np.ndarray:
        """Whether each word has a character with `bit` set."""
        counts = np.zeros(len(self.bits) + 1, dtype=np.int32)
        np.cumsum((self.bits & bit) != 0, dtype=np.int32, out=counts[1:])
        return counts[self.end] > counts[self.start]

    def per_text(self, values: np.ndarray | None = None) -> np.ndarray:
        """Each text's words counted, or `values` (one per word) summed, as integers."""
        return np.bincount(self.owner, weights=values, minlength=self.texts).astype(np.int64)

    def texts_with(self, words: set[str]) -> np.ndarray:
        """How many of `words` each text has among its words."""
        lengths, found = self.lengths(), np.zeros(self.texts, dtype=np.int64)
        for length in {len(word) for word in words if word}:
            chosen = np.flatnonzero(lengths == length)
            rows = self.codes[self.start[chosen, None] + np.arange(length)]
            for word in (word for word in words if len(word) == length):
                has = np.zeros(self.texts, dtype=bool)
                has[self.owner[chosen[(rows == code_points(word)).all(axis=1)]]] = True
                found += has
        return found

    def hashes(self) -> np.ndarray:
        """A 64-bit hash of each word's code points, the same wherever the word is (`word_hashes`)."""
        return span_hashes(self.codes, self.start, self.end)


def code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def word_hashes(words: list[str]) -> np.ndarray:
    """The hash `WordSpans.hashes` gives each of `words`."""
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return span_hashes(code_points("".join(words)), np.cumsum(lengths) - lengths, np.cumsum(lengths))


def span_hashes(codes: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """A 64-bit hash of the code points of each span (`mixed`: a polynomial in them, mod 2^64, and their count)."""
    lengths = end - start
    within = places_within(lengths)
    with np.errstate(over="ignore"):
        base = powers(int(lengths.max(initial=0)))
        terms = codes[span_positions(start, lengths)].astype(np.uint64) * base[within]
        prefix = np.zeros(len(within) + 1, dtype=np.uint64)
        np.cumsum(terms, out=prefix[1:])
        return mixed(prefix[np.cumsum(lengths)] - prefix[np.cumsum(lengths) - lengths], lengths)


def mixed(polynomials: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hashes from the polynomials of spans' code points and their lengths, through splitmix64's finaliser so
    that every character moves every bit."""
    with np.errstate(over="ignore"):
        hashes = polynomials ^ lengths.astype(np.uint64)
        for multiplier in MIX:
            hashes = (hashes ^ (hashes >> np.uint64(30))) * multiplier
        return hashes ^ (hashes >> np.uint64(31))


_POWERS = {False: np.ones(1, dtype=np.uint64), True: np.ones(1, dtype=np.uint64)}


def powers(count: int, inverse: bool = False) -> np.ndarray:
    """HASH_BASE, or its inverse mod 2^64, to the powers 0 .. count - 1 (at least), kept and grown as needed."""
    if len(_POWERS[inverse]) < count:
        base = np.uint64(pow(int(HASH_BASE), -1, 1 << 64)) if inverse else HASH_BASE
        with np.errstate(over="ignore"):
            _POWERS[inverse] = np.cumprod(np.r_[np.uint64(1), np.full(max(count, 1024) - 1, base)])
    return _POWERS[inverse]


def chunks(texts: list[str], characters: int = CHUNK_CHARACTERS) -> list[slice]:
    """Consecutive slices of `texts` of at most `characters` characters each (a longer text alone), so the
    arrays of one call stay bounded whatever the batch."""
    ends = np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)))
    found, first = [], 0
    while first < len(texts):
        last = max(int(np.searchsorted(ends, (ends[first - 1] if first else 0) + characters, side="right")),
                   first + 1)
        found.append(slice(first, last))
        first = last
    return found


def _runs(accepted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.flatnonzero(np.diff(accepted.view(np.int8), prepend=0, append=0))
    return edges[::2], edges[1::2]


def _pattern_spans(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each word: maximal runs of non-space characters, all in a word or all not."""
    word = (bits & 1) != 0
    in_word = word.copy()
    in_word[1:-1] |= ((bits[1:-1] & 4) != 0) & word[:-2] & word[2:]
    token = (bits & 2) == 0
    same_as_before = np.zeros(len(bits), dtype=bool)
    same_as_before[1:] = token[1:] & token[:-1] & (in_word[1:] == in_word[:-1])
    same_as_after = np.zeros(len(bits), dtype=bool)
    same_as_after[:-1] = same_as_before[1:]
    return np.flatnonzero(token & ~same_as_before), np.flatnonzero(token & ~same_as_after) + 1
