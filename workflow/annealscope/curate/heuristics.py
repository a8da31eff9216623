"""Heuristic quality filters: datatrove's Gopher, C4 and FineWeb rules, applied to each shard's batches.

A source's `heuristics` maps a filter's name to its datatrove keyword arguments: a filter named is on, with
datatrove's defaults for what it leaves out; one not named is off. Each document goes through the filters in
FILTERS' order and is counted under the first filter and reason that removed it. C4's filter also drops lines
(citations, lines without enough words), so a document it keeps may come out shorter.

Words are split by a regular expression (runs of word characters, runs of other non-space characters), not by
datatrove's spaCy tokenizer for English, which made the four filters 5-44x slower on web text
(benchmarks/heuristics_speed.py). Sentences are datatrove's own regular-expression split.

`GopherQuality` and `GopherRepetition` are datatrove's Gopher quality and repetition filters with the same rules,
order and reasons, but they count a whole batch's words at once (`annealscope.curate.word_spans`: the same
words, found with numpy, each distinct character classed once; `annealscope.curate.repetition`: each n-gram a
64-bit hash) instead of splitting each text and looping over every word and n-gram in Python;
tests/test_curate.py checks their verdicts against datatrove's. Where datatrove divides by zero (a text without
words, with `min_doc_words` off) `GopherQuality` removes the document as `gopher_short_doc`. `C4Quality` is
datatrove's C4 filter that stops counting sentences once a document has enough (same verdicts and kept text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

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
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_quality_filter import PUNCTUATION_SET
from datatrove.pipeline.filters.gopher_repetition_filter import find_duplicates as repeated_parts
from datatrove.utils.text import TERMINAL_PUNCTUATION, split_into_sentences
from datatrove.utils.word_tokenizers import WhitespaceTokenizer, load_word_tokenizer

from annealscope.curate.word_spans import PATTERN_RULES, CharacterClasses, WordSpans, chunks

WORD = regex.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")
ASCII_WORD = re.compile(WORD.pattern, re.ASCII)  # the same words in ASCII text, about 1.5x faster
SENTENCE_END = re.compile(f"[{re.escape(''.join(TERMINAL_PUNCTUATION))}\n]")
ASCII_ENDS = re.escape("".join(sorted(character for character in TERMINAL_PUNCTUATION if character.isascii())))
# datatrove's sentence in ASCII text (`\p{Lu}` is [A-Z]), found about 3x faster by `re` than by `regex`
ASCII_SENTENCE = re.compile(rf"(?:[A-Z]\.|.)+?[{ASCII_ENDS}\n]+[\"'”]?")


class RegexWords(WhitespaceTokenizer):
    """datatrove's fallback tokenizer (regular-expression sentences) with regular-expression words."""

    def word_tokenize(self, text: str) -> list[str]:
        return (ASCII_WORD if text.isascii() else WORD).findall(text)


def is_not_symbol(character: str) -> bool:
    return character not in PUNCTUATION_SET


class GopherQuality(GopherQualityFilter):
    """datatrove's `GopherQualityFilter`, its word statistics counted for a whole batch at once with numpy."""

    def __init__(self, **arguments):
        super().__init__(**arguments)
        self.classes = CharacterClasses((*PATTERN_RULES, is_not_symbol, str.isalpha))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        texts = [doc.text for doc in batch]
        return [verdict for part in chunks(texts) for verdict in self._verdicts(texts[part])]

    def _verdicts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        words = WordSpans.pattern_words(texts, self.classes)
        rules = len(PATTERN_RULES)  # the classes' bits: the split's rules, then is_not_symbol and str.isalpha
        not_symbol, with_letter = words.with_bit(1 << rules), words.with_bit(1 << (rules + 1))
        return [self._verdict(text, *counts) for text, *counts in zip(
            texts, words.per_text(), words.per_text(not_symbol), words.per_text(with_letter),
            words.per_text(words.lengths() * not_symbol), words.texts_with(self.stop_words), strict=True)]

    def _verdict(self, text: str, n_words: int, n_not_symbol: int, n_with_letter: int, kept_length: int,
                 n_stop_words: int) -> bool | tuple[bool, str]:
        """datatrove's rules, in its order, on one text's counts."""
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
        if self.min_stop_words and n_stop_words < self.min_stop_words:
            return False, "gopher_enough_stop_words"
        return True


