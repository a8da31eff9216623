import random

from annealscope.core.wordproblems import training_document
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.synthesize import program_documents
from annealscope.curate.text import ngrams, words
from annealscope.evaluate.tasks import arith_items, mmlu_math_items


def test_mmlu_math_has_the_five_subjects_without_header_rows():
    items = list(mmlu_math_items())
    assert len(items) == 1064
    assert {item["subject"] for item in items} == {"abstract algebra", "college mathematics",
                                                   "elementary mathematics", "high school mathematics",
                                                   "high school statistics"}
    assert all(0 <= item["gold"] < 4 and len(item["choices"]) == 4 for item in items)


def test_arith_items_are_well_formed_and_deterministic():
    first, second = list(arith_items()), list(arith_items())
    assert first == second and len(first) == 200
    for item in first:
        assert len(set(item["choices"])) == len(item["choices"]) == 4


def test_arith_eval_items_share_no_13_gram_with_the_program_source():
    documents, _ = program_documents(3000, seed=0)
    train_grams = set()
    for document in documents:
        train_grams |= set(ngrams(words(document["text"]), 13))
    for item in arith_items():
        text = f"{item['question']} {item['choices'][item['gold']]}"
        assert not set(ngrams(words(text), 13)) & train_grams, item["question"]
    train_questions = {document["text"].split("\n")[0] for document in documents}
    assert not any(item["question"] in question for item in arith_items() for question in train_questions)


def test_decontamination_removes_a_document_quoting_an_eval_item():
    item = "What is the smallest positive integer that leaves remainder two when divided by three and five"
    index = ContaminationIndex({"task": [item]}, n=13)
    clean = {"text": training_document(random.Random(0))}
    leaked = {"text": f"Intro. {item}. Answer 17."}
    kept, removed = index.filter([clean, leaked])
    assert kept == [clean]
    assert removed == {"task": 1}
