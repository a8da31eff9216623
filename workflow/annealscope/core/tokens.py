"""Token arrays: a corpus tokenized to a raw ``.bin`` of token ids with a JSON sidecar; the format between the
tokenize stage and training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annealscope.core.io import read_json, write_json


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


COUNT_BATCH = 1024  # texts tokenized at once to count: a whole corpus at once held ~50× its size in encodings


def backend_tokenizer(tokenizer_dir: str | Path):
    """The fast (Rust) tokenizer of a model folder: its tokenizer.json directly, which spares importing
    transformers, else through transformers."""
    path = Path(tokenizer_dir) / "tokenizer.json"
    if path.is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir)).backend_tokenizer


def eos_token_id(tokenizer_dir: str | Path, backend) -> int:
    """The end-of-sequence token's id: tokenizer_config.json's `eos_token` looked up in the fast tokenizer, else
    what transformers says."""
    config = Path(tokenizer_dir) / "tokenizer_config.json"
    name = read_json(config).get("eos_token") if config.is_file() else None
    name = name.get("content") if isinstance(name, dict) else name
    found = backend.token_to_id(name) if isinstance(name, str) else None
    if found is not None:
        return found
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir)).eos_token_id


def token_counter(tokenizer_dir: str | Path):
    """Tokens per text with the base model's tokenizer (no special tokens), counted a batch at a time so the
    token ids of only one batch are ever held (`encode_batch_fast`: the same ids, without offsets)."""
    return backend_counter(backend_tokenizer(tokenizer_dir))


def backend_counter(backend):
    """`token_counter` of a backend tokenizer already loaded."""
    def count(texts: list[str]) -> list[int]:
        return [len(encoding.ids) for start in range(0, len(texts), COUNT_BATCH)
                for encoding in backend.encode_batch_fast(texts[start:start + COUNT_BATCH], add_special_tokens=False)]
    return count


def write_token_index(index_path: str | Path, shard_bins: list[str | Path]) -> dict:
    """A source's token index: its shards' arrays in order (paths relative to the index), with their totals;
    training reads them as one stream (`TokenArray.open`)."""
    index_path = Path(index_path)
    metas = [read_json(Path(path).with_suffix(".json")) for path in shard_bins]
    dtypes = {meta["dtype"] for meta in metas}
    if len(dtypes) != 1:
        raise ValueError(f"{index_path}: the shards' token arrays differ in dtype ({sorted(dtypes)}); retokenize them")
    if not any(meta["tokens"] for meta in metas):
        raise ValueError(f"{index_path}: its {len(metas)} token arrays hold no tokens, so there is nothing to train "
                         "on; check the corpus references they were read from (a cap, a split, a text field)")
    index = {"dtype": dtypes.pop(), "tokens": sum(meta["tokens"] for meta in metas),
             "documents": sum(meta["documents"] for meta in metas), "vocab_size": metas[0]["vocab_size"],
             "eos_token_id": metas[0]["eos_token_id"],
             "shards": [{"path": os.path.relpath(path, index_path.parent), "tokens": meta["tokens"]}
                        for path, meta in zip(shard_bins, metas, strict=True)]}
    write_json(index_path, index)
    return index


@dataclass
class TokenArray:
    """A read-only view of a tokenized corpus: one array, or a source's shards read as one stream.

    A window is read from its files when asked (`np.fromfile` at an offset), so no file stays open: a memory
    map holds a descriptor, and a source of thousands of shards would exhaust a process's limit of open files
    (1,024 on many systems) in every training rank."""

    paths: list[Path]
    sizes: list[int]
    meta: dict

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.meta["dtype"])
        self.starts = np.cumsum([0, *self.sizes])

    @classmethod
    def open(cls, path: str | Path) -> TokenArray:
        """A `.bin` with its `.json` sidecar, or a source's token index (`.json` naming its shards)."""
        path = Path(path)
        meta = read_json(path.with_suffix(".json"))
        entries = ([(path.parent / shard["path"], shard["tokens"]) for shard in meta["shards"]] if "shards" in meta
                   else [(path.with_suffix(".bin"), meta["tokens"])])
        itemsize = np.dtype(meta["dtype"]).itemsize
        for bin_path, tokens in entries:
            held = bin_path.stat().st_size if tokens else 0
            if held != tokens * itemsize:
                raise ValueError(f"{bin_path}: holds {held / itemsize:g} tokens but {path.with_suffix('.json')} says "
                                 f"{tokens}; delete both and rerun its tokenization")
        return cls(paths=[bin_path for bin_path, _ in entries], sizes=[tokens for _, tokens in entries], meta=meta)

    @property
    def size(self) -> int:
        return int(self.starts[-1])

    def windows(self, seq_len: int) -> int:
        """How many disjoint windows of `seq_len` tokens the array holds."""
        return self.size // seq_len

    def window(self, index: int, seq_len: int) -> np.ndarray:
        """Tokens [index·seq_len, (index + 1)·seq_len) of the stream, across shard boundaries."""
        start, end = index * seq_len, (index + 1) * seq_len
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        pieces = []
        while start < end:
            offset = start - self.starts[first]
            take = min(end - start, self.sizes[first] - offset)
            if take:  # an empty shard's file need not exist
                pieces.append(np.fromfile(self.paths[first], dtype=self.dtype, count=int(take),
                                          offset=int(offset) * self.dtype.itemsize))
            start += take
            first += 1
        return np.asarray(np.concatenate(pieces) if len(pieces) > 1 else pieces[0], dtype=np.int64)
