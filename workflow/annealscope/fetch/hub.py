"""The pre-stage: hub models and lm-eval tasks downloaded once into a cache, so compute nodes run offline.

A model is cached as ``models/<slug>/`` (a snapshot of its repository) plus ``fetch.json``, its provenance,
written as a directory, atomically, after a download that takes up the files one cut short finished
(`fetch.partial`); a dataset by `fetch.dataset`.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from annealscope.core.corpora import CACHED_PROVENANCE
from annealscope.core.io import atomic_path, write_json
from annealscope.fetch.partial import RECORD, partial_folder


def fetch_model(name: str, revision: str | None, out_dir: str | Path) -> dict:
    """Download a hub model repository snapshot into `out_dir`, with its resolved commit. A download cut short
    resumes: its partial folder is the download's `local_dir`, where huggingface_hub skips the files finished."""
    from huggingface_hub import HfApi, snapshot_download

    started, out_dir = time.perf_counter(), Path(out_dir)
    commit = HfApi().model_info(name, revision=revision).sha
    partial = partial_folder(out_dir, {"fetched": name, "revision": commit})
    snapshot_download(name, revision=commit, local_dir=partial)
    with atomic_path(out_dir, directory=True) as tmp:
        shutil.copytree(partial, tmp, copy_function=os.link, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(RECORD))  # linked: the partial folder stays whole till now
        provenance = {"fetched": name, "revision": commit, "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    shutil.rmtree(partial)
    print(f"fetched {name}@{commit} into {out_dir}")
    return provenance


def fetch_tasks(tasks: list[str], out_dir: str | Path, include_path: str | Path | None = None) -> dict:
    """Build lm-evaluation-harness tasks (lm-eval's own, and the user's under `include_path`) once with the hub
    reachable, so their datasets land in the Hugging Face cache (``HF_HOME``, set by the caller before any
    Hugging Face import); record what was done."""
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    built = TaskManager(include_path=include_path).load(tasks)
    with atomic_path(out_dir, directory=True) as tmp:
        provenance = {"fetched": tasks, "built": sorted(built["tasks"]),
                      "fetch_seconds": round(time.perf_counter() - started, 3),
                      "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        write_json(tmp / CACHED_PROVENANCE, provenance)
    print(f"fetched the datasets of {len(tasks)} lm-eval task(s) into the cache")
    return provenance
