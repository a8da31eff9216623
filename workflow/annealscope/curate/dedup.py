"""Deduplication within a source: exact (content hash) and near (MinHash LSH over word shingles)."""

from __future__ import annotations

import hashlib

from tqdm import tqdm

from annealscope.curate.text import ngrams, words


def exact_dedup(documents: list[dict]) -> list[dict]:
    """The first document of each distinct text, in order."""
    unique: dict[str, dict] = {}
    for document in documents:
        unique.setdefault(hashlib.sha1(document["text"].encode()).hexdigest(), document)
    return list(unique.values())


def shingles(text: str, size: int) -> set[bytes]:
    tokens = words(text)
    if len(tokens) < size:
        return {" ".join(tokens).encode()}
    return {" ".join(gram).encode() for gram in ngrams(tokens, size)}


def near_dedup(documents: list[dict], threshold: float, num_perm: int = 128, shingle: int = 5,
               seed: int = 1) -> list[dict]:
    """Keep a document unless an earlier kept one has estimated Jaccard similarity ≥ `threshold`."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept = []
    for index, document in enumerate(tqdm(documents, desc="near-dedup", unit="doc", mininterval=5)):
        signature = MinHash(num_perm=num_perm, seed=seed)
        signature.update_batch(list(shingles(document["text"], shingle)))
        if not lsh.query(signature):
            lsh.insert(str(index), signature)
            kept.append(document)
    return kept
