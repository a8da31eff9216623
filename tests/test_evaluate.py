"""Evaluation with lm-eval on a tiny model: every output type scored, failures isolated per task."""

import json
import math
from pathlib import Path

import pytest
import yaml

from annealscope.core.io import read_jsonl
from annealscope.evaluate.collect import missing_tasks
from annealscope.evaluate.harness import EvalRequest, Evaluator
from annealscope.evaluate.tasks import prepare_tasks

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_base):
    directory = tmp_path_factory.mktemp("evaluate")
    tasks_dir = directory / "eval" / "tasks"
    prepare_tasks(["arith_mc", "arith_gen"], ROOT / "resources", tasks_dir, heldout={"python": ["pydoc:topics"]},
                  heldout_documents=5)
    broken = yaml.safe_load((tasks_dir / "arith_mc.yaml").read_text())
    broken.update(task="broken_mc", doc_to_target="{{no_such_field}}")
    (tasks_dir / "broken_mc.yaml").write_text(yaml.safe_dump(broken))
    tasks = ["arith_mc", "arith_gen", "heldout_python", "broken_mc"]
    evaluator = Evaluator(tasks, tasks_dir, limit=12, batch_size="auto")
    cell = directory / "eval" / "x" / "1" / "seed0"
    request = EvalRequest(str(tiny_base), str(cell / "scores.json"), str(cell / "items.jsonl.gz"))
    evaluator.evaluate(request)
    return json.loads(Path(request.scores_path).read_text()), list(read_jsonl(request.items_path)), request


def test_multiple_choice_tasks_get_accuracy_and_continuous_metrics(evaluated):
    scores, items, _ = evaluated
    arith = scores["tasks"]["arith_mc"]
    assert set(arith) == {"acc", "brier", "nll", "nll_token", "nll_byte", "p_gold"}
    assert arith["acc"]["n_items"] == 12 and arith["nll"]["stderr"] > 0
    assert arith["nll_byte"]["value"] <= arith["nll_token"]["value"] <= arith["nll"]["value"]  # answers: 1-2 tokens
    first = next(item for item in items if item["task"] == "arith_mc")
    assert len(first["logliks"]) == 4 and first["scores"]["nll"] == pytest.approx(-first["logliks"][first["gold"]])


def test_generative_tasks_get_their_score_and_the_gold_answers_likelihood(evaluated):
    scores, items, _ = evaluated
    generative = scores["tasks"]["arith_gen"]
    assert {"exact_match", "nll", "nll_token", "nll_byte"} <= set(generative)
    assert 0 <= generative["exact_match"]["value"] <= 1 and generative["nll"]["value"] > 0
    assert any("response" in item for item in items if item["task"] == "arith_gen")


def test_held_out_text_is_scored_in_bits_per_byte(evaluated):
    scores, _, _ = evaluated
    bpb = scores["tasks"]["heldout_python"]["bpb"]
    assert bpb["n_items"] == 5 and 0 < bpb["value"] < 8 * math.log2(256)


def test_a_failing_task_is_recorded_and_the_others_are_kept(evaluated):
    scores, _, request = evaluated
    assert "broken_mc" not in scores["tasks"] and "no_such_field" in scores["failed"]["broken_mc"]
    holes = missing_tasks([request.scores_path])
    assert holes == [{"source": "x", "budget_tokens": 1, "seed": 0, "task": "broken_mc",
                      "why": scores["failed"]["broken_mc"]}]


def test_every_cell_records_its_tasks_versions_and_the_software_that_scored_it(evaluated):
    """What collect checks before cells share a curve: each scored task's lm-eval version (this run fell back
    to task by task, as broken_mc failed) and the packages' versions."""
    import importlib.metadata

    scores, _, _ = evaluated
    assert scores["task_versions"] == {"arith_mc": 1.0, "arith_gen": 1.0, "heldout_python": 1.0}, scores
    assert scores["software"] == {package: importlib.metadata.version(package)
                                  for package in ("lm_eval", "transformers", "torch")}


def test_a_task_of_eval_include_path_is_checked_evaluated_with_continuous_metrics_and_decontaminated(
        tmp_path, tiny_base):
    """A user's lm-eval task, a YAML over a local data file and no Python in annealscope."""
    from annealscope.core.config import ConfigError
    from annealscope.core.io import write_jsonl
    from annealscope.curate.pipeline import eval_item_texts
    from annealscope.evaluate.tasks import check_tasks

    data = tmp_path / "capitals.jsonl"
    rows = [("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Peru", "Lima")]
    write_jsonl(data, [{"country": country, "answer": index % 3, "options": [capital, "Oslo", "Cairo"][-index % 3:]
                        + [capital, "Oslo", "Cairo"][:-index % 3]} for index, (country, capital) in enumerate(rows)])
    mine = tmp_path / "my_tasks"
    mine.mkdir()
    (mine / "capitals.yaml").write_text(yaml.safe_dump({
        "task": "capitals", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "The capital of {{country}} is",
        "doc_to_choice": "{{options}}", "doc_to_target": "answer", "metric_list": [{"metric": "acc"}]}))
    check_tasks(["arith_mc", "capitals"], ROOT / "resources", mine)
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['capital'\].*include_path's \['capitals'\]"):
        check_tasks(["capital"], ROOT / "resources", mine)
    with pytest.raises(ConfigError, match=r"eval.include_path: .*absent is not a folder"):
        check_tasks(["capitals"], ROOT / "resources", tmp_path / "absent")
    (mine / "clash.yaml").write_text((mine / "capitals.yaml").read_text().replace("capitals", "arith_mc"))
    with pytest.raises(ConfigError, match=r"defines task\(s\) \['arith_mc'\], which annealscope ships"):
        check_tasks(["capitals"], ROOT / "resources", mine)
    (mine / "clash.yaml").unlink()
    a_group_lists_tasks_lm_eval_builds_and_a_suite_may_take_its_tasks(mine)

    tasks_dir = tmp_path / "tasks"
    counts = prepare_tasks(["arith_mc", "capitals"], ROOT / "resources", tasks_dir, include_path=mine)
    assert counts["capitals"] == 5
    texts = eval_item_texts(tasks_dir)["capitals"]
    assert texts[0] == "The capital of France is Paris" and len(texts) == 5  # prompt and gold, as lm-eval builds them
    evaluator = Evaluator(["arith_mc", "capitals"], tasks_dir, limit=4, batch_size=4, include_path=mine)
    request = EvalRequest(str(tiny_base), str(tmp_path / "scores.json"), str(tmp_path / "items.jsonl.gz"))
    scores = evaluator.evaluate(request)
    assert set(scores["capitals"]) == {"acc", "brier", "nll", "nll_token", "nll_byte", "p_gold"}
    assert scores["capitals"]["acc"]["n_items"] == 4 and "arith_mc" in scores


