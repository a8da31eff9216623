"""Deduplication across a whole source, in stages so that no job holds the documents:

1. each shard job computes, per document, a 64-bit key of its exact text and one 64-bit key per MinHash LSH
   band (`Signer`), a few hundred bytes a document;
2. one job per source (`find_duplicates`) reads the keys of every shard, one band at a time, and decides which
   documents go: a repeat of an earlier text (exact), then a document that shares a band with an earlier kept
   one (near; MinHash LSH as datasketch's `MinHashLSH` queries it, with the same bands);
3. each shard's next job drops its own documents named in that decision.

Order is shard order, then document order within the shard, which is input order: the first document of a
group of duplicates is kept wherever its copies are.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from annealscope.core.io import atomic_path
from annealscope.curate.text import ngrams, words

EXACT, TOKENS = "exact", "tokens"
MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB], dtype=np.uint64)


def shingles(text: str, size: int) -> set[bytes]:
    tokens = words(text)
    if len(tokens) < size:
        return {" ".join(tokens).encode()}
    return {" ".join(gram).encode() for gram in ngrams(tokens, size)}


def exact_key(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")


def band_parameters(near: dict) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for the threshold and permutations."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=near["threshold"], num_perm=near["num_perm"])
    return lsh.b, lsh.r


class Signer:
    """Per document: its exact key and, with near-dedup on, one key per LSH band of its MinHash signature."""

    def __init__(self, near: dict | None, seed: int = 1):
        self.near, self.seed = near, seed
        self.bands, self.rows = band_parameters(near) if near else (0, 0)
        self.exact: list[np.ndarray] = []
        self.band_keys: list[np.ndarray] = []
        self.tokens: list[np.ndarray] = []

    def add(self, documents: list[dict]) -> None:
        """Sign a batch of documents (each with its `text` and `tokens`)."""
        self.exact.append(np.array([exact_key(document["text"]) for document in documents], dtype=np.uint64))
        self.tokens.append(np.array([document["tokens"] for document in documents], dtype=np.int64))
        if self.near and documents:
            from datasketch import MinHash

            signatures = MinHash.bulk([list(shingles(document["text"], self.near["shingle"]))
                                       for document in documents], num_perm=self.near["num_perm"], seed=self.seed)
            values = np.stack([signature.hashvalues for signature in signatures]).astype(np.uint64)
            self.band_keys.append(self._band_keys(values))

    def _band_keys(self, values: np.ndarray) -> np.ndarray:
        """A 64-bit key of each band's `rows` hash values (equal bands give equal keys)."""
        keys = np.empty((len(values), self.bands), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for band in range(self.bands):
                key = np.zeros(len(values), dtype=np.uint64)
                for column in values[:, band * self.rows:(band + 1) * self.rows].T:
                    key = (key ^ column) * MIX[0]
                    key ^= key >> np.uint64(31)
                keys[:, band] = key * MIX[1]
        return keys

    def save(self, path: str | Path) -> None:
        """One .npz: the exact keys, the token counts and each band's keys as its own member, so the dedup job
        reads one band of every shard at a time."""
        arrays = {EXACT: _joined(self.exact, np.uint64), TOKENS: _joined(self.tokens, np.int64)}
        if self.near:
            keys = np.concatenate(self.band_keys) if self.band_keys else np.zeros((0, self.bands), np.uint64)
            arrays |= {f"band{band}": np.ascontiguousarray(keys[:, band]) for band in range(self.bands)}
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def _joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def find_duplicates(signature_files: list[str | Path], near: dict | None) -> tuple[list[np.ndarray], list[dict]]:
    """The positions to drop in each shard, and the exact and near dedup step records of the whole source.
    Memory: about 40 bytes per document of the source (keys of one band at a time), never its text."""
    loaded = [np.load(path) for path in signature_files]
    sizes = np.array([len(data[EXACT]) for data in loaded])
    tokens = np.concatenate([data[TOKENS] for data in loaded]) if loaded else np.zeros(0, np.int64)
    keep = first_of_each(np.concatenate([data[EXACT] for data in loaded]))
    records = [_record("exact_dedup", np.ones(len(keep), bool), keep, tokens)]
    if near:
        bands = sum(name.startswith("band") for name in loaded[0].files) if loaded else 0
        survivors = np.flatnonzero(keep)
        near_keep = greedy_lsh([np.concatenate([data[f"band{band}"] for data in loaded])[survivors]
                                for band in range(bands)])
        after = keep.copy()
        after[survivors[~near_keep]] = False
        records.append({**_record("near_dedup", keep, after, tokens), "settings": near})
        keep = after
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return [np.flatnonzero(~keep[offsets[i]:offsets[i + 1]]) for i in range(len(loaded))], records


def _record(step: str, before: np.ndarray, after: np.ndarray, tokens: np.ndarray) -> dict:
    return {"step": step, "documents_in": int(before.sum()), "documents_out": int(after.sum()),
            "tokens_in": int(tokens[before].sum()), "tokens_out": int(tokens[after].sum())}


def first_of_each(keys: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each key."""
    keep = np.zeros(len(keys), dtype=bool)
    keep[np.unique(keys, return_index=True)[1]] = True
    return keep


def greedy_lsh(band_keys: list[np.ndarray]) -> np.ndarray:
    """Keep a document unless it shares a band key with an earlier kept document (in order), as querying and
    inserting into an LSH index one document at a time does. Only documents that collide in some band are
    visited one by one; the rest are kept at once."""
    count = len(band_keys[0]) if band_keys else 0
    keep = np.ones(count, dtype=bool)
    members, groups, offset = [], [], 0
    for keys in band_keys:
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        members.append(np.flatnonzero(shared))
        groups.append(inverse[shared] + offset)
        offset += len(counts)
    if not members:
        return keep
    members, groups = np.concatenate(members), np.concatenate(groups)
    order = np.argsort(members, kind="stable")
    members, groups = members[order], groups[order]
    taken = np.zeros(offset, dtype=bool)
    starts = np.flatnonzero(np.r_[True, members[1:] != members[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(members)], strict=True):
        mine = groups[start:end]
        if taken[mine].any():
            keep[members[start]] = False
        else:
            taken[mine] = True
    return keep
