"""How a source's input splits into shards, each curated by its own job: planned from the config, file sizes
and Parquet footers alone (no document is read), so `snakemake -n` counts the shard jobs and a finished shard is
never redone.

A shard is a list of pieces, read in order:

- ``{"reference": R}``: a whole corpus (a built-in corpus, an uncapped hub reference, a small local file);
- ``{"reference": R, "path": P, "start": B0, "end": B1}``: the lines of a local JSONL file that start in the
  byte range [B0, B1), so a large file splits without reading it (or a whole other local file); of a text
  file, the documents whose first line starts there (`corpora._text_documents`); of a gzip or
  Zstandard JSONL file, the lines that begin in its compressed bytes [B0, B1) (`core/compressed.py`): each
  such piece decompresses the file up to its range, and counts the lines before it unparsed;
- ``{"reference": R, "path": P, "row_groups": [G0, G1]}``: row groups [G0, G1) of a local Parquet file larger
  than a shard, cut from its footer; with ``"rows": [R0, R1]``, rows [R0, R1) of the file, in those groups,
  where a row group larger than a shard is cut into slices of rows;
- ``{"reference": R, "part": K, "parts": S}``: the K-th of S runs of consecutive rows of a capped hub reference's
  fetched cache, up to 1/S of its cap (``max_tokens`` or ``max_documents``; `corpora.part_rows`);
- ``{"program": [FIRST, COUNT]}`` / ``{"prompts": [FIRST, COUNT]}``: a generator's documents or prompts.

Local files and whole corpora are packed in order into shards of about ``sharding.bytes`` (a built-in
corpus counts as small), so shard order is input order and deduplication keeps the same first document.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import Counter
from pathlib import Path

from annealscope.core.compressed import READ, is_compressed
from annealscope.core.corpora import (
    JSON_LINES,
    LOCAL_CORPUS,
    corpus_kind,
    hub_options,
    local_shards,
    parquet_row_groups,
)
from annealscope.core.layout import RUN_DIR, TOKENS, TOKENS_META, run_path
from annealscope.core.references import acquisition_kind

SKIPPING_SHARDS = 32  # more shard jobs of one compressed file than this: the plan says what their skipping costs


def shard_name(index: int) -> str:
    return f"{index:05d}"


def planned_shards(config: dict) -> dict[str, list[list[dict]]]:
    """Every source's shards, by name, each kept as its token index records where that differs (`corpus_shards`),
    and under "replay" (a name no source may take) the replay corpus's: planned once for the rules and the plan's
    tables."""
    sources = {name: source_shards(source, token_index(config, name)) for name, source in config["sources"].items()}
    return {**sources, "replay": replay_shards(config)}


def token_index(config: dict, name: str) -> Path:
    """The token index of a source, or of the replay corpus, in the grid's results."""
    return run_path(TOKENS_META, RUN_DIR.format(run=config["run"]), source=name)


def source_shards(settings: dict, index: str | Path | None = None) -> list[list[dict]]:
    """The shards of one source (validated settings), in order; at least one. `index`: its token index."""
    sharding = settings["sharding"]
    kind = acquisition_kind(settings)
    if kind == "program":
        return _ranges("program", settings["generator"]["documents"], sharding["documents"])
    if kind == "teacher":
        generator = settings["generator"]
        return _ranges("prompts", generator["prompts"], generator["shard_prompts"])
    return corpus_shards(settings["pool"] if kind == "filter" else settings["corpus"], sharding, index)


def corpus_shards(references: list[str], sharding: dict, index: str | Path | None = None) -> list[list[dict]]:
    """The shards of a list of corpus references (a source's pool or corpus, the replay corpus), in order.

    A corpus tokenized before compressed files, text files and large row groups were split keeps each of them
    whole: where its token index (`index`) counts the shards of that plan and not of this one. Its arrays are
    what its anneals recorded, and new ones would rerun them all; deleting the index moves the corpus to the
    split plan."""
    shards = _pack([piece for reference in references for piece in _pieces(reference, sharding)], sharding["bytes"])
    recorded = _recorded_shards(index)
    if recorded is not None and recorded != len(shards):
        before = _pack([piece for reference in references for piece in _pieces(reference, sharding, whole=True)],
                       sharding["bytes"])
        if recorded == len(before):
            return before
    return shards


def replay_shards(config: dict) -> list[list[dict]]:
    """The replay corpus's shards, each tokenized by its own job; none when replay is off or tokenized whole
    (`whole_replay`)."""
    replay = config["replay"]
    if replay["fraction"] == 0 or whole_replay(config):
        return []
    return corpus_shards(replay["corpus"], replay["sharding"], token_index(config, "replay"))


def whole_replay(config: dict) -> bool:
    """Whether the grid's replay corpus was tokenized whole, in one job, before replay was sharded: it keeps that
    array (tokens/replay.bin), the input its anneals recorded, since another would rerun them all. Deleting the
    array moves the grid to the shards."""
    replay = run_path(TOKENS, RUN_DIR.format(run=config["run"]), source="replay")
    return config["replay"]["fraction"] > 0 and replay.is_file()


