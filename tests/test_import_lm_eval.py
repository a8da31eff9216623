"""`annealscope import-lm-eval` on what the `lm_eval` command line writes: the same scores as annealscope's
own evaluation of the same checkpoints, a fit on the result, and clear errors or MISSING lines for bad input."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY

from annealscope.base.build import initialise_base
from annealscope.evaluate.harness import EvalRequest, Evaluator
from annealscope.evaluate.imported import import_lm_eval
from annealscope.evaluate.tasks import prepare_tasks

ROOT = Path(__file__).resolve().parent.parent
TASKS = ["arith_mc", "arith_gen", "heldout_python"]  # multiple choice, generative, rolling
LIMIT = 8
CELLS = [("base", "base", 0, 0), ("web", "filter", 1000, 0), ("web", "filter", 4000, 0)]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three checkpoints, each evaluated by the `lm_eval` command line and by annealscope's evaluator."""
    directory = tmp_path_factory.mktemp("import")
    tasks_dir = directory / "tasks"
    prepare_tasks(["arith_mc", "arith_gen"], ROOT / "resources", tasks_dir, heldout={"python": ["pydoc:topics"]},
                  heldout_documents=5)
    evaluator = Evaluator(TASKS, tasks_dir, limit=LIMIT, batch_size=8)
    rows, own = [], {}
    for index, (source, curation, budget, seed) in enumerate(CELLS):
        model = directory / f"model{index}"
        initialise_base(["pydoc:topics"], {**TINY, "init_seed": index}, model)
        subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                        f"pretrained={model},dtype=float32", "--device", "cpu", "--include_path", str(tasks_dir),
                        "--tasks", ",".join(TASKS), "--limit", str(LIMIT), "--batch_size", "8",
                        "--output_path", str(directory / "lm_eval" / f"run{index}"), "--log_samples"],
                       check=True, capture_output=True)
        scores = directory / "own" / f"{index}.json"
        evaluator.evaluate(EvalRequest(str(model), str(scores), str(directory / "own" / f"{index}.jsonl.gz")))
        own[(source, budget, seed)] = json.loads(scores.read_text())["tasks"]
        rows.append({"model": str(model), "source": source, "curation": curation, "budget_tokens": budget,
                     "seed": seed, "train_tokens": budget, "unique_tokens": budget, "train_flops": 6e5 * budget,
                     "acquisition_flops": 1e5 * budget})
    pd.DataFrame(rows).to_csv(directory / "cells.csv", index=False)
    return {"dir": directory, "folders": sorted((directory / "lm_eval").iterdir()), "own": own,
            "cells": directory / "cells.csv"}


def test_imported_scores_equal_annealscope_s_own_evaluation(runs):
    metrics, items, missing = import_lm_eval(runs["folders"], runs["cells"])
    assert missing == []
    compared = 0
    for row in metrics.itertuples():
        own = runs["own"][(row.source, row.budget_tokens, row.seed)][row.task]
        assert row.value == pytest.approx(own[row.metric]["value"], rel=1e-9, abs=1e-12), row
        assert row.n_items == own[row.metric]["n_items"]
        compared += 1
    assert {"acc", "brier", "nll_token", "nll_byte", "exact_match", "bpb"} <= set(metrics["metric"])
    assert compared == len(metrics) == 3 * 8  # per cell: 6 multiple-choice metrics, exact match, bits per byte
    assert len(items) == 3 * (LIMIT * 7 + 5)
    web = metrics[metrics["source"] == "web"]
    assert set(web["total_flops"]) == {7e5 * 1000, 7e5 * 4000} and set(web["epochs"]) == {1.0}


def test_a_fit_runs_on_the_imported_tables(runs, tmp_path):
    out = tmp_path / "imported"
    command = [sys.executable, "-m", "annealscope.cli"]
    imported = subprocess.run([*command, "import-lm-eval", *map(str, runs["folders"]), "--cells", str(runs["cells"]),
                               "--out", str(out)], capture_output=True, text=True, check=True)
    assert "imported 3 cells" in imported.stdout
    subprocess.run([*command, "fit", str(out / "metrics.csv"), "--items", str(out / "items.parquet"),
                    "--bootstrap", "20", "--out", str(tmp_path / "fit")], check=True, capture_output=True)
    fitted = pd.read_csv(tmp_path / "fit" / "fits.csv")
    assert {"arith_mc", "heldout_python"} <= set(fitted["task"]) and set(fitted["source"]) == {"web"}


def test_a_folder_without_samples_is_an_error_that_says_to_log_them(runs, tmp_path):
    folder = shutil.copytree(runs["folders"][0], tmp_path / "no_samples")
    for path in folder.rglob("samples_*.jsonl"):
        path.unlink()
    with pytest.raises(ValueError, match=r"no samples_arith_.*--log_samples"):
        import_lm_eval([folder, *runs["folders"][1:]], runs["cells"])


