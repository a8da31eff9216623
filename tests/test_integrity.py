"""Artifacts keep their promises: an export is checked against its file hashes before evaluation, and a run
whose metrics.csv lost a per-cell file says so before planning, naming the files and the fix."""

import pandas as pd
import pytest

from annealscope.core.integrity import IntegrityError, missing_collected_files, record_export, verify_export


def test_a_truncated_changed_or_missing_export_file_is_refused_naming_it(tmp_path):
    model = tmp_path / "anneal" / "a" / "4096" / "seed0" / "model"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"w" * 1000)
    (model / "config.json").write_text("{}")
    record_export(model)
    verify_export(model)  # as written
    (model / "model.safetensors").write_bytes(b"w" * 10)
    with pytest.raises(IntegrityError, match=r"model.safetensors differs .*snakemake --forcerun .*seed0/model"):
        verify_export(model)
    (model / "model.safetensors").write_bytes(b"x" * 1000)  # same size, other bytes
    with pytest.raises(IntegrityError, match="differs"):
        verify_export(model)
    (model / "model.safetensors").unlink()
    with pytest.raises(IntegrityError, match=r"model\.safetensors is missing"):
        verify_export(model)
    verify_export(tmp_path)  # a folder without a record (a hub model) has nothing to check


def test_files_metrics_csv_was_collected_from_are_listed_when_gone(tmp_path):
    run = tmp_path / "results" / "r"
    pd.DataFrame({"source": ["base", "a"], "budget_tokens": [0, 4096], "seed": [0, 0]}).to_csv(
        run.mkdir(parents=True) or run / "metrics.csv", index=False)
    wanted = [run / "eval/base/0/seed0/scores.json", run / "eval/base/0/seed0/items.jsonl.gz",
              run / "eval/a/4096/seed0/scores.json", run / "eval/a/4096/seed0/items.jsonl.gz",
              run / "anneal/a/4096/seed0/summary.json", run / "curate/a/manifest.json"]
    for path in wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert missing_collected_files(run) == []
    wanted[2].unlink()
    assert missing_collected_files(run) == [wanted[2]]
    assert missing_collected_files(tmp_path / "no-run") == []