def a_group_lists_tasks_lm_eval_builds_and_a_suite_may_take_its_tasks(mine: Path) -> None:
    """A group of the user's, or one inside it, may list the user's and lm-eval's tasks, not annealscope's own
    (the fetch job would fail on it deep in `datasets`) nor a misspelt one; fit.suites may average the user's
    tasks of a configured group with other tasks."""
    from annealscope.core.config import ConfigError
    from annealscope.evaluate.tasks import check_suite_tasks, check_tasks

    def group(name: str, tasks: list) -> None:
        (mine / f"{name}.yaml").write_text(yaml.safe_dump({"group": name, "task": tasks}))

    group("geography", ["capitals", "outer"])
    for inner, message in ((["arith_mc", "gsm8k"], r"group outer lists \['arith_mc'\], annealscope's own task"),
                           (["capitols"], r"group outer lists unknown task\(s\) \['capitols'\]")):
        group("outer", inner)
        with pytest.raises(ConfigError, match=message):
            check_tasks(["geography", "arith_mc"], ROOT / "resources", mine)
    group("outer", ["gsm8k", {"task": "defined_inline", "dataset_path": "json"}])
    check_tasks(["geography", "arith_mc"], ROOT / "resources", mine)
    check_suite_tasks({"mix": ["capitals", "arith_mc"]}, {"tasks": ["geography", "arith_mc"], "heldout": {},
                                                          "include_path": str(mine)})
    for name in ("geography", "outer"):
        (mine / f"{name}.yaml").unlink()


def test_lm_eval_groups_are_recorded_and_their_panel_is_the_number_lm_eval_reports(tmp_path, tiny_base):
    """A user's groups over tasks of 10 and 54 items: the nested ones lm-eval aggregates are recorded with their
    weighting, one without an aggregate is not, and the fit's panel of each is lm-eval's own group score, the
    mean of its leaf tasks weighted by items or not, as the group says."""
    import pandas as pd
    from lm_eval.evaluator import evaluate

    from annealscope.evaluate.collect import collect_groups
    from annealscope.fit.suites import with_suites

    mine = tmp_path / "groups"
    mine.mkdir()
    for name, tasks, weighted in (("both", ["arith_mc", "mmlu_math"], True), ("outer", ["both"], False),
                                  ("loose", ["arith_gen"], None)):
        group = {"group": name, "task": tasks}
        if weighted is not None:
            group["aggregate_metric_list"] = [{"metric": "acc", "weight_by_size": weighted}]
        (mine / f"{name}.yaml").write_text(yaml.safe_dump(group))
    tasks_dir = tmp_path / "tasks"
    prepare_tasks(["arith_mc", "mmlu_math", "arith_gen"], ROOT / "resources", tasks_dir)
    evaluator = Evaluator(["outer", "loose"], tasks_dir, limit=0.05, batch_size=8, include_path=mine)
    request = EvalRequest(str(tiny_base), str(tmp_path / "scores.json"), str(tmp_path / "items.jsonl.gz"))
    scores = evaluator.evaluate(request)
    assert {task: scores[task]["acc"]["n_items"] for task in ("arith_mc", "mmlu_math")} == {"arith_mc": 10,
                                                                                           "mmlu_math": 54}
    groups = collect_groups([request.scores_path])
    assert groups == {"both": {"tasks": ["arith_mc", "mmlu_math"], "weight_by_size": True},
                      "outer": {"tasks": ["arith_mc", "mmlu_math"], "weight_by_size": False}}

    table = pd.DataFrame([{"source": "x", "budget_tokens": 1, "seed": 0, "task": task, "metric": metric,
                           **{key: result[key] for key in ("value", "stderr", "n_items")}}
                          for task, metrics in scores.items() for metric, result in metrics.items()])
    panels = with_suites(table, {}, groups=groups)[0].set_index(["task", "metric"])["value"]
    reported = evaluate(lm=evaluator._load(str(tiny_base)), task_dict=evaluator.task_dict, limit=0.05,
                        verbosity="ERROR")["groups"]
    for group in groups:
        assert panels[group, "acc"] == pytest.approx(reported[group]["acc,none"], abs=1e-12), group
    accuracy = table[table["metric"] == "acc"].set_index("task")["value"]
    assert panels["outer", "acc"] == pytest.approx(accuracy[["arith_mc", "mmlu_math"]].mean(), abs=1e-12)
    assert abs(panels["both", "acc"] - panels["outer", "acc"]) > 1e-3  # the weighting is what tells them apart
    assert "arith_gen" in scores and ("loose", "nll") not in panels.index
