"""Decontamination: drop training documents that share a word n-gram with any evaluation item; screening: find
the evaluation items that share one with any training document.

A batch is screened at once with numpy: every word is hashed to 64 bits, every run of the index's lengths
gets a hash from its words (annealscope.curate.text), and a run whose hash is an item n-gram's marks its
document; a bitmap of the index's hashes answers most runs before a binary search. Only marked documents are
checked word by word, so the result (which documents, and which task each is charged to) is exactly that of
the word-by-word check alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

import numpy as np

from annealscope.core.arrays import sorted_unique
from annealscope.curate.text import HashedWords, ngrams, run_hashes, words
from annealscope.curate.word_spans import word_hashes

MIN_ITEM_WORDS = 8
BITMAP_BITS = 20


class ContaminationIndex:
    """The n-grams of every evaluation item, each with the owners of the items it occurs in (a task, or an item's
    key). Items shorter than n words contribute their whole text when it has at least MIN_ITEM_WORDS words
    (shorter ones cannot be matched reliably)."""

    def __init__(self, items_by_owner: dict[Hashable, Iterable[str]], n: int = 13):
        self.n = n
        self.index: dict[int, dict[tuple[str, ...], list[Hashable]]] = {}
        for owner, texts in items_by_owner.items():
            for text in texts:
                tokens = words(text)
                length = min(n, len(tokens))
                if length >= min(n, MIN_ITEM_WORDS):
                    for gram in ngrams(tokens, length):
                        owners = self.index.setdefault(length, {}).setdefault(gram, [])
                        if not owners or owners[-1] != owner:
                            owners.append(owner)
        self.hashes = {length: self._gram_hashes(list(grams), length) for length, grams in self.index.items()}
        self.bitmaps = {length: bitmap(hashes) for length, hashes in self.hashes.items()}

    def _gram_hashes(self, grams: list[tuple[str, ...]], length: int) -> np.ndarray:
        """The sorted hashes of the item n-grams of one length (as `window_hashes` computes them), each distinct
        word hashed once: the n-grams repeat every word about n times, and hashing them all held some 200 bytes
        a word at once (1.7 GB for MMLU's 14,042 items)."""
        distinct: dict[str, int] = {}
        places = np.fromiter((distinct.setdefault(word, len(distinct)) for gram in grams for word in gram),
                             dtype=np.int64, count=len(grams) * length)
        return sorted_unique(run_hashes(word_hashes(list(distinct))[places].reshape(len(grams), length)))

    def found(self, text: str) -> Iterator[list[Hashable]]:
        """The owners of each evaluation n-gram in `text`, in order of length, then of place."""
        tokens = words(text)
        for length, grams in self.index.items():
            for i in range(len(tokens) - length + 1):
                owners = grams.get(tuple(tokens[i:i + length]))
                if owners is not None:
                    yield owners

    def match(self, text: str) -> Hashable | None:
        """The owner charged for `text`: of its first evaluation n-gram, the item indexed last; or None."""
        return next((owners[-1] for owners in self.found(text)), None)

    def suspects(self, hashed: HashedWords) -> set[int]:
        """Which texts have a run of words whose hash is an item n-gram's (every text with a match, and rarely
        one more by a hash collision)."""
        found: set[int] = set()
        for length, hashes, owners in hashed.windows(sorted(self.hashes)):
            table = self.hashes[length]
            candidates = np.flatnonzero(self.bitmaps[length][hashes >> np.uint64(64 - BITMAP_BITS)])
            places = np.minimum(np.searchsorted(table, hashes[candidates]), len(table) - 1)
            found.update(owners[candidates[table[places] == hashes[candidates]]].tolist())
        return found

    def tasks(self, texts: list[str], hashed: HashedWords | None = None) -> list[Hashable | None]:
        """The task each text is charged to (`match`), or None; `hashed` are the texts' hashed words, when the
        caller has them."""
        suspects = self.suspects(hashed or HashedWords.of(texts)) if self.index else set()
        return [self.match(text) if position in suspects else None for position, text in enumerate(texts)]

    def owners(self, texts: list[str], hashed: HashedWords | None = None) -> set[Hashable]:
        """Every owner with an n-gram in any of `texts`."""
        suspects = self.suspects(hashed or HashedWords.of(texts)) if self.index else set()
        return {owner for position in suspects for owners in self.found(texts[position]) for owner in owners}


def bitmap(hashes: np.ndarray) -> np.ndarray:
    """Whether any of `hashes` has each value of its top BITMAP_BITS bits."""
    marks = np.zeros(1 << BITMAP_BITS, dtype=bool)
    marks[hashes >> np.uint64(64 - BITMAP_BITS)] = True
    return marks
