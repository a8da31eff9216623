import math

import numpy as np
import pytest

from annealscope.core.io import atomic_path, json_line, read_jsonl, write_jsonl


def test_atomic_writes_leave_no_partial_file_and_normal_permissions(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}" and target.stat().st_mode & 0o044


def test_an_atomic_folder_keeps_the_users_umask_for_what_a_writer_made_private(tmp_path):
    import os

    from annealscope.core.io import atomic_path

    previous = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "model", directory=True) as tmp:
            weights = tmp / "model.safetensors"
            weights.write_bytes(b"weights")
            weights.chmod(0o600)  # as safetensors writes it
            (tmp / "nested").mkdir(mode=0o700)
    finally:
        os.umask(previous)
    assert (tmp_path / "model" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "model" / "nested").stat().st_mode & 0o777 == 0o755


def test_json_lines_read_back_what_the_standard_library_reads_non_finite_floats_and_lone_surrogates_included(
        tmp_path):
    records = [{"text": "é ∑ 日本", "tokens": np.int64(3), "score": np.float64(0.25), "nested": {"loss": [1.5]}},
               {"loss": float("nan"), "upper": float("inf"), "inner": {"x": [float("-inf")]}},
               {"text": "\ud800 lone surrogate"}, {7: "an integer key"}]
    with open(tmp_path / "lines.jsonl", "w", encoding="utf-8", errors="surrogatepass") as handle:
        for record in records:
            handle.write(json_line(record))
    back = list(read_jsonl(tmp_path / "lines.jsonl"))
    assert back[0] == {"text": "é ∑ 日本", "tokens": 3, "score": 0.25, "nested": {"loss": [1.5]}}
    assert math.isnan(back[1]["loss"]) and back[1]["upper"] == math.inf and back[1]["inner"] == {"x": [-math.inf]}
    assert back[2] == {"text": "\ud800 lone surrogate"} and back[3] == {"7": "an integer key"}
    write_jsonl(tmp_path / "broken.jsonl", [{"a": 1}])
    with open(tmp_path / "broken.jsonl", "a") as handle:
        handle.write('{"a": \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not valid JSON"):
        list(read_jsonl(tmp_path / "broken.jsonl"))
