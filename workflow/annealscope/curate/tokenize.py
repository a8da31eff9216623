"""Token arrays (see annealscope.core.tokens), written as a stream: a source's shards, encoded once when a shard
job reads them and copied on past deduplication and decontamination; the replay corpus's shards; the
pre-training corpus.

An array holds each document's ids followed by EOS; its sidecar (same name, .json) holds the dtype, the EOS id,
the vocabulary size and the totals.
"""

from __future__ import annotations

import itertools
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from annealscope.core.corpora import read_piece
from annealscope.core.io import atomic_path, read_json, read_jsonl, write_json
from annealscope.core.tokens import backend_tokenizer, eos_token_id, token_dtype
from annealscope.curate.dedup import exact_key

BATCH_DOCUMENTS = 2048
RECENT_TOKENS = 1 << 23  # token ids a shard job keeps for repeated texts (16 MB as uint16, 32 MB as uint32)


class TokenEncoder:
    """The base model's fast tokenizer, encoding a batch of texts at once (no special tokens) to arrays of the
    dtype that holds its vocabulary."""

    def __init__(self, tokenizer_dir: str | Path):
        self.backend = backend_tokenizer(tokenizer_dir)
        self.vocab_size = self.backend.get_vocab_size(with_added_tokens=True)
        self.eos = eos_token_id(tokenizer_dir, self.backend)
        self.dtype = token_dtype(self.vocab_size)

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        return [np.asarray(encoding.ids, dtype=self.dtype)
                for encoding in self.backend.encode_batch_fast(texts, add_special_tokens=False)]

    def meta(self) -> dict:
        return {"dtype": self.dtype.name, "vocab_size": self.vocab_size, "eos_token_id": self.eos}


class ShardEncoder:
    """A shard job's encoder: adds to each document its text's exact `key` (the one exact dedup compares),
    its token `ids` (written to the shard's token array, never to its JSONL) and their count, `tokens`. Each
    distinct text is encoded once: a repeat of a text encoded lately gets the same ids again (a pool's exact
    duplicates mostly lie close together). It remembers at most `limit` ids, the oldest forgotten first."""

    def __init__(self, encode: TokenEncoder, limit: int = RECENT_TOKENS):
        self.encode, self.limit = encode, limit
        # Forgotten oldest first: OrderedDict pops its first item in O(1), where a plain dict finds its first
        # key by scanning past every slot popped before it
        self.recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self.held = 0

    def __call__(self, documents: list[dict]) -> list[dict]:
        keys = [exact_key(document["text"]) for document in documents]
        for key, document, ids in zip(keys, documents, self._ids(keys, [document["text"] for document in documents]),
                                      strict=True):
            document["key"], document["ids"], document["tokens"] = key, ids, len(ids)
        return documents

    def count(self, texts: list[str]) -> list[int]:
        """Token counts, for a `max_tokens` cap: the ids are remembered, so the documents read on are not
        encoded again."""
        return [len(ids) for ids in self.ids(texts)]

    def ids(self, texts: list[str]) -> list[np.ndarray]:
        return self._ids([exact_key(text) for text in texts], texts)

    def _ids(self, keys: list[int], texts: list[str]) -> list[np.ndarray]:
        known = {key: self.recent[key] for key in keys if key in self.recent}
        fresh = {key: text for key, text in zip(keys, texts, strict=True) if key not in known}
        encoded = dict(zip(fresh, self.encode(list(fresh.values())), strict=True))
        self._remember(encoded)
        return [known.get(key, encoded.get(key)) for key in keys]

    def _remember(self, encoded: dict[int, np.ndarray]) -> None:
        for key, ids in encoded.items():
            self.recent[key] = ids
            self.held += len(ids)
        while self.held > self.limit:
            self.held -= len(self.recent.popitem(last=False)[1])


class TokenSink:
    """Documents' ids appended to an open array, EOS after each, counted."""

    def __init__(self, handle, meta: dict):
        self.handle, self.meta = handle, meta
        self.eos, self.dtype = meta["eos_token_id"], np.dtype(meta["dtype"])
        self.documents = self.tokens = 0

    def add(self, ids: list[np.ndarray]) -> None:
        lengths = np.fromiter((len(document) + 1 for document in ids), dtype=np.int64, count=len(ids))
        flat = np.empty(int(lengths.sum()), dtype=self.dtype)
        ends = np.cumsum(lengths)
        for document, end, length in zip(ids, ends, lengths, strict=True):
            flat[end - length:end - 1] = document
        flat[ends - 1] = self.eos
        flat.tofile(self.handle)
        self.documents, self.tokens = self.documents + len(ids), self.tokens + flat.size

    def summary(self) -> dict:
        """The array's sidecar: its meta and what was written."""
        return {**self.meta, "tokens": self.tokens, "documents": self.documents,
                "mean_document_tokens": self.tokens / self.documents if self.documents else 0.0}


