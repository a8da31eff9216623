"""How a source's input splits into shards, each curated by its own job: planned from the config, file sizes
and Parquet footers alone (no document is read), so `snakemake -n` counts the shard jobs and a finished shard is
never redone.

A shard is a list of pieces, read in order:

- ``{"reference": R}``: a whole corpus (a built-in corpus, an uncapped hub reference, a small local file);
- ``{"reference": R, "path": P, "start": B0, "end": B1}``: the lines of a local JSONL file that start in the
  byte range [B0, B1), so a large file splits without reading it (or a whole other local file);
- ``{"reference": R, "path": P, "row_groups": [G0, G1]}``: row groups [G0, G1) of a local Parquet file larger
  than a shard, cut from its footer;
- ``{"reference": R, "part": K, "parts": S}``: the K-th of S runs of consecutive rows of a capped hub reference's
  fetched cache, up to 1/S of its cap (``max_tokens`` or ``max_documents``; `corpora.part_rows`);
- ``{"program": [FIRST, COUNT]}`` / ``{"prompts": [FIRST, COUNT]}``: a generator's documents or prompts.

Local files and whole corpora are packed in order into shards of about ``sharding.bytes`` (a built-in
corpus counts as small), so shard order is input order and deduplication keeps the same first document.
"""

from __future__ import annotations

import bisect
import itertools
import math
from pathlib import Path

from annealscope.core.corpora import LOCAL_CORPUS, corpus_kind, hub_options, local_shards, parquet_row_group_bytes
from annealscope.core.references import acquisition_kind

SPLITTABLE = ".jsonl"  # uncompressed JSON lines split at byte offsets (Parquet by row groups; others read whole)


def shard_name(index: int) -> str:
    return f"{index:05d}"


def source_shards(settings: dict) -> list[list[dict]]:
    """The shards of one source (validated settings), in order; at least one."""
    sharding = settings["sharding"]
    kind = acquisition_kind(settings)
    if kind == "program":
        return _ranges("program", settings["generator"]["documents"], sharding["documents"])
    if kind == "teacher":
        generator = settings["generator"]
        return _ranges("prompts", generator["prompts"], generator["shard_prompts"])
    return corpus_shards(settings["pool"] if kind == "filter" else settings["corpus"], sharding)


def corpus_shards(references: list[str], sharding: dict) -> list[list[dict]]:
    """The shards of a list of corpus references (a source's pool or corpus, the replay corpus), in order."""
    return _pack([piece for reference in references for piece in _pieces(reference, sharding)], sharding["bytes"])


def replay_shards(config: dict) -> list[list[dict]]:
    """The replay corpus's shards, each tokenized by its own job; none when replay is off."""
    replay = config["replay"]
    return corpus_shards(replay["corpus"], replay["sharding"]) if replay["fraction"] > 0 else []


def _ranges(key: str, total: int, size: int) -> list[list[dict]]:
    return [[{key: [first, min(size, total - first)]}] for first in range(0, total, size)]


def _pieces(reference: str, sharding: dict) -> list[tuple[int | None, dict]]:
    """(bytes, piece) of one reference; bytes None for a piece that is a shard of its own."""
    kind, _ = corpus_kind(reference)
    if reference.startswith("hf:"):
        parts = hub_parts(reference, sharding)
        if parts == 1:
            return [(0, {"reference": reference})]
        return [(None, {"reference": reference, "part": part, "parts": parts}) for part in range(parts)]
    if kind is not LOCAL_CORPUS:  # a built-in corpus: small, read whole
        return [(0, {"reference": reference})]
    pieces = []
    for path in local_shards(reference):
        size = path.stat().st_size
        if path.name.endswith(SPLITTABLE) and size > sharding["bytes"]:
            parts = math.ceil(size / sharding["bytes"])  # equal ranges: no sliver of a shard at the end
            bounds = [size * part // parts for part in range(parts + 1)]
            pieces += [(end - start, {"reference": reference, "path": str(path), "start": start, "end": end})
                       for start, end in itertools.pairwise(bounds)]
        elif path.suffix == ".parquet" and size > sharding["bytes"]:
            pieces += [(bytes_, {"reference": reference, "path": str(path), "row_groups": groups})
                       for groups, bytes_ in _row_group_ranges(parquet_row_group_bytes(path), sharding["bytes"])]
        else:
            pieces.append((size, {"reference": reference, "path": str(path), "start": 0, "end": size}))
    return pieces


def _row_group_ranges(sizes: list[int], limit: int) -> list[tuple[list[int], int]]:
    """Row groups [first, end) of a Parquet file, and their bytes, in about equal ranges of at most about `limit`
    bytes each: each cut at the row group nearest an equal share. A row group is never split."""
    ends = list(itertools.accumulate(sizes, initial=0))
    parts = math.ceil(ends[-1] / limit)
    cuts = {0, len(sizes)}
    for part in range(1, parts):
        share = ends[-1] * part / parts
        after = bisect.bisect_left(ends, share)
        cuts.add(after if ends[after] - share <= share - ends[after - 1] else after - 1)
    bounds = sorted(cuts)
    return [([first, end], ends[end] - ends[first]) for first, end in itertools.pairwise(bounds)]


def hub_parts(reference: str, sharding: dict) -> int:
    """How many shards a hub reference splits into: its cap over the shard size, else 1."""
    options = hub_options(reference)
    if "max_tokens" in options:
        return max(1, math.ceil(int(options["max_tokens"]) / sharding["tokens"]))
    if "max_documents" in options:
        return max(1, math.ceil(int(options["max_documents"]) / sharding["documents"]))
    return 1


def _pack(pieces: list[tuple[int | None, dict]], limit: int) -> list[list[dict]]:
    shards: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    for piece_bytes, piece in pieces:
        if piece_bytes is None or (current and size + piece_bytes > limit):
            if current:
                shards.append(current)
            current, size = [], 0
        if piece_bytes is None:
            shards.append([piece])
            continue
        current.append(piece)
        size += piece_bytes
    if current:
        shards.append(current)
    return shards


def describe_piece(piece: dict) -> str:
    """A piece in words, for errors and provenance."""
    if "program" in piece or "prompts" in piece:
        key = "program" if "program" in piece else "prompts"
        first, count = piece[key]
        return f"{'documents' if key == 'program' else 'prompts'} {first}..{first + count - 1}"
    if "row_groups" in piece:
        return f"{piece['path']} row groups [{piece['row_groups'][0]}, {piece['row_groups'][1]})"
    if "path" in piece:
        whole = piece["start"] == 0 and piece["end"] == Path(piece["path"]).stat().st_size
        return piece["path"] if whole else f"{piece['path']} bytes [{piece['start']}, {piece['end']})"
    if "part" in piece:
        return f"{piece['reference']} part {piece['part']} of {piece['parts']}"
    return piece["reference"]

