"""Heuristic quality filters in the Gopher / C4 style: length, symbol and digit ratios, repetition.

Each rule is configured by one key (unset or null: off) and applied in the order of RULES; a document
is removed by the first rule it fails, and the manifest counts removals per rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from functools import cached_property

from annealscope.curate.text import ngrams, words

SYMBOLS = re.compile(r"[^\w\s]")
DIGITS = re.compile(r"\d")


class Measures:
    """What the rules measure of one text, each computed once (its words are split once for every rule)."""

    def __init__(self, text: str):
        self.text = text

    @cached_property
    def words(self) -> list[str]:
        return words(self.text)

    @cached_property
    def visible(self) -> int:
        """Non-space characters."""
        return sum(map(len, self.text.split()))

    def mean_word_length(self) -> float:
        return sum(map(len, self.words)) / len(self.words) if self.words else 0.0

    def symbol_ratio(self) -> float:
        """Punctuation and symbol characters per non-space character."""
        return len(SYMBOLS.findall(self.text)) / self.visible if self.visible else 1.0

    def digit_ratio(self) -> float:
        return len(DIGITS.findall(self.text)) / self.visible if self.visible else 1.0

    def duplicate_line_fraction(self) -> float:
        """The fraction of non-empty lines that repeat an earlier line."""
        lines = [line.strip() for line in self.text.splitlines() if line.strip()]
        return 1 - len(set(lines)) / len(lines) if lines else 0.0

    def top_bigram_fraction(self) -> float:
        """Characters covered by the most frequent word bigram, per character of all words (Gopher)."""
        if len(self.words) < 2:
            return 0.0
        (first, second), count = Counter(ngrams(self.words, 2)).most_common(1)[0]
        return count * (len(first) + len(second)) / sum(map(len, self.words))


RULES: dict[str, Callable[[Measures, float], bool]] = {
    "min_words": lambda text, limit: len(text.words) >= limit,
    "max_words": lambda text, limit: len(text.words) <= limit,
    "min_mean_word_length": lambda text, limit: text.mean_word_length() >= limit,
    "max_mean_word_length": lambda text, limit: text.mean_word_length() <= limit,
    "max_symbol_ratio": lambda text, limit: text.symbol_ratio() <= limit,
    "max_digit_ratio": lambda text, limit: text.digit_ratio() <= limit,
    "max_duplicate_line_fraction": lambda text, limit: text.duplicate_line_fraction() <= limit,
    "max_top_bigram_fraction": lambda text, limit: text.top_bigram_fraction() <= limit,
}


def apply_heuristics(documents: list[dict], settings: dict) -> tuple[list[dict], dict[str, int]]:
    """Keep the documents passing every configured rule; count removals by the first rule failed."""
    active = {rule: limit for rule, limit in settings.items() if limit is not None}
    unknown = set(active) - set(RULES)
    if unknown:
        raise ValueError(f"heuristics: unknown rule(s) {sorted(unknown)}; use any of {sorted(RULES)}")
    removed = dict.fromkeys(active, 0)
    kept = []
    for document in documents:
        measures = Measures(document["text"])
        failed = next((rule for rule in RULES if rule in active and not RULES[rule](measures, active[rule])), None)
        if failed is None:
            kept.append(document)
        else:
            removed[failed] += 1
    return kept, removed
