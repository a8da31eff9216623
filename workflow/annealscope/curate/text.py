"""Words and n-grams, one definition for every curation step that counts them: heuristics, near-dedup
shingles, decontamination and diversity.

A word is a maximal run of letters or digits (Unicode `\\w`, underscore included) of the lower-cased text, so
"Answer:" and "answer" are the same word and punctuation never splits or joins a match.
"""

from __future__ import annotations

import re

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of `n` consecutive tokens, in order (none when there are fewer than `n`)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
