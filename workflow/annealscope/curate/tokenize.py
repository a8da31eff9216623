"""Tokenize documents into a token array (see annealscope.core.tokens): a source's shards one job each, and the
replay and pre-training corpora."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from annealscope.core.io import atomic_path, read_jsonl, write_json
from annealscope.core.tokens import backend_tokenizer, eos_token_id, token_dtype

BATCH_DOCUMENTS = 2048


def write_tokens(texts: Iterable[str], tokenizer_dir: str | Path, out_bin: str | Path, description: str,
                 threads: int | None = None) -> dict:
    """Tokenize every text (EOS after each) with the fast tokenizer's parallel `encode_batch_fast` on `threads`
    cores, streaming batches to the array; write the array and its sidecar (same name, .json) atomically.
    No texts give an empty array."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    backend = backend_tokenizer(tokenizer_dir)
    eos, vocab_size = eos_token_id(tokenizer_dir, backend), backend.get_vocab_size(with_added_tokens=True)
    dtype = token_dtype(vocab_size)
    documents = tokens = 0
    iterator = iter(texts)
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as handle, \
            tqdm(desc=description, unit="doc", mininterval=5) as progress:
        while batch := list(itertools.islice(iterator, BATCH_DOCUMENTS)):
            encodings = backend.encode_batch_fast(batch, add_special_tokens=False)
            lengths = np.fromiter((len(encoding.ids) + 1 for encoding in encodings), dtype=np.int64, count=len(batch))
            flat = np.empty(int(lengths.sum()), dtype=dtype)
            ends = np.cumsum(lengths)
            for encoding, end, length in zip(encodings, ends, lengths, strict=True):
                flat[end - length:end - 1] = encoding.ids
            flat[ends - 1] = eos
            flat.tofile(handle)
            documents, tokens = documents + len(batch), tokens + flat.size
            progress.update(len(batch))
    meta = {"dtype": dtype.name, "tokens": tokens, "documents": documents, "vocab_size": vocab_size,
            "eos_token_id": eos, "mean_document_tokens": tokens / documents if documents else 0.0}
    write_json(Path(out_bin).with_suffix(".json"), meta)
    return meta


def tokenize_documents(documents_path: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                       threads: int | None = None) -> dict:
    """Tokenize a JSONL of documents (the replay or pre-training corpus) to `out_bin`; none is an error."""
    meta = write_tokens((record["text"] for record in read_jsonl(documents_path)), tokenizer_dir, out_bin,
                        f"tokenize {Path(out_bin).stem}", threads)
    if not meta["documents"]:
        raise ValueError(f"{documents_path}: no documents to tokenize")
    return meta
