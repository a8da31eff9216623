import os

import lm_eval.tasks

from annealscope.evaluate.registry import registered_task_names, task_folder_fingerprint


def test_the_fingerprint_changes_with_any_task_yaml_added_edited_or_touched_and_nothing_else(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "gsm8k.yaml").write_text("task: gsm8k\n")
    (tmp_path / "mmlu.yaml").write_text("group: mmlu\n")
    first = task_folder_fingerprint(tmp_path)
    (tmp_path / "gsm8k" / "utils.py").write_text("def f(): pass\n")
    (tmp_path / "__pycache__").mkdir()
    assert task_folder_fingerprint(tmp_path) == first
    seen = {first}
    (tmp_path / "gsm8k" / "gsm8k_cot.yaml").write_text("task: gsm8k_cot\n")
    seen.add(task_folder_fingerprint(tmp_path))
    (tmp_path / "mmlu.yaml").write_text("group: mmlu_\n")
    seen.add(task_folder_fingerprint(tmp_path))
    stat = os.stat(tmp_path / "mmlu.yaml")
    os.utime(tmp_path / "mmlu.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    seen.add(task_folder_fingerprint(tmp_path))
    assert len(seen) == 4


def test_lm_eval_s_task_names_are_indexed_once_then_read_and_a_cache_that_fails_is_rebuilt_or_skipped(
        tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = []
    manager = lm_eval.tasks.TaskManager
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", lambda: built.append(1) or manager())

    names = registered_task_names()
    assert {"gsm8k", "mmlu", "hellaswag", "minerva_math"} <= names and len(built) == 1
    [cache] = (tmp_path / "annealscope").glob("lm-eval-tasks-*.json")
    assert registered_task_names() == names and len(built) == 1

    cache.unlink()
    (cache / "in_the_way").mkdir(parents=True)  # neither readable as JSON nor replaceable by a file
    assert registered_task_names() == names and len(built) == 2
    assert [path.name for path in (tmp_path / "annealscope").iterdir()] == [cache.name]  # no temporary left
