"""Token arrays: documents tokenized to a memory-mapped ``.bin`` with a JSON sidecar."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from annealscope.io import atomic_path, read_json, read_jsonl, write_json

BATCH_DOCUMENTS = 512


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def tokenize_documents(documents_path: str | Path, tokenizer_dir: str | Path, out_bin: str | Path,
                       out_meta: str | Path) -> dict:
    """Tokenize every document, append EOS after each, and write the array and its sidecar atomically."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    dtype = token_dtype(len(tokenizer))
    texts = [record["text"] for record in read_jsonl(documents_path)]
    if not texts:
        raise ValueError(f"{documents_path}: no documents to tokenize")
    chunks, lengths = [], []
    for start in tqdm(range(0, len(texts), BATCH_DOCUMENTS), desc=f"tokenize {Path(out_bin).stem}", unit="batch"):
        for ids in tokenizer(texts[start:start + BATCH_DOCUMENTS], add_special_tokens=False)["input_ids"]:
            ids.append(tokenizer.eos_token_id)
            chunks.append(np.asarray(ids, dtype=dtype))
            lengths.append(len(ids))
    array = np.concatenate(chunks)
    with atomic_path(out_bin) as tmp:
        array.tofile(tmp)
    meta = {"dtype": dtype.name, "tokens": int(array.size), "documents": len(texts),
            "vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
            "mean_document_tokens": float(np.mean(lengths)), "source": str(documents_path)}
    write_json(out_meta, meta)
    return meta


@dataclass
class TokenArray:
    """A read-only view of a tokenized corpus."""

    tokens: np.ndarray
    meta: dict

    @classmethod
    def open(cls, bin_path: str | Path) -> TokenArray:
        bin_path = Path(bin_path)
        meta = read_json(bin_path.with_suffix(".json"))
        tokens = np.memmap(bin_path, dtype=np.dtype(meta["dtype"]), mode="r")
        if tokens.size != meta["tokens"]:
            raise ValueError(f"{bin_path}: holds {tokens.size} tokens but its sidecar says {meta['tokens']}; "
                             "delete both and rerun tokenize")
        return cls(tokens=tokens, meta=meta)

    def windows(self, seq_len: int) -> int:
        """How many disjoint windows of `seq_len` tokens the array holds."""
        return self.tokens.size // seq_len

    def window(self, index: int, seq_len: int) -> np.ndarray:
        return np.asarray(self.tokens[index * seq_len:(index + 1) * seq_len], dtype=np.int64)
