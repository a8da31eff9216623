"""lm-eval's own task names (tasks, groups and tags), indexed once per installed lm-eval.

lm-eval finds its tasks by parsing every YAML it ships (13,986 files in 0.4.13: 5.5 s for 14,683 names on the
AVX-512 EPYC), and the configuration check needs only their names. So the names are kept in a file of the
user's cache folder, named after a fingerprint of the installation: lm-eval's version and where it lies, and
the count, total size and newest modification time of its task YAMLs, which a walk of the folder gives in a
tenth of a second. A new version, an edited or added YAML, or another environment misses the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path

from annealscope.core.io import read_json, write_json


def lm_eval_tasks_folder() -> Path:
    """The `lm_eval/tasks` folder of the installed lm-eval, found without importing it (an import takes 0.8 s)."""
    return Path(importlib.util.find_spec("lm_eval.tasks").submodule_search_locations[0])


def task_folder_fingerprint(folder: Path) -> str:
    """A digest of lm-eval's version, `folder` and its YAMLs' count, total size and newest modification."""
    count = size = newest = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".yaml"):
                stat = os.stat(os.path.join(directory, name))
                count, size, newest = count + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
    key = f"{importlib.metadata.version('lm_eval')} {folder.resolve()} {count} {size} {newest}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def cache_folder() -> Path:
    """`$XDG_CACHE_HOME/annealscope`, by default `~/.cache/annealscope`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "annealscope"


def registered_task_names() -> set[str]:
    """Every name lm-eval's TaskManager registers by default, from the cache when it matches the installation.

    A cache that cannot be read is rebuilt; one that cannot be written is skipped (the names still return)."""
    path = cache_folder() / f"lm-eval-tasks-{task_folder_fingerprint(lm_eval_tasks_folder())}.json"
    try:
        return set(read_json(path))
    except (OSError, ValueError, TypeError):
        pass
    from lm_eval.tasks import TaskManager

    names = TaskManager().all_tasks
    with contextlib.suppress(OSError):  # a read-only home, as on some compute nodes
        write_json(path, names)
    return set(names)
