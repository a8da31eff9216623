"""The pre-stage: hub models and lm-eval tasks downloaded once into a cache, so compute nodes run offline.

A model is cached as ``models/<slug>/`` (a snapshot of its repository) plus ``fetch.json``, its provenance,
written as a directory, atomically; a dataset by `fetch.dataset`.
"""

from __future__ import annotations

import time
from pathlib import Path

from annealscope.core.corpora import CACHED_PROVENANCE
from annealscope.core.io import atomic_path, write_json


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
