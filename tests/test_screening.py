"""Screening of the tasks training data was not decontaminated against: which items occur in curated documents,
found per shard and merged, and the scores `collect` computes without them."""

import json
import random

import numpy as np
import pytest

from annealscope.core.io import read_json, write_jsonl
from annealscope.core.layout import DECONTAMINATION_TEXTS
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.screen import merge_screenings, screen_shard
from annealscope.curate.text import ngrams, words
from annealscope.evaluate.aggregation import aggregate
from annealscope.evaluate.collect import excluded_items, screened_scores
from annealscope.report.html import screening_table


def brute_force_owners(items: dict, texts: list[str], n: int) -> set:
    """Every owner with an n-gram (or, under n words but at least eight, its whole text) in some text."""
    found = set()
    for owner, [item] in items.items():
        tokens = words(item)
        length = min(n, len(tokens))
        if length < min(n, 8):
            continue
        grams = set(ngrams(tokens, length))
        if any(grams & set(ngrams(words(text), length)) for text in texts):
            found.add(owner)
    return found


def test_owners_are_every_item_found_in_any_text_even_where_items_share_their_ngrams():
    """Random items over a small vocabulary, some sharing a run of words with another (so one n-gram has two
    owners), some shorter than n, some under eight words; texts quote items whole, in part, across a split."""
    rng = random.Random(5)
    vocabulary = [f"w{index}" for index in range(300)]
    base = [" ".join(rng.choices(vocabulary, k=rng.randint(5, 30))) for _ in range(60)]
    base += [f"{base[index]} {' '.join(rng.choices(vocabulary, k=4))}" for index in range(0, 20, 2)]  # share grams
    items = {("task", "leaf", str(place)): [text] for place, text in enumerate(base)}
    texts = []
    for position in range(120):
        text = rng.choices(vocabulary, k=rng.randint(0, 50))
        item = words(rng.choice(base))
        if position % 5 == 0:
            text[rng.randint(0, len(text)):0] = item
        elif position % 5 == 1:
            text += item[:len(item) // 2]
        texts.append(" ".join(text))
    found = ContaminationIndex(items, n=13).owners(texts)
    assert found == brute_force_owners(items, texts, 13)
    assert 10 < len(found) < len(items)
    shared = [("task", "leaf", str(place)) for place in range(0, 20, 2)]
    assert any(owner in found for owner in shared)


def prepared(folder, local: dict[str, list[str]], lm_eval: dict[str, list[tuple[str, int, str]]]):
    """A prepared tasks folder: local items (question, choices, gold) and lm-eval decontamination texts."""
    for name, questions in local.items():
        write_jsonl(folder / f"{name}.jsonl",
                    ({"question": question, "choices": ["x", "gold answer"], "gold": 1} for question in questions))
    (folder / DECONTAMINATION_TEXTS).mkdir(parents=True)
    for name, rows in lm_eval.items():
        write_jsonl(folder / DECONTAMINATION_TEXTS / f"{name}.jsonl",
                    ({"task": task, "doc_id": doc_id, "text": text} for task, doc_id, text in rows))
    return folder


def sentence(rng, length=20):
    return " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "zeta",
                                "lambda", "mu", "nu", "xi", "rho", "tau", "phi"]) + str(rng.randint(0, 999))
                    for _ in range(length))


