"""What a finished artifact promises: an export's file hashes, checked before a checkpoint is evaluated, and
the per-cell files that `metrics.csv` was collected from, checked before a run is planned."""

from __future__ import annotations

import csv
from pathlib import Path

from annealscope.core.corpora import file_sha256
from annealscope.core.io import read_json, write_json
from annealscope.core.layout import ANNEAL_SUMMARY, BASE_SOURCE, ITEMS, MANIFEST, SCORES, run_path

EXPORT_RECORD = "export.json"


class IntegrityError(ValueError):
    """An artifact differs from what was recorded when it was made; the message says how to remake it."""


def record_export(model_dir: str | Path) -> None:
    """Write the size and SHA-256 of every file of an exported model into its folder."""
    model_dir = Path(model_dir)
    files = {str(path.relative_to(model_dir)): {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
             for path in sorted(model_dir.rglob("*")) if path.is_file() and path.name != EXPORT_RECORD}
    write_json(model_dir / EXPORT_RECORD, {"files": files})


def verify_export(model_dir: str | Path) -> None:
    """Check an exported model against its record (a hub model or an export from before records: nothing to
    check); a missing, truncated or changed file is an IntegrityError naming it and the command that remakes it."""
    model_dir = Path(model_dir)
    record = model_dir / EXPORT_RECORD
    if not record.is_file():
        return
    remake = f"snakemake --forcerun {model_dir}"
    for name, expected in read_json(record)["files"].items():
        path = model_dir / name
        if not path.is_file():
            raise IntegrityError(f"{model_dir}: {name} is missing from the export; retrain it with `{remake}`")
        if path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
            raise IntegrityError(f"{model_dir}: {name} differs from the export it was written as (truncated or "
                                 f"changed); retrain it with `{remake}`")


def missing_collected_files(run_dir: str | Path) -> list[Path]:
    """The per-cell files that `metrics.csv` was collected from (scores, per-item results, training summaries,
    manifests) and that are gone: Snakemake does not rerun for a missing intermediate file."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return []
    with open(metrics, newline="") as handle:
        cells = {(row["source"], int(row["budget_tokens"]), int(row["seed"])) for row in csv.DictReader(handle)}
    expected = []
    for source, budget, seed in sorted(cells):
        wildcards = {"source": source, "budget": budget, "seed": seed}
        expected += [run_path(SCORES, run_dir, **wildcards), run_path(ITEMS, run_dir, **wildcards)]
        if source != BASE_SOURCE:
            expected += [run_path(ANNEAL_SUMMARY, run_dir, **wildcards), run_path(MANIFEST, run_dir, source=source)]
    return [path for path in dict.fromkeys(expected) if not path.is_file()]