def test_a_task_missing_in_one_folder_is_a_missing_line_for_that_cell(runs, tmp_path):
    folder = shutil.copytree(runs["folders"][1], tmp_path / "no_gen")
    [results] = folder.rglob("results_*.json")
    data = json.loads(results.read_text())
    del data["configs"]["arith_gen"]
    results.write_text(json.dumps(data))
    metrics, _, missing = import_lm_eval([runs["folders"][0], folder, runs["folders"][2]], runs["cells"])
    assert missing == ["MISSING: web budget 1000 seed 0, task arith_gen: not in the lm-eval results of "
                       f"{runs['dir'] / 'model1'}"]
    assert len(metrics[metrics["budget_tokens"] == 1000]) == 8 - 1


def test_a_cell_without_results_is_missing_and_results_without_a_cell_an_error(runs, tmp_path):
    _, _, missing = import_lm_eval(runs["folders"][:2], runs["cells"])
    assert missing == [f"MISSING: web budget 4000 seed 0: no lm-eval results of model {runs['dir'] / 'model2'}"]
    cells = pd.read_csv(runs["cells"]).iloc[:2]
    cells.to_csv(tmp_path / "cells.csv", index=False)
    with pytest.raises(ValueError, match=rf"in no row of .*cells.csv: {runs['dir'] / 'model2'} \(in .*run2\)"):
        import_lm_eval(runs["folders"], tmp_path / "cells.csv")
    cells.drop(columns="train_flops").to_csv(tmp_path / "cells.csv", index=False)
    with pytest.raises(ValueError, match=r"no column\(s\) \['train_flops'\]"):
        import_lm_eval(runs["folders"], tmp_path / "cells.csv")


def test_imported_runs_that_scored_a_task_under_two_versions_of_it_are_refused(runs, tmp_path):
    """The last run's results file says lm-eval scored arith_mc under version 2.0, the others under 1.0."""
    folders = [tmp_path / folder.name for folder in runs["folders"]]
    for folder, copy in zip(runs["folders"], folders, strict=True):
        shutil.copytree(folder, copy)
    results = next(folders[-1].rglob("results_*.json"))
    record = json.loads(results.read_text())
    assert record["versions"]["arith_mc"] == 1.0 and record["lm_eval_version"]
    record["versions"]["arith_mc"] = 2.0
    results.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"arith_mc: version 1\.0 in base/0/seed0 web/1000/seed0, version 2\.0 in "
                                         r"web/4000/seed0"):
        import_lm_eval(folders, runs["cells"])


def test_groups_lm_eval_aggregated_are_imported_as_annealscope_s_evaluation_records_them(tmp_path):
    """A nested group weighted by size over tasks of 10 and 54 items, inside one weighted alike: the imported
    task_groups.json equals what annealscope's own evaluation records, and each group's panel is the score
    lm-eval reported for it."""
    import yaml

    from annealscope.fit.suites import with_suites

    tasks_dir, model = tmp_path / "tasks", tmp_path / "model"
    prepare_tasks(["arith_mc", "mmlu_math"], ROOT / "resources", tasks_dir)
    for name, tasks, weighted in (("both", ["arith_mc", "mmlu_math"], True), ("outer", ["both"], False)):
        (tasks_dir / f"{name}.yaml").write_text(yaml.safe_dump({
            "group": name, "task": tasks, "aggregate_metric_list": [{"metric": "acc", "weight_by_size": weighted}]}))
    initialise_base(["pydoc:topics"], TINY, model)
    subprocess.run([sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args",
                    f"pretrained={model},dtype=float32", "--device", "cpu", "--include_path", str(tasks_dir),
                    "--tasks", "outer", "--limit", "0.05", "--batch_size", "8", "--output_path",
                    str(tmp_path / "lm_eval"), "--log_samples"],
                   check=True, capture_output=True)
    pd.DataFrame([{"model": str(model), "source": "web", "curation": "filter", "budget_tokens": 1000, "seed": 0,
                   "train_tokens": 1000, "unique_tokens": 1000, "train_flops": 6e8, "acquisition_flops": 0.0}]
                 ).to_csv(tmp_path / "cells.csv", index=False)
    out = tmp_path / "imported"
    subprocess.run([sys.executable, "-m", "annealscope.cli", "import-lm-eval", str(tmp_path / "lm_eval"), "--cells",
                    str(tmp_path / "cells.csv"), "--out", str(out)], check=True, capture_output=True)
    groups = json.loads((out / "task_groups.json").read_text())
    assert groups == {"both": {"tasks": ["arith_mc", "mmlu_math"], "weight_by_size": True},
                      "outer": {"tasks": ["arith_mc", "mmlu_math"], "weight_by_size": False}}
    own = tmp_path / "own.json"
    Evaluator(["outer"], tasks_dir, limit=0.05, batch_size=8).evaluate(
        EvalRequest(str(model), str(own), str(tmp_path / "own.jsonl.gz")))
    assert json.loads(own.read_text())["groups"] == groups

    panels = with_suites(pd.read_csv(out / "metrics.csv"), {}, groups=groups)[0].set_index(["task", "metric"])
    reported = json.loads(next((tmp_path / "lm_eval").rglob("results_*.json")).read_text())["groups"]
    for group in groups:
        assert panels.loc[(group, "acc"), "value"] == pytest.approx(reported[group]["acc,none"], abs=1e-12)
