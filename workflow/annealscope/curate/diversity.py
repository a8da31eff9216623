"""Descriptive statistics of a curated source for its manifest: diversity and document lengths."""

from __future__ import annotations

import numpy as np

from annealscope.curate.text import ngrams, words


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct word n-grams over all n-grams (Li et al. 2016), lower-cased, across the documents. The n-grams
    are counted by their 64-bit hashes (8 bytes each, where a set of the n-grams held ~60× the text)."""
    hashes = [np.fromiter(map(hash, ngrams(words(text), n)), dtype=np.int64) for text in texts]
    total = sum(len(values) for values in hashes)
    return len(np.unique(np.concatenate(hashes))) / total if total else 0.0


def length_histogram(token_counts: list[int]) -> dict[str, int]:
    """Documents per power-of-two bin of tokens: {"[16, 32)": 12, ...}."""
    if not token_counts:
        return {}
    exponents = np.floor(np.log2(np.maximum(token_counts, 1))).astype(int)
    values, counts = np.unique(exponents, return_counts=True)
    return {f"[{2 ** value}, {2 ** (value + 1)})": int(count) for value, count in zip(values, counts, strict=True)}


def describe_documents(texts: list[str], token_counts: list[int]) -> dict:
    return {"distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2), "distinct_3": distinct_n(texts, 3),
            "mean_tokens": float(np.mean(token_counts)) if token_counts else 0.0,
            "median_tokens": float(np.median(token_counts)) if token_counts else 0.0,
            "length_histogram": length_histogram(token_counts)}
