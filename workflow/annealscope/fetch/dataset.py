"""A hub dataset fetched into the cache: its files streamed by worker processes, in order, up to its caps.

The cache is ``datasets/<slug>/documents-<k>.jsonl.gz``, files of about CHUNK_TEXT characters of text in row
order, plus ``fetch.json`` (what was read: the reference, the resolved revision, rows and bytes, and each
file's rows, so that a shard job reads only the files that hold its rows). A row's id is its number, so the
files hold none (``core.corpora.hub_document``).

A hub dataset is a list of files (`datasets`' streaming shards). With ``workers`` > 1, each of the dataset's
files is streamed by a process of its own, up to `workers` at once; the files are kept in order until the cap,
the file that crosses it cut at the row where one process reading them all would have stopped, and the
processes still running are stopped. So the cache holds the same rows in the same order whatever the number
of workers.

A fetch works in a partial folder (`fetch.partial`: kept when it fails, taken up by the next fetch of the same
revision, the stream pinned to that revision), where each of the dataset's files streamed to its end lists its
chunks; a resumed fetch takes those files instead of streaming them again.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import itertools
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from annealscope.core.corpora import (
    CACHED_PROVENANCE,
    CHUNK_LEVEL,
    CHUNK_TEXT,
    FETCH_BYTES_PER_TOKEN,
    chunk_file,
    file_sha256,
    hub_options,
    hub_records,
    hub_stream,
)
from annealscope.core.io import atomic_path, parse_json, read_json, write_json, write_jsonl
from annealscope.fetch.partial import partial_folder

PROGRESS_SECONDS = 1.0  # how often the progress bar shows what the workers streamed
PROGRESS_BYTES = 1 << 22  # a worker adds to the shared count every this many bytes


@dataclass(frozen=True)
class Cap:
    """Where a fetch stops: before a row once `rows` rows or `bytes` bytes of text are kept (None: no cap)."""

    rows: int | None = None
    bytes: int | None = None

    def reached(self, rows: int, size: int) -> bool:
        return (self.rows is not None and rows >= self.rows) or (self.bytes is not None and size >= self.bytes)

    def less(self, rows: int, size: int) -> Cap:
        """What is left of the cap once `rows` rows of `size` bytes are kept."""
        return Cap(None if self.rows is None else self.rows - rows, None if self.bytes is None else self.bytes - size)


@dataclass(frozen=True)
class Chunk:
    """One written file of fetched rows: its name in the fetch's directory, its rows and their text's bytes."""

    name: str
    rows: int
    bytes: int


def dataset_revision(dataset: str, revision: str | None) -> dict:
    """What identifies the data read: file hashes for a local dataset directory, else the hub commit."""
    local = Path(dataset)
    if local.is_dir():
        files = sorted(path for path in local.rglob("*") if path.is_file())
        return {"local_files": {str(path.relative_to(local)): file_sha256(path) for path in files}}
    from huggingface_hub import HfApi

    return {"revision": HfApi().dataset_info(dataset, revision=revision).sha}


def fetch_dataset(reference: str, out_dir: str | Path, workers: int = 1) -> dict:
    """Stream `reference` up to its caps into ``out_dir``'s files, its dataset's files `workers` at a time (those
    a failed fetch of the same revision finished are kept), and record its provenance."""
    options = hub_options(reference)
    cap = Cap(int(options.get("max_documents", 0)) or None,
              int(options.get("max_tokens", 0)) * FETCH_BYTES_PER_TOKEN or None)
    started, out_dir = time.perf_counter(), Path(out_dir)
    identity = dataset_revision(options["dataset"], options.get("revision"))
    stream = hub_stream(reference, identity.get("revision"))
    files = stream.n_shards
    workers = max(1, min(workers, files))
    partial = partial_folder(out_dir, {"fetched": reference, **identity})
    with tqdm(total=cap.bytes, unit="B", unit_scale=True, desc=f"fetch {options['dataset']}") as progress:
        written = _streamed_files(stream, reference, partial, cap, workers, progress.update)
        with contextlib.closing(written):
            kept = _up_to_cap(written, cap, partial)
    rows, size = _totals(kept)
    if not rows:
        raise ValueError(f"{reference}: the dataset yielded no rows; check split= and name=")
    with atomic_path(out_dir, directory=True) as tmp:
        for index, chunk in enumerate(kept):  # linked: the partial folder stays whole until the cache is in place
            (tmp / chunk_file(index)).hardlink_to(partial / chunk.name)
        provenance = {"fetched": reference, **identity, "rows": rows, "bytes": size, "files": files,
                      "workers": workers, "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "chunks": [chunk.rows for chunk in kept]}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    shutil.rmtree(partial)
    print(f"fetched {rows:,} rows ({size / 1e6:.1f} MB) of {reference} from {files} file(s) with {workers} "
          f"worker(s) in {provenance['fetch_seconds']:.1f} s into {out_dir}")
    return provenance


def fetch_file(stream, reference: str, index: int, directory: Path, cap: Cap, chunk_text: int,
               progress: Callable[[int], object] | None = None) -> list[Chunk]:
    """Stream file `index` of the dataset (`stream`, its shard) into files of about `chunk_text` characters of
    text in `directory`, stopping before the row that `cap` forbids."""
    counts = {"rows": 0, "bytes": 0, "capped": False}

    def rows():
        for record in hub_records(stream, reference):
            if cap.reached(counts["rows"], counts["bytes"]):
                counts["capped"] = True
                return
            size = len(record["text"].encode())
            counts["rows"] += 1
            counts["bytes"] += size
            if progress is not None:
                progress(size)
            yield record

    chunks, remaining, before = [], rows(), 0
    for first in remaining:  # one file at a time
        name = f"file{index:05d}-{len(chunks):05d}.jsonl.gz"
        written = write_jsonl(directory / name, _up_to_text(itertools.chain([first], remaining), chunk_text),
                              level=CHUNK_LEVEL)
        chunks.append(Chunk(name, written, counts["bytes"] - before))
        before = counts["bytes"]
    if not counts["capped"]:  # the whole file: a fetch resumed after this one fails takes it as it is
        write_json(_finished(directory, index), [vars(chunk) for chunk in chunks])
    return chunks


def _totals(chunks: list[Chunk]) -> tuple[int, int]:
    """The rows of `chunks` and the bytes of their text."""
    return sum(chunk.rows for chunk in chunks), sum(chunk.bytes for chunk in chunks)


def _finished(directory: Path, index: int) -> Path:
    """Where file `index`'s chunks are listed once it has been streamed to its end."""
    return directory / f"file{index:05d}.json"


