"""Tokenize a source's documents into a token array (see annealscope.core.tokens)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from annealscope.core.io import atomic_path, read_jsonl, write_json
from annealscope.core.tokens import token_dtype

BATCH_DOCUMENTS = 2048


def batches(documents_path: str | Path, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for record in read_jsonl(documents_path):
        batch.append(record["text"])
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def tokenize_documents(documents_path: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                       out_meta: str | Path, threads: int | None = None) -> dict:
    """Tokenize every document (EOS after each) with the fast tokenizer's parallel `encode_batch` on
    `threads` cores, streaming batches to the array; write the array and its sidecar atomically."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    if threads:
        os.environ["RAYON_NUM_THREADS"] = str(threads)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    backend, eos = tokenizer.backend_tokenizer, tokenizer.eos_token_id
    dtype = token_dtype(len(tokenizer))
    documents = tokens = 0
    length_sum = 0
    with atomic_path(out_bin) as tmp, open(tmp, "wb") as handle, \
            tqdm(desc=f"tokenize {Path(out_bin).stem}", unit="doc", mininterval=5) as progress:
        for texts in batches(documents_path, BATCH_DOCUMENTS):
            encodings = backend.encode_batch(texts, add_special_tokens=False)
            lengths = np.fromiter((len(encoding.ids) + 1 for encoding in encodings), dtype=np.int64, count=len(texts))
            flat = np.empty(int(lengths.sum()), dtype=dtype)
            ends = np.cumsum(lengths)
            for encoding, end, length in zip(encodings, ends, lengths, strict=True):
                flat[end - length:end - 1] = encoding.ids
            flat[ends - 1] = eos
            flat.tofile(handle)
            documents, tokens, length_sum = documents + len(texts), tokens + flat.size, length_sum + int(lengths.sum())
            progress.update(len(texts))
        if not documents:
            raise ValueError(f"{documents_path}: no documents to tokenize")
    meta = {"dtype": dtype.name, "tokens": tokens, "documents": documents, "vocab_size": len(tokenizer),
            "eos_token_id": eos, "mean_document_tokens": length_sum / documents, "source": str(documents_path)}
    write_json(out_meta, meta)
    return meta