def skipping_lines(corpora: dict[str, list[list[dict]]]) -> list[str]:
    """For each compressed file of `corpora` (`planned_shards`) split into more than SKIPPING_SHARDS shard jobs, a
    line of the plan: each job decompresses the file from its start, so their decompressing grows with the
    square of the file's size."""
    lines = []
    for name, shards in corpora.items():
        counts = Counter(piece["path"] for shard in shards for piece in shard if is_compressed(piece.get("path", "")))
        lines += [f"curation: {path} ({name}) splits into {count} shard jobs, each decompressing the file from its "
                  f"start up to its own range ({(count - 1) / 2:.0f} shards' worth on average); split it into files "
                  "of a few GB to spare that (docs/design.md, \"Curation at scale\")"
                  for path, count in counts.items() if count > SKIPPING_SHARDS]
    return lines


def _recorded_shards(index: str | Path | None) -> int | None:
    """How many shards a token index lists; None where there is none (or a whole array's sidecar)."""
    if index is None or not Path(index).is_file():
        return None
    shards = json.loads(Path(index).read_text()).get("shards")
    return None if shards is None else len(shards)


def _ranges(key: str, total: int, size: int) -> list[list[dict]]:
    return [[{key: [first, min(size, total - first)]}] for first in range(0, total, size)]


def _pieces(reference: str, sharding: dict, whole: bool = False) -> list[tuple[int | None, dict]]:
    """(bytes, piece) of one reference; bytes None for a piece that is a shard of its own. `whole`: as planned
    before compressed files, text files and row groups split, each read whole."""
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
        splits = (path.name.endswith(JSON_LINES) or path.suffix == ".txt") and not (whole and path.suffix != ".jsonl")
        if splits and len(bounds := _byte_ranges(path, size, sharding["bytes"])) > 2:
            pieces += [(end - start, {"reference": reference, "path": str(path), "start": start, "end": end})
                       for start, end in itertools.pairwise(bounds)]
        elif path.suffix == ".parquet" and size > sharding["bytes"]:
            pieces += [(bytes_, {"reference": reference, "path": str(path), **rows})
                       for rows, bytes_ in _row_ranges(parquet_row_groups(path), sharding["bytes"], whole)]
        else:
            pieces.append((size, {"reference": reference, "path": str(path), "start": 0, "end": size}))
    return pieces


def _byte_ranges(path: Path, size: int, limit: int) -> list[int]:
    """The bounds of about equal byte ranges of a JSON-lines or text file, each at most `limit` bytes, no sliver
    of a shard at the end; a compressed file's are whole blocks of `compressed.READ` bytes, so none is empty."""
    parts = max(1, math.ceil(size / limit))
    if not is_compressed(path):
        return [size * part // parts for part in range(parts + 1)]
    parts = max(1, min(parts, size // READ))
    return [size * part // parts // READ * READ for part in range(parts)] + [size]


def _row_ranges(groups: list[tuple[int, int]], limit: int, whole: bool) -> list[tuple[dict, int]]:
    """A Parquet file's (bytes, rows) row groups in about equal ranges of at most about `limit` bytes, each cut
    at the row group nearest an equal share, and their bytes. A row group larger than `limit` is cut into
    slices of equal rows first (unless `whole`), and then every range names its rows of the file too: a job
    reading a slice decodes its group up to it, at far less cost than curating it. Each range as a piece's
    keys: `row_groups` [first, end), and with slices `rows` [first, end)."""
    units = []  # (group, first row of the file, rows, bytes)
    first_row = 0
    for group, (size, rows) in enumerate(groups):
        slices = 1 if whole else max(1, min(math.ceil(size / limit), rows))
        units += [(group, first_row + rows * part // slices, rows * (part + 1) // slices - rows * part // slices,
                   size * (part + 1) // slices - size * part // slices) for part in range(slices)]
        first_row += rows
    ends = list(itertools.accumulate((unit[3] for unit in units), initial=0))
    parts = math.ceil(ends[-1] / limit)
    cuts = {0, len(units)}
    for part in range(1, parts):
        share = ends[-1] * part / parts
        after = bisect.bisect_left(ends, share)
        cuts.add(after if ends[after] - share <= share - ends[after - 1] else after - 1)
    sliced = len(units) > len(groups)
    ranges = []
    for first, end in itertools.pairwise(sorted(cuts)):
        keys = {"row_groups": [units[first][0], units[end - 1][0] + 1]}
        if sliced:
            keys["rows"] = [units[first][1], units[end - 1][1] + units[end - 1][2]]
        ranges.append((keys, ends[end] - ends[first]))
    return ranges


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
    if "rows" in piece:
        return f"{piece['path']} rows [{piece['rows'][0]}, {piece['rows'][1]})"
    if "row_groups" in piece:
        return f"{piece['path']} row groups [{piece['row_groups'][0]}, {piece['row_groups'][1]})"
    if "path" in piece:
        whole = piece["start"] == 0 and piece["end"] == Path(piece["path"]).stat().st_size
        unit = "compressed bytes" if is_compressed(piece["path"]) else "bytes"
        return piece["path"] if whole else f"{piece['path']} {unit} [{piece['start']}, {piece['end']})"
    if "part" in piece:
        return f"{piece['reference']} part {piece['part']} of {piece['parts']}"
    return piece["reference"]

