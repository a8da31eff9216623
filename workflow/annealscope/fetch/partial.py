"""The folder a fetch works in: kept when the fetch fails, so the next fetch of the same thing resumes there.

A fetch into ``<cache>/<kind>/<slug>`` works in the hidden sibling ``.<slug>.partial``, which records what it
fetches (``fetching.json``: the reference and its resolved revision, or a local dataset's file hashes). The
finished fetch is moved into place atomically and the folder removed; a fetch that fails or is killed leaves
it, and the next fetch takes it up if it fetches the same thing, else starts afresh.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from annealscope.core.io import read_json, write_json

RECORD = "fetching.json"


def partial_folder(out_dir: Path, identity: dict) -> Path:
    """The folder a fetch into `out_dir` of `identity` works in: a failed fetch's of the same identity, else a new
    one."""
    partial = out_dir.parent / f".{out_dir.name}.partial"
    record = partial / RECORD
    if partial.is_dir() and not (record.is_file() and read_json(record) == identity):
        shutil.rmtree(partial)
    if partial.is_dir():
        print(f"resuming the fetch cut short in {partial}")
    partial.mkdir(parents=True, exist_ok=True)
    write_json(record, identity)
    return partial
