"""Decontamination: drop training documents that share a word n-gram with any evaluation item."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from annealscope.curate.text import ngrams, words

MIN_ITEM_WORDS = 8


class ContaminationIndex:
    """The n-grams of every evaluation item, by task. Items shorter than n words contribute their
    whole text when it has at least MIN_ITEM_WORDS words (shorter ones cannot be matched reliably)."""

    def __init__(self, items_by_task: dict[str, Iterable[str]], n: int = 13):
        self.n = n
        self.index: dict[int, dict[tuple[str, ...], str]] = {}
        for task, texts in items_by_task.items():
            for text in texts:
                tokens = words(text)
                length = min(n, len(tokens))
                if length >= MIN_ITEM_WORDS:
                    for gram in ngrams(tokens, length):
                        self.index.setdefault(length, {})[gram] = task

    def match(self, text: str) -> str | None:
        """The task of the first evaluation n-gram found in `text`, or None."""
        tokens = words(text)
        for length, grams in self.index.items():
            for i in range(len(tokens) - length + 1):
                task = grams.get(tuple(tokens[i:i + length]))
                if task is not None:
                    return task
        return None

    def filter(self, documents: Iterable[dict]) -> tuple[list[dict], Counter]:
        kept, removed = [], Counter()
        for document in documents:
            task = self.match(document["text"])
            if task is None:
                kept.append(document)
            else:
                removed[task] += 1
        return kept, removed
