import random

from annealscope.core.wordproblems import training_document
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.synthesize import program_documents
from annealscope.curate.text import HashedWords, ngrams, words
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
    assert index.tasks([clean["text"], leaked["text"]]) == [None, "task"]


def test_an_ngram_shorter_than_the_minimum_item_length_still_indexes_items():
    index = ContaminationIndex({"task": ["seven rows of twelve beans"]}, n=4)
    assert index.tasks(["we planted seven rows of twelve carrots", "seven rows of beans"]) == ["task", None]


def test_batched_decontamination_matches_the_word_by_word_check_and_never_across_documents():
    """The hashed screen over a batch finds exactly what matching each document word by word finds, charged to
    the same tasks, on random text with items planted at random places, including halves of an item ending one
    document and starting the next (which is no match)."""
    rng = random.Random(3)
    vocabulary = [f"v{index}" for index in range(400)]
    items = {task: [" ".join(rng.choices(vocabulary, k=rng.randint(8, 30))) for _ in range(20)]
             for task in ("one", "two")}
    index = ContaminationIndex(items, n=13)
    documents = []
    for position in range(400):
        text = rng.choices(vocabulary, k=rng.randint(0, 60))
        task = rng.choice(["one", "two"])
        item = words(rng.choice(items[task]))
        if position % 7 == 0:
            text[rng.randint(0, len(text)):0] = item
        elif position % 7 == 1:
            text += item[:len(item) // 2]
        elif position % 7 == 2:
            text = item[len(item) // 2:] + text
        documents.append({"text": " ".join(text)})
    texts = [document["text"] for document in documents]
    expected = [index.match(text) for text in texts]
    assert index.tasks(texts) == expected and sum(task is not None for task in expected) >= 400 // 7
    assert index.suspects(HashedWords.of(texts)) == \
        {position for position, task in enumerate(expected) if task}  # no window spans two documents


WORD_PIECES = ["Answer", "answer", ":", " ", "İstanbul", "STRASSE", "straße", "ǅ", "e\u0301", "٣", "_", "x_y", "\u00a0",
               "𝔸", "\ud800", "’", "-", "\n", "数学", "½", "Ⅻ", "ΣΑΣ"]


def test_a_batch_s_word_hashes_are_each_word_s_own_wherever_it_is_and_tell_distinct_words_apart():
    from annealscope.curate.word_spans import word_hashes

    rng = random.Random(4)
    texts = ["".join(rng.choices(WORD_PIECES, k=rng.randint(0, 40))) for _ in range(500)]
    hashed = HashedWords.of(texts)
    expected = [words(text) for text in texts]
    assert hashed.lengths.tolist() == [len(found) for found in expected]
    assert hashed.hashes.tolist() == word_hashes([word for found in expected for word in found]).tolist()
    many = list({f"{rng.choice(WORD_PIECES)}{rng.randrange(10 ** 6)}" for _ in range(100_000)} | {"", "a", "b"})
    assert len(set(word_hashes(many).tolist())) == len(many)  # no two of 100,000 words share a hash


QUESTIONS = ["A farmer plants seven rows of beans with twelve plants in each row and then buys nine more plants",
             "A train leaves the station at noon travelling sixty miles per hour toward a city three hundred miles",
             "A baker fills fourteen trays with two dozen rolls each and sells all but the rolls of one tray"]


def test_lm_eval_tasks_defined_only_by_yaml_are_indexed_as_lm_eval_builds_them_and_removals_counted(tmp_path):
    import yaml

    from annealscope.core.io import write_jsonl
    from annealscope.curate.pipeline import eval_item_texts
    from annealscope.evaluate.contamination import write_decontamination_texts

    data = tmp_path / "qa.jsonl"
    write_jsonl(data, [{"question": question, "answer": str(index), "choices": ["red", "blue", "green"], "gold": index}
                       for index, question in enumerate(QUESTIONS)])
    common = {"dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}}, "test_split": "test",
              "metadata": {"version": 1.0}}
    specs = {"local_qa": {"output_type": "generate_until", "doc_to_text": "Question: {{question}}\nAnswer:",
                          "doc_to_target": "{{answer}}", "metric_list": [{"metric": "exact_match"}]},
             "local_mc": {"output_type": "multiple_choice", "doc_to_text": "{{question}}?",
                          "doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}",
                          "metric_list": [{"metric": "acc"}]},
             "local_query": {"output_type": "generate_until", "doc_to_text": "Q: {{question}}",
                             "doc_to_target": "{{answer}}", "should_decontaminate": True,
                             "doc_to_decontamination_query": "question",
                             "metric_list": [{"metric": "exact_match"}]}}
    (tmp_path / "tasks").mkdir()
    for name, spec in specs.items():
        (tmp_path / "tasks" / f"{name}.yaml").write_text(yaml.safe_dump({"task": name, **common, **spec}))
    prepared = tmp_path / "prepared"
    counts = write_decontamination_texts(sorted(specs), prepared, include_path=str(tmp_path / "tasks"))
    assert counts == {"local_mc": 3, "local_qa": 3, "local_query": 3}
    texts = eval_item_texts(prepared)
    assert texts["local_qa"][0] == f"Question: {QUESTIONS[0]}\nAnswer: 0"
    assert texts["local_mc"][2] == f"{QUESTIONS[2]}? green"
    assert texts["local_query"][1] == QUESTIONS[1]
    index = ContaminationIndex({"local_query": texts["local_query"]}, n=13)
    documents = [{"text": f"Worked example. {QUESTIONS[1]}. The answer follows."}, {"text": " ".join(["beans"] * 30)}]
    assert index.tasks([document["text"] for document in documents]) == ["local_query", None]