class GopherRepetition(GopherRepetitionFilter):
    """datatrove's `GopherRepetitionFilter`: its line and paragraph rules as datatrove has them, its n-gram
    rules from statistics counted for a whole batch at once (annealscope.curate.repetition)."""

    def __init__(self, **arguments):
        super().__init__(**arguments)
        self.classes = CharacterClasses(PATTERN_RULES)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        verdicts = [self._line_verdict(doc.text) for doc in batch]
        pending = [index for index, verdict in enumerate(verdicts) if verdict is True]
        texts = [batch[index].text for index in pending]
        for part in chunks(texts):
            for index, verdict in zip(pending[part], self._ngram_verdicts(texts[part]), strict=True):
                verdicts[index] = verdict
        return verdicts

    def _line_verdict(self, text: str) -> bool | tuple[bool, str]:
        """datatrove's rules on repeated paragraphs and lines, in its order."""
        if not text:
            return False, "empty"
        paragraphs = self.paragraph_exp.split(text.strip())
        repeats, characters = repeated_parts(paragraphs)
        if self.dup_para_frac and repeats / len(paragraphs) > self.dup_para_frac:
            return False, "dup_para_frac"
        if self.dup_para_char_frac and characters / len(text) > self.dup_para_char_frac:
            return False, "dup_para_char_frac"
        lines = self._line_splitter.split(text)
        repeats, characters = repeated_parts(lines)
        if self.dup_line_frac and repeats / len(lines) > self.dup_line_frac:
            return False, "dup_line_frac"
        if self.dup_line_char_frac and characters / len(text) > self.dup_line_char_frac:
            return False, "dup_line_char_frac"
        return True

    def _ngram_verdicts(self, texts: list[str]) -> list[bool | tuple[bool, str]]:
        """datatrove's n-gram rules, in its order, on texts that passed the line rules."""
        from annealscope.curate.repetition import NGrams  # pandas: imported only by the jobs that use this rule

        grams = NGrams(WordSpans.pattern_words(texts, self.classes))
        top = grams.top_characters([n for n, _ in self.top_n_grams])
        checks = [(f"top_{n}_gram", fraction, top[n]) for n, fraction in self.top_n_grams]
        checks += [(f"duplicated_{n}_n_grams", fraction, grams.duplicate_characters(n))
                   for n, fraction in self.dup_n_grams]
        return [next(((False, reason) for reason, fraction, characters in checks
                      if characters[index] >= 0 and characters[index] / len(text) > fraction), True)
                for index, text in enumerate(texts)]


class C4Quality(C4QualityFilter):
    """datatrove's `C4QualityFilter` (lines split at line breaks, as C4 does): the same rules, order, reasons and
    kept text, but a line's sentences are counted only while the document has fewer than `min_num_sentences`, and
    a line is searched for an over-long word only when it is longer than the limit."""

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if not self.split_paragraph:
            return super().filter(doc)
        num_sentences, kept_lines = 0, []
        for line in doc.text.splitlines():
            line = line.strip()
            words = line.split()
            self.stat_update("line-total")
            if (self.max_word_length != -1 and len(line) > self.max_word_length
                    and words and max(map(len, words)) > self.max_word_length):
                self.stat_update("line-filter-too_long_word")
                continue
            if self.remove_citations:
                line = CITATION_REGEX.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
                self.stat_update("line-filter-no_terminal_punc")
                continue
            if len(words) < self.min_words_per_line:
                self.stat_update("line-filter-too_few_words")
                continue
            line_l = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in line_l:
                return False, "lorem_ipsum"
            if self.filter_javascript and "javascript" in line_l:
                self.stat_update("line-filter-javascript")
                continue
            if self.filter_curly_bracket and "{" in line:
                return False, "curly_bracket"
            if self.filter_policy and any(phrase in line_l for phrase in POLICY_SUBSTRINGS):
                self.stat_update("line-filter-policy")
                continue
            if num_sentences < self.min_num_sentences:
                num_sentences += self._sentences(line, self.min_num_sentences - num_sentences)
            kept_lines.append(line)
            self.stat_update("line-kept")
        if num_sentences < self.min_num_sentences:
            return False, "too_few_sentences"
        doc.text = "\n".join(kept_lines).strip()
        return True

    def _sentences(self, line: str, enough: int) -> int:
        """The line's number of sentences as datatrove counts them (a line without a sentence end is one), or
        `enough` once it has that many. The regular expression only reads up to the line's last sentence end:
        from each start in the rest it would scan to the line's end and find nothing."""
        if self._sentence_pattern is None:
            return len(split_into_sentences(line, self.language))
        last = SENTENCE_END.search(line[::-1])
        found = 0
        sentence = ASCII_SENTENCE if line.isascii() else self._sentence_pattern
        for match in sentence.finditer(line, 0, len(line) - last.start() if last else 0):
            found += bool(match.group().strip())
            if found == enough:
                break
        return max(found, 1)

    @cached_property
    def _sentence_pattern(self) -> regex.Pattern | None:
        """The regular expression that datatrove's fallback tokenizer splits sentences with, if it is the one."""
        tokenizer = load_word_tokenizer(self.language)
        return tokenizer._sent_regex if isinstance(tokenizer, WhitespaceTokenizer) else None


FILTERS: dict[str, type[BaseFilter]] = {
    "gopher_quality": GopherQuality,
    "gopher_repetition": GopherRepetition,
    "c4_quality": C4Quality,
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
        left = [(record, Document(text=record["text"], id=str(record.get("id", "")))) for record in documents]
        for name, step in self.filters.items():  # filter by filter, each over the batch: what a filter
            passed = []                           # shortened, the next one reads
            for (record, document), verdict in zip(left, step.filter_batch([doc for _, doc in left]), strict=True):
                if verdict is True and not document.text.strip():
                    verdict = (False, "no_text_left")
                if verdict is True:
                    passed.append((record, document))
                else:
                    reason = verdict[1] if isinstance(verdict, tuple) else "removed"
                    removed[name][reason] = removed[name].get(reason, 0) + 1
            left = passed
        return [record if document.text == record["text"]
                else {**without(record, "key", "tokens", "ids"), "text": document.text}
                for record, document in left], removed


def tuples(arguments: dict) -> dict:
    """YAML's lists as the tuples datatrove expects (`str.endswith` takes a tuple, n-gram limits are pairs)."""
    def frozen(value):
        return tuple(map(frozen, value)) if isinstance(value, list) else value
    return {name: frozen(value) for name, value in arguments.items()}


def without(record: dict, *keys: str) -> dict:
    return {name: value for name, value in record.items() if name not in keys}
