"""The pre-stage: hub datasets and models downloaded once into a cache, so compute nodes run offline.

A dataset is cached as ``datasets/<slug>/documents-<k>.jsonl.gz``, files of about CHUNK_TEXT characters of
text in row order, plus ``fetch.json`` (what was read: the reference, the resolved revision, rows and bytes,
and each file's rows, so that a shard job reads only the files that hold its rows); a model as
``models/<slug>/`` (a snapshot of its repository) plus the same provenance file. Each is written as a
directory, atomically.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from tqdm import tqdm

from annealscope.core.corpora import (
    CACHED_PROVENANCE,
    CHUNK_LEVEL,
    CHUNK_TEXT,
    FETCH_BYTES_PER_TOKEN,
    chunk_file,
    file_sha256,
    hub_dataset_rows,
    hub_options,
)
from annealscope.core.io import atomic_path, write_json, write_jsonl


def dataset_revision(dataset: str, revision: str | None) -> dict:
    """What identifies the data read: file hashes for a local dataset directory, else the hub commit."""
    local = Path(dataset)
    if local.is_dir():
        files = sorted(path for path in local.rglob("*") if path.is_file())
        return {"local_files": {str(path.relative_to(local)): file_sha256(path) for path in files}}
    from huggingface_hub import HfApi

    return {"revision": HfApi().dataset_info(dataset, revision=revision).sha}


def fetch_dataset(reference: str, out_dir: str | Path) -> dict:
    """Stream `reference` up to its caps into ``out_dir``'s files of about CHUNK_TEXT characters of text and record
    its provenance."""
    options = hub_options(reference)
    max_documents = int(options.get("max_documents", 0)) or None
    max_bytes = int(options.get("max_tokens", 0)) * FETCH_BYTES_PER_TOKEN or None
    started = time.perf_counter()
    counts = {"rows": 0, "bytes": 0}

    def rows():
        for document in tqdm(hub_dataset_rows(reference), desc=f"fetch {options['dataset']}", unit="doc"):
            if (max_documents and counts["rows"] >= max_documents) or (max_bytes and counts["bytes"] >= max_bytes):
                return
            counts["rows"] += 1
            counts["bytes"] += len(document.text.encode())
            yield document.as_record()

    with atomic_path(out_dir, directory=True) as tmp:
        chunks, remaining = [], rows()
        for first in remaining:  # one file at a time
            chunks.append(write_jsonl(tmp / chunk_file(len(chunks)), _up_to_text(itertools.chain([first], remaining)),
                                      level=CHUNK_LEVEL))
        provenance = {"fetched": reference, **dataset_revision(options["dataset"], options.get("revision")),
                      **counts, "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "chunks": chunks}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    if not counts["rows"]:
        raise ValueError(f"{reference}: the dataset yielded no rows; check split= and name=")
    print(f"fetched {counts['rows']:,} rows ({counts['bytes'] / 1e6:.1f} MB) of {reference} into {out_dir}")
    return provenance


def _up_to_text(records):
    """Records of `records` until CHUNK_TEXT characters of text have gone, the rest left in `records`."""
    text = 0
    for record in records:
        yield record
        text += len(record["text"])
        if text >= CHUNK_TEXT:
            return


def fetch_model(name: str, revision: str | None, out_dir: str | Path) -> dict:
    """Download a hub model repository snapshot into `out_dir`, with its resolved commit."""
    from huggingface_hub import HfApi, snapshot_download

    started = time.perf_counter()
    commit = HfApi().model_info(name, revision=revision).sha
    with atomic_path(out_dir, directory=True) as tmp:
        snapshot_download(name, revision=commit, local_dir=tmp)
        provenance = {"fetched": name, "revision": commit, "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    print(f"fetched {name}@{commit} into {out_dir}")
    return provenance


def fetch_tasks(tasks: list[str], out_dir: str | Path, include_path: str | Path | None = None) -> dict:
    """Build lm-evaluation-harness tasks (lm-eval's own, and the user's under `include_path`) once with the hub
    reachable, so their datasets land in the Hugging Face cache (``HF_HOME``, set by the caller before any
    Hugging Face import); record what was done."""
    from lm_eval.tasks import TaskManager, get_task_dict

    started = time.perf_counter()
    task_dict = get_task_dict(tasks, TaskManager(include_path=include_path))
    with atomic_path(out_dir, directory=True) as tmp:
        provenance = {"fetched": tasks, "built": sorted(str(name) for name in task_dict),
                      "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    print(f"fetched the datasets of {len(tasks)} lm-eval task(s) into the cache")
    return provenance
