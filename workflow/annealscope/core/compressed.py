"""Gzip and Zstandard files decompressed as they are read, each block of output with the compressed offset it
came from, so a large compressed JSON-lines file splits into shard jobs by compressed bytes, as a plain one
splits by bytes: a line belongs to the range holding the offset of the input block whose output has its first
byte. Every block is READ bytes at a fixed offset, so each job assigns every line to the same range."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

READ = 1 << 16  # compressed bytes a block: the unit a range is cut in
GZIP_SUFFIX, ZSTD_SUFFIX = ".gz", ".zst"


def is_compressed(path: str | Path) -> bool:
    return str(path).endswith((GZIP_SUFFIX, ZSTD_SUFFIX))


def decompressed_blocks(handle: BinaryIO, name: str) -> Iterator[tuple[int, bytes]]:
    """(offset, output) for each READ-byte block of `handle`, a file named `name` (`.gz` or `.zst`), member
    after member or frame after frame. A corrupt file, or one that ends inside a member or frame (a copy cut
    short), raises OSError naming it, as gzip does."""
    gzip = name.endswith(GZIP_SUFFIX)
    new_member = _gzip_member if gzip else _zstd_frames()
    offset, member = 0, None
    while data := handle.read(READ):
        while data:
            if member is None:
                if gzip and not (data := data.lstrip(b"\0")):  # gzip's zero padding between members
                    break
                member = new_member()
            try:
                output = member.decompress(data)
            except Exception as error:  # zlib.error, zstandard.ZstdError
                raise OSError(f"{name}: not a valid {'gzip' if gzip else 'Zstandard'} file ({error})") from None
            if output:
                yield offset, output
            data, member = (member.unused_data, None) if member.eof else (b"", member)
        offset += READ
    if member is not None:
        raise OSError(f"{name}: the file ends inside a {'gzip member' if gzip else 'Zstandard frame'} (cut short?)")


def _gzip_member():
    return zlib.decompressobj(zlib.MAX_WBITS | 16)


def _zstd_frames():
    import zstandard

    return lambda: zstandard.ZstdDecompressor().decompressobj()


def lines_in_range(path: str | Path, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """(number, line) of the non-blank lines of a compressed file whose first byte came from an input block at a
    compressed offset in [start, end), each numbered among the whole file's non-blank lines; the blocks before
    `start` are decompressed and their lines counted, not parsed."""
    number, pending, begun = 0, b"", 0
    with open(path, "rb") as handle:
        for offset, output in decompressed_blocks(handle, str(path)):
            if not pending:
                begun = offset
            if offset >= end and not pending:
                return
            *complete, rest = output.split(b"\n")
            for line in complete:
                line, pending, first = pending + line, b"", begun
                begun = offset
                if line.strip():
                    if first >= end:
                        return
                    if first >= start:
                        yield number, line
                    number += 1
            pending += rest
    if pending.strip() and start <= begun < end:
        yield number, pending