def _finished_chunks(directory: Path, index: int) -> list[Chunk] | None:
    """File `index`'s chunks, if a fetch streamed it to its end in `directory`."""
    path = _finished(directory, index)
    return [Chunk(**chunk) for chunk in read_json(path)] if path.is_file() else None


def _streamed_files(stream, reference: str, directory: Path, cap: Cap, workers: int,
                    progress: Callable[[int], object]) -> Iterator[list[Chunk]]:
    """Each file's chunks, in the dataset's order: finished before in `directory`, else streamed here one after
    another, each up to what is left of the cap, or by `workers` processes, each up to the whole cap
    (`_up_to_cap` cuts them); a file is started only while those in flight, at the mean size of the files
    done, would not reach the cap. `progress` is told the bytes of text streamed."""
    files, rows, size = stream.n_shards, 0, 0
    if workers == 1:
        for index in range(files):
            if cap.reached(rows, size):
                return
            chunks = _finished_chunks(directory, index)
            if chunks is None:
                chunks = fetch_file(stream.shard(files, index), reference, index, directory, cap.less(rows, size),
                                    CHUNK_TEXT, progress)
            else:
                progress(_totals(chunks)[1])
            more_rows, more_size = _totals(chunks)
            rows, size = rows + more_rows, size + more_size
            yield chunks
        return
    context = multiprocessing.get_context("spawn")
    streamed = context.Value("q", 0)  # bytes of text the workers streamed, for the progress bar
    with context.Pool(workers, initializer=_share, initargs=(streamed,)) as pool:  # leaving it stops the workers
        pending, index, shown = collections.deque(), 0, 0
        while True:
            while index < files and len(pending) < workers and \
                    not _likely_reached(cap, rows, size, index - len(pending), len(pending)):
                finished = _finished_chunks(directory, index)
                if finished is not None:
                    progress(_totals(finished)[1])
                pending.append(finished if finished is not None else pool.apply_async(
                    _fetch_file_in_worker, (stream.shard(files, index), reference, index, directory, cap, CHUNK_TEXT)))
                index += 1
            if not pending:
                return
            head = pending.popleft()
            while not isinstance(head, list):  # shown each second, and once more when the file is done
                head.wait(PROGRESS_SECONDS)
                progress(streamed.value - shown)
                shown = streamed.value
                if head.ready():
                    break
            chunks = head if isinstance(head, list) else head.get()
            more_rows, more_size = _totals(chunks)
            rows, size = rows + more_rows, size + more_size
            yield chunks


