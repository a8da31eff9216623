"""Token arrays: a corpus tokenized to a memory-mapped ``.bin`` with a JSON sidecar; the format
between the tokenize stage and training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annealscope.core.io import read_json


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


COUNT_BATCH = 1024  # texts tokenized at once to count: a whole corpus at once held ~50× its size in encodings


def token_counter(tokenizer_dir: str | Path):
    """Tokens per text with the base model's tokenizer (no special tokens), counted a batch at a time so the
    token ids of only one batch are ever held."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for start in range(0, len(texts), COUNT_BATCH)
                for ids in tokenizer(texts[start:start + COUNT_BATCH], add_special_tokens=False)["input_ids"]]
    return count


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
