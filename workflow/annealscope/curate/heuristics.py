"""Heuristic quality filters: datatrove's Gopher, C4 and FineWeb rules, applied to each shard's batches.

A source's `heuristics` maps a filter's name to its datatrove keyword arguments: a filter named is on, with
datatrove's defaults for what it leaves out; one not named is off. Each document goes through the filters in
FILTERS' order and is counted under the first filter and reason that removed it. C4's filter also drops lines
(citations, lines without enough words), so a document it keeps may come out shorter.

Words are split by a regular expression (runs of word characters, runs of other non-space characters), not by
datatrove's spaCy tokenizer for English, which made the four filters 5-44x slower on web text
(benchmarks/heuristics_speed.py). Sentences are datatrove's own regular-expression split.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.word_tokenizers import WhitespaceTokenizer

FILTERS: dict[str, type[BaseFilter]] = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
WORD = regex.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")


class RegexWords(WhitespaceTokenizer):
    """datatrove's fallback tokenizer (regular-expression sentences) with regular-expression words."""

    def word_tokenize(self, text: str) -> list[str]:
        return WORD.findall(text)


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
        shortened comes back with the text left and without its (now stale) `tokens` and `ids`."""
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
                changed = document.text != record["text"]
                kept.append(record if not changed else {**without(record, "tokens", "ids"), "text": document.text})
        return kept, removed


def tuples(arguments: dict) -> dict:
    """YAML's lists as the tuples datatrove expects (`str.endswith` takes a tuple, n-gram limits are pairs)."""
    def frozen(value):
        return tuple(map(frozen, value)) if isinstance(value, list) else value
    return {name: frozen(value) for name, value in arguments.items()}


def without(record: dict, *keys: str) -> dict:
    return {name: value for name, value in record.items() if name not in keys}
