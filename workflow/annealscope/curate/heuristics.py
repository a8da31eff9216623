"""Heuristic quality filters: datatrove's Gopher, C4 and FineWeb rules, applied to each shard's batches.

A source's `heuristics` maps a filter's name to its datatrove keyword arguments: a filter named is on, with
datatrove's defaults for what it leaves out; one not named is off. Each document goes through the filters in
FILTERS' order and is counted under the first filter and reason that removed it. C4's filter also drops lines
(citations, lines without enough words), so a document it keeps may come out shorter.

Words are split by a regular expression (runs of word characters, runs of other non-space characters), not by
datatrove's spaCy tokenizer for English, which made the four filters 5-44x slower on web text
(benchmarks/heuristics_speed.py). Sentences are datatrove's own regular-expression split.

`GopherQuality` is datatrove's Gopher quality filter with the same rules, order and reasons, but it classifies
each distinct word once (has it a non-punctuation character, a letter?) into a table of packed counts and sums
a document's in one pass, instead of looping over every character of every word in Python; tests/test_curate.py
checks its verdicts against datatrove's. Where datatrove divides by zero (a text without words, with
`min_doc_words` off) it removes the document as `gopher_short_doc`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import regex
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.gopher_quality_filter import PUNCTUATION_SET
from datatrove.utils.word_tokenizers import WhitespaceTokenizer, load_word_tokenizer

from annealscope.curate.text import WordStatistics

WORD = regex.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")
ASCII_WORD = re.compile(WORD.pattern, re.ASCII)  # the same words in ASCII text, about 1.5x faster


class RegexWords(WhitespaceTokenizer):
    """datatrove's fallback tokenizer (regular-expression sentences) with regular-expression words."""

    def word_tokenize(self, text: str) -> list[str]:
        return (ASCII_WORD if text.isascii() else WORD).findall(text)


def is_not_symbol(word: str) -> bool:
    return any(character not in PUNCTUATION_SET for character in word)


class GopherQuality(GopherQualityFilter):
    """datatrove's `GopherQualityFilter`, its per-word statistics looked up in a table of the words seen."""

    def __init__(self, **arguments):
        super().__init__(**arguments)
        self.split = load_word_tokenizer(self.language).word_tokenize
        self.statistics = WordStatistics([lambda word: int(is_not_symbol(word)),
                                          lambda word: int(any(character.isalpha() for character in word)),
                                          lambda word: len(word) * is_not_symbol(word)])

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        text = doc.text
        words = self.split(text)
        n_words = len(words)
        n_not_symbol, n_with_letter, kept_length = self.statistics.totals(words)
        if not n_words or (self.min_doc_words and n_not_symbol < self.min_doc_words):
            return False, "gopher_short_doc"
        if self.max_doc_words and n_not_symbol > self.max_doc_words:
            return False, "gopher_long_doc"
        mean_length = kept_length / n_not_symbol if n_not_symbol else np.nan
        if self.min_avg_word_length and mean_length < self.min_avg_word_length:
            return False, "gopher_below_avg_threshold"
        if self.max_avg_word_length and mean_length > self.max_avg_word_length:
            return False, "gopher_above_avg_threshold"
        if self.max_symbol_word_ratio and text.count("#") / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_hashes"
        if self.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > self.max_symbol_word_ratio:
            return False, "gopher_too_many_ellipsis"
        lines = text.splitlines()
        if (self.max_bullet_lines_ratio
                and sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines)
                > self.max_bullet_lines_ratio):
            return False, "gopher_too_many_bullets"
        if (self.max_ellipsis_lines_ratio
                and sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines)
                > self.max_ellipsis_lines_ratio):
            return False, "gopher_too_many_end_ellipsis"
        if (self.max_non_alpha_words_ratio
                and n_with_letter / n_words < self.max_non_alpha_words_ratio):
            return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and len(self.stop_words.intersection(words)) < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


FILTERS: dict[str, type[BaseFilter]] = {
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
@dataclass
class Heuristics:
    """The configured datatrove filters, built once per shard job."""

    filters: dict[str, BaseFilter]

    @classmethod
    def build(cls, settings: dict) -> Heuristics:
        unknown = set(settings) - set(FILTERS)
        if unknown:
            raise ValueError(f"heuristics: unknown filter(s) {sorted(unknown)}; use any of {sorted(FILTERS)}")
        words = RegexWords()
        return cls({name: FILTERS[name](**tuples(settings[name]), language=words) for name in FILTERS
                    if name in settings})

    def apply(self, documents: list[dict]) -> tuple[list[dict], dict[str, dict[str, int]]]:
        """The documents every filter keeps, and removals by filter and reason. A document whose text a filter
        shortened comes back with the text left and without its (now stale) `key`, `tokens` and `ids`."""
        removed: dict[str, dict[str, int]] = {name: {} for name in self.filters}
        kept = []
        for record in documents:
            document = Document(text=record["text"], id=str(record.get("id", "")))
            for name, step in self.filters.items():
                verdict = step.filter(document)
                if verdict is True and not document.text.strip():
                    verdict = (False, "no_text_left")
                if verdict is not True:
                    reason = verdict[1] if isinstance(verdict, tuple) else "removed"
                    removed[name][reason] = removed[name].get(reason, 0) + 1
                    break
            else:
                if document.text == record["text"]:
                    kept.append(record)
                else:
                    kept.append({**without(record, "key", "tokens", "ids"), "text": document.text})
        return kept, removed


def tuples(arguments: dict) -> dict:
    """YAML's lists as the tuples datatrove expects (`str.endswith` takes a tuple, n-gram limits are pairs)."""
    def frozen(value):
        return tuple(map(frozen, value)) if isinstance(value, list) else value
    return {name: frozen(value) for name, value in arguments.items()}


def without(record: dict, *keys: str) -> dict:
    return {name: value for name, value in record.items() if name not in keys}
