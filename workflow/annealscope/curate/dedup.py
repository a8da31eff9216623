"""Deduplication across a whole source, in stages so that no job holds the documents:

1. each shard job computes, per document, a 64-bit key of its exact text and one 64-bit key per MinHash LSH
   band (`Signer`) of its shingles, the runs of `shingle` consecutive token ids (the ids the shard job encoded
   anyway), a few hundred bytes a document;
2. one job per source (`find_duplicates`) reads the keys of every shard once, one band at a time, splits them by
   value into one scratch file a pass, and sorts one pass's keys at a time (a larger source takes more passes,
   not more memory), and decides which documents go: a repeat of an earlier text (exact), then a document that
   shares a band with an earlier kept one (near; MinHash LSH as datasketch's `MinHashLSH` queries it, with the
   same bands), from the colliding pairs spilled to scratch files and decided one range of documents at a
   time;
3. each shard's next job drops its own documents named in that decision.

Order is shard order, then document order within the shard, which is input order: the first document of a
group of duplicates is kept wherever its copies are.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from annealscope.core.arrays import span_positions
from annealscope.core.io import atomic_path

EXACT, TOKENS = "exact", "tokens"
PART_DOCUMENTS = 1 << 21  # documents whose keys one pass of the dedup job sorts at once (~50 bytes each)
ROUNDS = 16  # vectorised rounds of a range's near-dedup decision before the documents still open go one by one
MIX = np.array([0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB], dtype=np.uint64)
SHINGLE_MIX = np.array([0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5],
                       dtype=np.uint64)


def exact_key(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")


def band_parameters(near: dict) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH picks for the threshold and permutations."""
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=near["threshold"], num_perm=near["num_perm"])
    return lsh.b, lsh.r


