"""Words and n-grams, one definition for every curation step that counts them: heuristics, near-dedup
shingles, decontamination and diversity.

A word is a maximal run of letters or digits (Unicode `\\w`, underscore included) of the lower-cased text, so
"Answer:" and "answer" are the same word and punctuation never splits or joins a match.
"""

from __future__ import annotations

import re
from collections.abc import Callable

WORD = re.compile(r"\w+")
MAX_CACHED_WORDS = 1 << 20


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


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of `n` consecutive tokens, in order (none when there are fewer than `n`)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
