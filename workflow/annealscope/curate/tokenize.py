"""Token arrays (see annealscope.core.tokens), written as a stream: a source's shards, encoded once when a shard
job reads them and copied on past deduplication and decontamination, and the replay and pre-training corpora.

An array holds each document's ids followed by EOS; its sidecar (same name, .json) holds the dtype, the EOS id,
the vocabulary size and the totals.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm import tqdm

from annealscope.core.io import atomic_path, read_json, read_jsonl, write_json
from annealscope.core.tokens import backend_tokenizer, eos_token_id, token_dtype

BATCH_DOCUMENTS = 2048


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


def write_tokens(texts: Iterable[str], tokenizer_dir: str | Path, out_bin: str | Path, description: str,
                 threads: int | None = None) -> dict:
    """Tokenize every text with the fast tokenizer's parallel `encode_batch_fast` on `threads` cores, streaming
    batches to the array (atomically, with its sidecar). No texts give an empty array."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    encode = TokenEncoder(tokenizer_dir)
    iterator = iter(texts)
    with token_array(out_bin, encode.meta()) as sink, tqdm(desc=description, unit="doc", mininterval=5) as progress:
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