_STREAMED = None  # in a worker process: the count of bytes streamed that every worker adds to


def _share(streamed) -> None:
    global _STREAMED
    _STREAMED = streamed


def _fetch_file_in_worker(*arguments) -> list[Chunk]:
    """`fetch_file` in a worker process, adding the bytes it streams to the shared count a few MB at a time; it
    stops there, its chunk unwritten, once the fetch that started it is gone (killed, so that it could not stop
    its workers), instead of streaming the rest of its file."""
    pending = 0

    def add(size: int = 0, flush: bool = False) -> None:
        nonlocal pending
        pending += size
        if pending >= PROGRESS_BYTES or flush:
            if not multiprocessing.parent_process().is_alive():
                raise SystemExit(f"file {arguments[2]}: the fetch that started this worker is gone")
            with _STREAMED.get_lock():
                _STREAMED.value += pending
            pending = 0

    try:
        return fetch_file(*arguments, add)
    finally:
        add(flush=True)


def _likely_reached(cap: Cap, rows: int, size: int, done: int, in_flight: int) -> bool:
    """Whether `in_flight` more files as large as the mean of the `done` files (`rows` rows, `size` bytes) would
    reach the cap."""
    return done > 0 and cap.reached(rows + rows * in_flight // done, size + size * in_flight // done)


def _up_to_cap(written: Iterator[list[Chunk]], cap: Cap, directory: Path) -> list[Chunk]:
    """The chunks of `written` in order until the cap, the one that crosses it cut at the row where one
    process streaming every file would have stopped."""
    kept, rows, size = [], 0, 0
    for chunk in itertools.chain.from_iterable(written):
        if cap.reached(rows, size):
            break
        if cap.reached(rows + chunk.rows, size + chunk.bytes):
            kept.append(_cut(directory, chunk, cap.less(rows, size)))
            break
        kept.append(chunk)
        rows, size = rows + chunk.rows, size + chunk.bytes
    return kept


def _cut(directory: Path, chunk: Chunk, cap: Cap) -> Chunk:
    """`chunk` up to the row before which `cap` stops, written as a new file (the chunk may be listed as its file's
    whole, for a resumed fetch); the chunk itself if `cap` keeps every row."""
    rows, size, lines = 0, 0, []
    with gzip.open(directory / chunk.name, "rt", encoding="utf-8") as handle:
        for line in handle:
            if cap.reached(rows, size):
                break
            rows, size = rows + 1, size + len(parse_json(line)["text"].encode())
            lines.append(line)
    if rows == chunk.rows:
        return chunk
    cut = Chunk(f"cut-{chunk.name}", rows, size)
    with atomic_path(directory / cut.name) as tmp, \
            gzip.open(tmp, "wt", encoding="utf-8", compresslevel=CHUNK_LEVEL) as handle:
        handle.writelines(lines)
    return cut


def _up_to_text(records, chunk_text: int):
    """Records of `records` until `chunk_text` characters of text have gone, the rest left in `records`."""
    text = 0
    for record in records:
        yield record
        text += len(record["text"])
        if text >= chunk_text:
            return