@contextmanager
def token_array(out_bin: str | Path, meta: dict) -> Iterator[TokenSink]:
    """A TokenSink onto `out_bin`; on a clean exit the array and its sidecar are written in place (atomically)."""
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as handle:
        sink = TokenSink(handle, meta)
        yield sink
    write_json(Path(out_bin).with_suffix(".json"), sink.summary())


class TokenRanges:
    """An array written by `token_array`, read back in order a batch of documents at a time; closing it checks
    that every id was taken."""

    def __init__(self, array_bin: str | Path):
        self.path = array_bin
        meta = read_json(Path(array_bin).with_suffix(".json"))
        self.dtype, self.eos = np.dtype(meta["dtype"]), meta["eos_token_id"]
        self.handle = open(array_bin, "rb")  # noqa: SIM115 (closed by __exit__)

    def take(self, lengths: list[int]) -> list[np.ndarray]:
        """The next documents' ids (without EOS), given their token counts."""
        sizes = np.asarray(lengths, dtype=np.int64) + 1
        flat = np.fromfile(self.handle, dtype=self.dtype, count=int(sizes.sum()))
        ends = np.cumsum(sizes)
        if flat.size != int(sizes.sum()) or (flat.size and (flat[ends - 1] != self.eos).any()):
            raise ValueError(f"{self.path}: its token ids do not match its documents' token counts; remake it "
                             "(rerun the job that wrote it)")
        return [flat[end - size:end - 1] for end, size in zip(ends, sizes, strict=True)]

    def __enter__(self) -> TokenRanges:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        left = self.handle.read(1)
        self.handle.close()
        if error is None and left:
            raise ValueError(f"{self.path}: more token ids than its documents hold; remake it (rerun the job "
                             "that wrote it)")


def use_threads(threads: int | None) -> None:
    """Let the fast tokenizer encode a batch on `threads` cores (all when None)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)


def write_tokens(texts: Iterable[str], tokenizer_dir: str | Path, out_bin: str | Path, description: str,
                 threads: int | None = None) -> dict:
    """Tokenize every text with the fast tokenizer's parallel `encode_batch_fast` on `threads` cores, streaming
    batches to the array (atomically, with its sidecar). No texts give an empty array."""
    use_threads(threads)
    encode = TokenEncoder(tokenizer_dir)
    return _stream(texts, encode, encode.meta(), out_bin, description)


def tokenize_pieces(pieces: list[dict], tokenizer_dir: str | Path, out_bin: str | Path,
                    cache_dir: str | Path | None = None, threads: int | None = None) -> dict:
    """One shard of a corpus (its pieces, annealscope.core.shards) tokenized to `out_bin`: a capped hub part's
    texts are counted for the cap and written from the same encoding (`ShardEncoder`)."""
    use_threads(threads)
    encoder = TokenEncoder(tokenizer_dir)
    encode = ShardEncoder(encoder)
    texts = (document.text for piece in pieces for document in read_piece(piece, cache_dir, encode.count))
    return _stream(texts, encode.ids, encoder.meta(), out_bin, f"tokenize {Path(out_bin).parent.name} "
                   f"{Path(out_bin).stem}")


def _stream(texts: Iterable[str], encode, meta: dict, out_bin: str | Path, description: str) -> dict:
    iterator = iter(texts)
    with token_array(out_bin, meta) as sink, tqdm(desc=description, unit="doc", mininterval=5) as progress:
        while batch := list(itertools.islice(iterator, BATCH_DOCUMENTS)):
            sink.add(encode(batch))
            progress.update(len(batch))
    return sink.summary()


def tokenize_documents(documents_path: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                       threads: int | None = None) -> dict:
    """Tokenize a JSONL of documents (the replay or pre-training corpus) to `out_bin`; none is an error."""
    meta = write_tokens((record["text"] for record in read_jsonl(documents_path)), tokenizer_dir, out_bin,
                        f"tokenize {Path(out_bin).stem}", threads)
    if not meta["documents"]:
        raise ValueError(f"{documents_path}: no documents to tokenize")
    return meta