def test_shards_of_two_sources_screen_a_local_task_and_a_group_and_merge_by_subtask(tmp_path):
    """Items are found by the (sub)task and doc id lm-eval scores them by; the merge counts each item once
    however many shards and sources quote it, and tells how many each source holds."""
    rng = random.Random(0)
    local = [sentence(rng) for _ in range(6)]
    group = [("group_a", index, sentence(rng)) for index in range(4)] + \
            [("group_b", index, sentence(rng)) for index in range(3)]
    tasks = prepared(tmp_path / "tasks", {"local_task": local}, {"my_group": group})
    shards = {("web", 0): [local[1], group[0][2]], ("web", 1): [local[1] + " then more words", group[5][2]],
              ("own", 0): [f"{sentence(rng, 5)} {local[4]} gold answer", sentence(rng)]}
    paths = []
    for (source, shard), quoted in shards.items():
        documents = tmp_path / source / f"shard{shard:05d}" / "documents.jsonl"
        documents.parent.mkdir(parents=True)
        texts = [sentence(rng, 40) for _ in range(1500)] + [f"{sentence(rng, 7)} {text}" for text in quoted]
        write_jsonl(documents, ({"id": str(place), "text": text} for place, text in enumerate(texts)))
        paths.append(tmp_path / f"{source}{shard}.json")
        screen_shard(source, {"decontamination_ngram": 13}, documents, tasks, paths[-1])
    merged = merge_screenings(paths, tmp_path / "screened.json")
    assert merged == {
        "local_task": {"items": 6, "excluded": 2, "found": {"local_task": ["1", "4"]},
                       "by_source": {"web": 1, "own": 1}},
        "my_group": {"items": 7, "excluded": 2, "found": {"group_a": ["0"], "group_b": ["1"]},
                     "by_source": {"web": 2, "own": 0}}}
    assert excluded_items(tmp_path / "screened.json") == {"local_task": {"1", "4"}, "group_a": {"0"},
                                                          "group_b": {"1"}}
    table = screening_table(read_json(tmp_path / "screened.json"))
    assert table.to_dict("records") == [
        {"task": "local_task", "items": 6, "not scored": 2, "found in web": 1, "found in own": 1},
        {"task": "my_group", "items": 7, "not scored": 2, "found in web": 2, "found in own": 0}]


def test_a_cell_scores_a_screened_task_on_its_other_items_as_the_evaluation_aggregates_them(tmp_path):
    rng = np.random.default_rng(1)
    records = [{"task": task, "doc_id": doc_id, "scores": {"acc": float(rng.integers(2)), "nll": float(rng.random())}}
               for task in ("screened", "kept") for doc_id in range(50)]
    items = tmp_path / "items.jsonl.gz"
    tasks = {"screened": aggregate([record["scores"] for record in records[:50]]),
             "kept": aggregate([record["scores"] for record in records[50:]]),
             "empty": {"acc": {"value": 1.0, "stderr": 0.0, "n_items": 2}}}
    excluded = {"screened": {str(doc_id) for doc_id in range(0, 50, 3)}, "empty": {"0", "1"},
                "kept_elsewhere": {"0"}}
    write_jsonl(items, records + [{"task": "empty", "doc_id": doc_id, "scores": {"acc": 1.0}} for doc_id in (0, 1)])
    scores = screened_scores(tasks, items, excluded)
    clean = [record["scores"] for record in records[:50] if record["doc_id"] % 3]
    assert scores["screened"] == aggregate(clean) and scores["screened"]["acc"]["n_items"] == 33
    assert scores["kept"] is tasks["kept"]
    assert "empty" not in scores  # every item excluded: nothing to score
    assert screened_scores(tasks, tmp_path / "never read", {}) is tasks


@pytest.mark.parametrize("listed, error", [(["arith_mc", "gsm8k"], "eval.decontaminate: ['gsm8k'] is not evaluated"),
                                           (["heldout_nowhere"], "['heldout_nowhere'] is not evaluated")])
def test_decontaminate_lists_only_evaluated_tasks(demo_config, listed, error):
    from annealscope.core.config import ConfigError, check_config, validate_schema

    demo_config["eval"]["decontaminate"] = listed
    validate_schema(demo_config)
    with pytest.raises(ConfigError, match=error.replace("[", r"\[").replace("]", r"\]")):
        check_config(demo_config)


def test_decontaminated_and_screened_tasks_split_what_is_evaluated():
    from annealscope.core.decontamination import decontaminated_names, screened_names, task_subset

    evaluation = {"tasks": ["b", "a", "c"], "heldout": {"x": ["r1"], "y": ["r2"]}, "decontaminate": None}
    assert decontaminated_names(evaluation) == ["b", "a", "c", "heldout_x", "heldout_y"]
    assert screened_names(evaluation) == []
    evaluation["decontaminate"] = ["heldout_y", "b"]
    assert decontaminated_names(evaluation) == ["b", "heldout_y"]
    assert screened_names(evaluation) == ["a", "c", "heldout_x"]
    assert task_subset(evaluation, screened_names(evaluation)) == (["a", "c"], {"x": ["r1"]})
    assert json.dumps(task_subset(evaluation, decontaminated_names(evaluation))) == '[["b"], {"y": ["r2"]}]'