def shingle_hashes(ids: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit hash of every run of `size` consecutive token ids of each document (a document shorter than
    `size` is one shingle of all its ids), and the index of each document's first shingle. Vectorised over the
    batch: no Python work per token."""
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    padded_lengths = np.maximum(lengths, 1) + size - 1  # zeros after each document: no run crosses two
    padded = np.zeros(int(padded_lengths.sum()), dtype=np.uint64)
    starts = np.concatenate([[0], np.cumsum(padded_lengths)[:-1]])
    if lengths.sum():
        padded[span_positions(starts, lengths)] = np.concatenate(ids).astype(np.uint64) + np.uint64(1)
    count = len(padded) - size + 1
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            hashes = (hashes ^ padded[offset:offset + count]) * SHINGLE_MIX[offset % len(SHINGLE_MIX)]
            hashes ^= hashes >> np.uint64(29)
    shingles = np.maximum(lengths - size + 1, 1)
    first = np.concatenate([[0], np.cumsum(shingles)[:-1]])
    positions = np.repeat(starts, shingles) + np.arange(shingles.sum()) - np.repeat(first, shingles)
    return hashes[positions], first


class MinHasher:
    """MinHash signatures of shingle hashes: for each of `num_perm` random bijections of the 64-bit hashes (an
    odd multiplier and an offset mod 2^64: datasketch 2's `affine64` scheme, computed for a whole batch at
    once), the least value over a document's shingles. Two documents agree in one permutation with probability
    about the Jaccard similarity of their shingle sets."""

    def __init__(self, num_perm: int, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.multipliers = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.offsets = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64)

    def __call__(self, hashes: np.ndarray, first: np.ndarray) -> np.ndarray:
        """(documents, num_perm) signatures; `first` indexes each document's first shingle in `hashes`."""
        signatures = np.empty((len(first), len(self.multipliers)), dtype=np.uint64)
        if not len(first):
            return signatures
        with np.errstate(over="ignore"):
            for column, (multiplier, offset) in enumerate(zip(self.multipliers, self.offsets, strict=True)):
                signatures[:, column] = np.minimum.reduceat(hashes * multiplier + offset, first)
        return signatures


class Signer:
    """Per document: its exact key and, with near-dedup on, one key per LSH band of the MinHash signature of its
    token-id shingles."""

    def __init__(self, near: dict | None, seed: int = 1):
        self.near = near
        self.bands, self.rows = band_parameters(near) if near else (0, 0)
        self.minhash = MinHasher(near["num_perm"], seed) if near else None
        self.exact: list[np.ndarray] = []
        self.band_keys: list[np.ndarray] = []
        self.tokens: list[np.ndarray] = []

    def add(self, documents: list[dict]) -> None:
        """Sign a batch of documents (each with its text's `exact_key` as `key`, its token `ids` and their count,
        `tokens`)."""
        self.exact.append(np.array([document["key"] for document in documents], dtype=np.uint64))
        self.tokens.append(np.array([document["tokens"] for document in documents], dtype=np.int64))
        if self.near and documents:
            values = self.minhash(*shingle_hashes([document["ids"] for document in documents], self.near["shingle"]))
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


def find_duplicates(signature_files: list[str | Path], near: dict | None,
                    scratch: str | Path | None = None) -> tuple[list[np.ndarray], list[dict]]:
    """The positions to drop in each shard, and the exact and near dedup step records of the whole source.

    Memory: a few flags a document of the source, a flag per key that documents share, and per pass the keys of
    about PART_DOCUMENTS documents: each band's keys are read once from the shards' files and split by value
    into one file a pass under `scratch` (`_key_parts`), so a source of more documents takes more passes, not
    more keys held, and its reads grow with its documents, not their square. The (document, band) pairs that
    collide go to files there too and are decided a quarter of PART_DOCUMENTS documents at a time
    (`greedy_lsh`). At most one file is open at a time, however many shards the source has."""
    offsets = np.concatenate([[0], np.cumsum([len(_member(path, EXACT)) for path in signature_files])]
                             ).astype(np.int64)
    parts = max(1, -(-int(offsets[-1]) // PART_DOCUMENTS))
    everyone = np.ones(int(offsets[-1]), dtype=bool)
    keep = np.ones_like(everyone)
    with tempfile.TemporaryDirectory(prefix="dedup-", dir=scratch) as spill:
        for positions, keys in _key_parts(signature_files, offsets, EXACT, everyone, parts, Path(spill)):
            _, first = np.unique(keys, return_index=True)
            keep[positions] = False
            keep[positions[first]] = True
        records = [_record("exact_dedup", signature_files, offsets, everyone, keep)]
        if near:
            bands = _band_count(signature_files[0]) if signature_files else 0
            after = keep.copy()
            after[keep] = greedy_lsh(int(keep.sum()), (_key_parts(signature_files, offsets, f"band{band}", keep,
                                                                  parts, Path(spill)) for band in range(bands)),
                                     Path(spill))
            records.append({**_record("near_dedup", signature_files, offsets, keep, after), "settings": near})
            keep = after
    return [np.flatnonzero(~keep[offsets[i]:offsets[i + 1]]) for i in range(len(signature_files))], records


def _member(path: str | Path, member: str) -> np.ndarray:
    """One array of a shard's signature file, read whole and the file closed again: a source's thousands of
    shards are never open at once (a process may open 1,024 files on many systems)."""
    with np.load(path) as data:
        return data[member]


def _band_count(path: str | Path) -> int:
    with np.load(path) as data:
        return sum(name.startswith("band") for name in data.files)


def _key_parts(signature_files: list, offsets: np.ndarray, member: str, chosen: np.ndarray, parts: int,
               spill: Path):
    """(positions among the chosen documents, keys) of the chosen documents' `member` keys, in `parts` passes
    by the keys' value modulo `parts` (equal keys fall in one pass), positions ascending. With more than one
    pass, each shard's keys are read once and appended, part by part, to one file a pass under `spill` (16
    bytes a document), which its pass reads back and deletes."""
    shard_chosen = [chosen[offsets[i]:offsets[i + 1]] for i in range(len(signature_files))]
    before = np.cumsum([0] + [int(mine.sum()) for mine in shard_chosen])
    shards = ((before[index], _member(path, member)[shard_chosen[index]])
              for index, path in enumerate(signature_files))
    if parts == 1:
        read = list(shards)
        yield (np.concatenate([start + np.arange(len(values)) for start, values in read] or [np.zeros(0, np.int64)]),
               np.concatenate([values for _, values in read] or [np.zeros(0, np.uint64)]))
        return
    files = [spill / f"{member}.{part}" for part in range(parts)]
    for start, values in shards:
        part = (values % np.uint64(parts)).astype(np.intp)
        order = np.argsort(part, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(np.bincount(part, minlength=parts))])
        del part
        for number, path in enumerate(files):
            mine = order[bounds[number]:bounds[number + 1]]
            with open(path, "ab") as handle:
                np.column_stack([(start + mine).astype(np.uint64), values[mine]]).tofile(handle)
    for path in files:
        pairs = np.fromfile(path, dtype=np.uint64).reshape(-1, 2)
        path.unlink()
        yield pairs[:, 0].astype(np.int64), pairs[:, 1]


def _record(step: str, signature_files: list, offsets: np.ndarray, before: np.ndarray, after: np.ndarray) -> dict:
    """The step's documents and tokens in and out, the tokens read shard by shard."""
    tokens_in = tokens_out = 0
    for index, path in enumerate(signature_files):
        tokens, shard = _member(path, TOKENS), slice(offsets[index], offsets[index + 1])
        tokens_in += int(tokens[before[shard]].sum())
        tokens_out += int(tokens[after[shard]].sum())
    return {"step": step, "documents_in": int(before.sum()), "documents_out": int(after.sum()),
            "tokens_in": tokens_in, "tokens_out": tokens_out}


def greedy_lsh(count: int, bands, spill: Path) -> np.ndarray:
    """Keep a document unless it shares a band key with an earlier kept document (in order), as querying and
    inserting into an LSH index one document at a time does. `bands` gives, band by band, (positions, keys)
    parts of its documents' keys (every document in one part of each band, positions ascending).

    Only documents that collide in some band are visited. Their (document, group) pairs, a group being one key
    that documents share, go to one file a range of documents under `spill` (`_collisions`), and are decided a
    range at a time (`_decide`), so memory holds one range's pairs and one flag a group, not every pair, and no
    file stays open."""
    step = max(1, PART_DOCUMENTS // 4)
    group_count = _collisions(bands, spill, step)
    keep = np.ones(count, dtype=bool)
    taken = np.zeros(group_count, dtype=bool)  # the groups of a kept document
    for index in range(-(-count // step)):
        path = spill / f"pairs.{index}"
        if path.exists():
            pairs = np.fromfile(path, dtype=np.int64).reshape(-1, 2)
            path.unlink()
            pairs = pairs[np.argsort(pairs[:, 0], kind="stable")]
            keep[_decide(pairs[:, 0], pairs[:, 1], taken)] = False
    return keep


def _collisions(bands, spill: Path, step: int) -> int:
    """Append the (document, group) pairs of every band's keys that two or more documents share, groups numbered
    across every band and part, as int64 pairs to one file under `spill` a range of `step` documents
    (`pairs.<range>`); the number of groups."""
    group_count = 0
    for band in bands:
        for positions, keys in band:
            _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
            shared = counts[inverse] > 1
            named, group = np.unique(inverse[shared], return_inverse=True)  # the shared keys, numbered anew
            pairs = np.column_stack([positions[shared], group + group_count]).astype(np.int64)
            group_count += len(named)
            for chunk in np.split(pairs, np.flatnonzero(np.diff(pairs[:, 0] // step)) + 1):  # positions ascend
                if len(chunk):
                    with open(spill / f"pairs.{chunk[0, 0] // step}", "ab") as handle:
                        chunk.tofile(handle)
    return group_count


def _decide(members: np.ndarray, groups: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """The documents to drop of one range of documents, given its (document, group) pairs sorted by document and
    the groups every earlier range kept a document of (`taken`, updated with this range's).

    In rounds, each for all documents at once: a document is dropped once an earlier member of one of its groups
    is kept, and kept once every earlier member of all its groups is dropped. Each round settles at least the
    first open document; duplicates settle in two, and what a long chain of bands leaves after ROUNDS is settled
    one document at a time. A kept document never shares a group with an earlier open one, so its groups may be
    marked taken before those are settled."""
    documents, document = np.unique(members, return_inverse=True)
    order = np.lexsort((document, groups))
    in_group, group = document[order], groups[order]
    first = np.r_[True, group[1:] != group[:-1]]
    state = np.zeros(len(documents), dtype=np.int8)  # 0 open, 1 kept, -1 dropped
    state[in_group[taken[group]]] = -1
    for _ in range(ROUNDS):
        open_ = state == 0
        if not open_.any():
            break
        blocked = np.zeros(len(documents), dtype=bool)
        blocked[in_group[_any_earlier(state[in_group] == 1, first)]] = True
        waiting = np.zeros(len(documents), dtype=bool)
        waiting[in_group[_any_earlier(state[in_group] == 0, first)]] = True
        state[open_ & blocked] = -1
        state[open_ & ~blocked & ~waiting] = 1
    taken[group[state[in_group] == 1]] = True
    bounds = np.searchsorted(document, np.arange(len(documents) + 1))
    for index in np.flatnonzero(state == 0):
        mine = groups[bounds[index]:bounds[index + 1]]
        if taken[mine].any():
            state[index] = -1
        else:
            state[index], taken[mine] = 1, True
    return documents[state == -1]


def _any_earlier(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    """For each element of a run (runs start where `first`), whether an earlier element of its run is flagged."""
    counts = np.cumsum(flags)
    before = counts - flags
    return before - before[first][np.cumsum(first) - 1] > 0
