"""Atomic file writes and JSON/JSONL helpers: a killed job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from annealscope.core.compressed import GZIP_SUFFIX, ZSTD_SUFFIX, decompressed_blocks

ZSTD_READ = 1 << 20  # decompressed bytes buffered


@contextlib.contextmanager
def atomic_path(path: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`, renamed onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(_default_mode(directory))
        if directory:
            _apply_umask(tmp)
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _apply_umask(directory: Path) -> None:
    """Give what a writer put in `directory` with a private mode (safetensors writes 0600) the user's umask."""
    for entry in directory.rglob("*"):
        if entry.is_symlink():
            continue
        executable = entry.is_dir() or entry.stat().st_mode & 0o111
        entry.chmod(_default_mode(directory=bool(executable)))


def _default_mode(directory: bool) -> int:
    """The permissions a plain open() or mkdir() would give under the current umask (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def write_json(path: str | Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: str | Path, records: Iterable[dict], level: int = 9) -> int:
    """Write records as JSON lines (gzip at `level` if the name ends in .gz); return how many."""
    count = 0
    with atomic_path(path) as tmp:
        gzipped = str(path).endswith(".gz")
        with (gzip.open(tmp, "wt", encoding="utf-8", compresslevel=level) if gzipped
              else open(tmp, "w", encoding="utf-8")) as handle:
            for record in records:
                handle.write(json_line(record))
                count += 1
    return count


def json_line(record: dict) -> str:
    """One JSON line, as write_jsonl writes it (for writers that stream into their own file). orjson writes
    it, 3-5x faster than the standard library on curation's documents; what orjson would write as null (NaN,
    infinity) or refuses (a lone surrogate) the standard library writes as it always did."""
    if _finite(record):
        try:
            return orjson.dumps(record, default=_jsonable,
                                option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE).decode()
        except orjson.JSONEncodeError:
            pass
    return json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n"


def _finite(value: Any) -> bool:
    """Whether no float inside `value` is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(map(_finite, value.values()))
    if isinstance(value, list | tuple):
        return all(map(_finite, value))
    return True


def parse_json(text: str | bytes) -> Any:
    """One JSON value, parsed by orjson (about twice as fast as the standard library); what orjson refuses
    but the standard library reads (NaN, a lone surrogate) is read by the latter, which raises
    json.JSONDecodeError for what neither reads."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def open_binary(path: str | Path) -> BinaryIO:
    """A file for reading in bytes, decompressed as it is read where its name ends in ``.gz`` or ``.zst``; a
    corrupt file raises OSError, whichever the compression."""
    if str(path).endswith(ZSTD_SUFFIX):
        return io.BufferedReader(_ZstdReader(path), buffer_size=ZSTD_READ)
    return gzip.open(path, "rb") if str(path).endswith(GZIP_SUFFIX) else open(path, "rb")


class _ZstdReader(io.RawIOBase):
    """A Zstandard file decompressed as it is read, frame after frame. A corrupt file, or one that ends inside a
    frame (a copy cut short), raises OSError, as gzip does."""

    def __init__(self, path: str | Path):
        self._file = open(path, "rb")  # noqa: SIM115 (closed with the reader)
        self._chunks = (output for _, output in decompressed_blocks(self._file, str(path)))
        self._pending, self._offset = memoryview(b""), 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._offset == len(self._pending):
            if (chunk := next(self._chunks, None)) is None:
                return 0
            self._pending, self._offset = memoryview(chunk), 0
        size = min(len(buffer), len(self._pending) - self._offset)
        buffer[:size] = self._pending[self._offset:self._offset + size]
        self._offset += size
        return size

    def close(self) -> None:
        self._file.close()
        super().close()


def read_jsonl(path: str | Path) -> Iterator[dict]:
    with open_binary(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield parse_json(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    raise ValueError(f"{path}:{line_number}: not valid JSON ({error})") from error


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
