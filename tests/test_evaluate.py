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
