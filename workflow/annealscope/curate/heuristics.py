"""Heuristic quality filters in the Gopher / C4 style: length, symbol and digit ratios, repetition.

Each rule is configured by one key (unset or null: off) and applied in the order of RULES; a document
is removed by the first rule it fails, and the manifest counts removals per rule.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from annealscope.curate.text import ngrams, words

SYMBOLS = re.compile(r"[^\w\s]")
DIGITS = re.compile(r"\d")


def mean_word_length(text: str) -> float:
    tokens = words(text)
    return sum(map(len, tokens)) / len(tokens) if tokens else 0.0


def symbol_ratio(text: str) -> float:
    """Punctuation and symbol characters per non-space character."""
    visible = len(text) - sum(character.isspace() for character in text)
    return len(SYMBOLS.findall(text)) / visible if visible else 1.0


def digit_ratio(text: str) -> float:
    visible = len(text) - sum(character.isspace() for character in text)
    return len(DIGITS.findall(text)) / visible if visible else 1.0


def duplicate_line_fraction(text: str) -> float:
    """The fraction of non-empty lines that repeat an earlier line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return 1 - len(set(lines)) / len(lines) if lines else 0.0


def top_bigram_fraction(text: str) -> float:
    """Characters covered by the most frequent word bigram, per character of all words (Gopher)."""
    tokens = words(text)
    if len(tokens) < 2:
        return 0.0
    (first, second), count = Counter(ngrams(tokens, 2)).most_common(1)[0]
    return count * (len(first) + len(second)) / sum(map(len, tokens))


RULES: dict[str, Callable[[str, float], bool]] = {
    "min_words": lambda text, limit: len(words(text)) >= limit,
    "max_words": lambda text, limit: len(words(text)) <= limit,
    "min_mean_word_length": lambda text, limit: mean_word_length(text) >= limit,
    "max_mean_word_length": lambda text, limit: mean_word_length(text) <= limit,
    "max_symbol_ratio": lambda text, limit: symbol_ratio(text) <= limit,
    "max_digit_ratio": lambda text, limit: digit_ratio(text) <= limit,
    "max_duplicate_line_fraction": lambda text, limit: duplicate_line_fraction(text) <= limit,
    "max_top_bigram_fraction": lambda text, limit: top_bigram_fraction(text) <= limit,
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
        failed = next((rule for rule in RULES if rule in active and not RULES[rule](document["text"], active[rule])),
                      None)
        if failed is None:
            kept.append(document)
        else:
            removed[failed] += 1
    return kept, removed
