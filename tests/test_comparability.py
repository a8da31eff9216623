"""Cells that scored a task under different versions of it are refused before they share a curve; cells scored
or trained under different package versions are warned of."""

import pytest

from annealscope.core.io import write_json
from annealscope.evaluate.collect import collect
from annealscope.evaluate.comparability import check_task_versions, software_warnings

SOFTWARE = {"lm_eval": "0.4.13", "transformers": "5.0.0", "torch": "2.13.0"}


def scores(versions: dict | None, software: dict | None = None, tasks=("mc", "text")) -> dict:
    """A cell's scores JSON: `tasks` scored, with their versions and software unless None (an older cell)."""
    record = {"checkpoint": "c", "tasks": {task: {"acc": {"value": 0.5, "stderr": 0.1, "n_items": 10}}
                                           for task in tasks}, "failed": {}}
    if versions is not None:
        record["task_versions"] = {task: versions.get(task) for task in tasks}
    if software is not None:
        record["software"] = software
    return record


def test_a_task_scored_under_two_versions_is_refused_naming_the_task_its_cells_and_the_fix():
    by_cell = {("base", 0, 0): scores({"mc": 1.0, "text": 1.0}, SOFTWARE),
               ("web", 1000, 0): scores({"mc": 1.0, "text": 1.0}, SOFTWARE),
               ("web", 2000, 0): scores({"mc": 2.0, "text": 1.0}, {**SOFTWARE, "lm_eval": "0.5.0"})}
    with pytest.raises(ValueError, match=r"mc: version 1.0 in base/0/seed0 web/1000/seed0, version 2.0 in "
                                         r"web/2000/seed0\. .*snakemake --forcerun evaluate") as refused:
        check_task_versions(by_cell)
    assert "text:" not in str(refused.value)


def test_one_task_version_everywhere_passes_and_what_cannot_be_checked_is_said():
    """A task that some cells failed (so did not score) is no conflict; a cell scored before versions were
    recorded is named in a warning."""
    by_cell = {("base", 0, 0): scores({"mc": 1.0, "text": 1.0}),
               ("web", 1000, 0): scores({"mc": 1.0}, tasks=("mc",)),
               ("web", 2000, 0): scores(None),
               ("web", 4000, 0): scores({"mc": 1.0, "text": None})}
    warnings = check_task_versions(by_cell)
    assert len(warnings) == 1 and "1 cell(s) were scored before task versions were recorded" in warnings[0]
    assert "web/2000/seed0" in warnings[0]
    assert check_task_versions({("base", 0, 0): scores({"mc": 1.0})}) == []


def test_different_package_versions_in_scoring_or_training_are_warned_of_each_by_its_stage():
    by_cell = {("base", 0, 0): {"scored": SOFTWARE, "trained": None},
               ("web", 1000, 0): {"scored": {**SOFTWARE, "torch": "2.14.0"}, "trained": {"deepspeed": "0.9.0"}},
               ("web", 2000, 0): {"scored": SOFTWARE, "trained": {"deepspeed": "0.18.1"}},
               ("web", 4000, 0): {"scored": None, "trained": {"deepspeed": "0.18.1"}}}
    warnings = software_warnings(by_cell)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("warning: cells were scored under different torch versions") and \
        "version 2.13.0 in base/0/seed0 web/2000/seed0, version 2.14.0 in web/1000/seed0" in warnings[0]
    assert "trained under different deepspeed versions" in warnings[1] and \
        "version 0.9.0 in web/1000/seed0, version 0.18.1 in web/2000/seed0 web/4000/seed0" in warnings[1]  # not as text
    assert software_warnings({cell: {"scored": SOFTWARE} for cell in by_cell}) == []


def test_collect_refuses_cells_scored_under_two_versions_of_a_task_before_reading_anything_else(tmp_path):
    paths = []
    for budget, version in ((1000, 1.0), (2000, 1.1)):
        paths.append(tmp_path / "eval" / "web" / str(budget) / "seed0" / "scores.json")
        write_json(paths[-1], scores({"mc": version, "text": 1.0}, SOFTWARE))
    with pytest.raises(ValueError, match=r"mc: version 1\.0 in web/1000/seed0, version 1\.1 in web/2000/seed0"):
        collect(paths, tmp_path)
