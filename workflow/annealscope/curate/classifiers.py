"""Quality / domain classifiers that score documents for a filtered source, with their cost per token.

- ``hashed_ngram``: hashed word 1..n-gram features and logistic regression, trained on labelled seed
  documents (the DCLM / FineWeb-Edu fastText pattern); its held-out AUC goes in the manifest.

A seeded classifier is trained once per source (`train_classifier`, its own job) and every shard job loads
it (`load_classifier`) and scores its documents a batch at a time.
- ``fasttext``: a fastText supervised model (what the DCLM and OpenWebMath classifiers are): a trained
  ``model_file`` scored on one of its labels, or one trained here on labelled seeds, with its held-out AUC.
- ``transformers``: a Hugging Face sequence-classification model (e.g. an educational-value
  regressor), run batched; the score is its regression output or one label's probability.
"""

from __future__ import annotations

import difflib
import json
import pickle
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annealscope.core.corpora import Document
from annealscope.core.io import atomic_path
from annealscope.core.references import is_trained_here

MODEL_FILES = {"hashed_ngram": "model.pkl", "fasttext": "model.bin"}
DESCRIPTION = "classifier.json"
SHOWN_LABELS = 8  # the most frequent seed labels an error about positive_labels lists


@dataclass
class Classifier:
    """A loaded classifier: `score(texts)` gives each text's score and the tokens it read (None: the caller
    counts them with the base tokenizer), at `flops_per_token`; `description` goes in the manifest."""

    score: Callable[[list[str]], tuple[np.ndarray, int | None]]
    flops_per_token: float
    description: dict = field(default_factory=dict)
    seed_labels: set[str] = field(default_factory=set)  # labels its seeds had: kept documents with one of them
                                                        # measure its precision


def _hashed_pipeline(ngram_max: int, features: int, seed: int):
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = HashingVectorizer(ngram_range=(1, ngram_max), n_features=features, alternate_sign=False, norm="l2")
    return make_pipeline(vectorizer, LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0,
                                                        random_state=seed))


def held_out_auc(texts: list[str], labels: np.ndarray, train_and_score, seed: int) -> float:
    """ROC AUC on a stratified 20% of the seeds, scored by `train_and_score(train_texts, train_labels,
    test_texts)` trained on the other 80%."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                                        random_state=seed)
    return float(roc_auc_score(test_y, train_and_score(train_x, train_y, test_x)))


def seed_labels(settings: dict, seeds: list[Document]) -> np.ndarray:
    """1 for seeds whose label is one of `positive_labels`, else 0; at least 5 of each."""
    positive = set(settings["positive_labels"])
    labels = np.asarray([document.label in positive for document in seeds], dtype=int)
    if labels.sum() < 5 or (1 - labels).sum() < 5:
        counts = Counter(str(document.label) for document in seeds)
        close = sorted({match for label in positive for match in difflib.get_close_matches(label, counts, cutoff=0.8)}
                       - positive)
        frequent = ", ".join(f"{label} ({count:,})" for label, count in counts.most_common(SHOWN_LABELS))
        raise ValueError(f"classifier.seeds needs at least 5 positive and 5 negative examples for labels "
                         f"{sorted(positive)}; found {labels.sum()} and {(1 - labels).sum()}. "
                         + (f"Did you mean {close}? " if close else "")
                         + f"The seeds' most frequent labels, of {len(counts):,}: {frequent}; fix "
                         "classifier.positive_labels or the seeds")
    return labels


def train_classifier(settings: dict, seeds: list[Document], out_dir: str | Path) -> dict:
    """Train a seeded backend on the labelled seeds, write the model and its description (held-out AUC
    included) to `out_dir` atomically, and return the description."""
    labels = seed_labels(settings, seeds)
    texts = [document.text for document in seeds]
    backend, seed = settings["backend"], settings["seed"]
    if backend == "hashed_ngram":
        ngram_max, features = settings["ngram_max"], settings["features"]

        def fit(train_texts, train_labels):
            return _hashed_pipeline(ngram_max, features, seed).fit(train_texts, train_labels)

        def train_and_score(train_texts, train_labels, scored):
            return fit(train_texts, train_labels).predict_proba(scored)[:, 1]

        summary = f"hashed 1..{ngram_max}-gram logistic regression, {features} features"
        flops_per_token = settings.get("flops_per_token") or 2.0 * ngram_max
    else:
        def fit(train_texts, train_labels):
            return _train_fasttext(settings, train_texts, train_labels)

        def train_and_score(train_texts, train_labels, scored):
            return _fasttext_probability(fit(train_texts, train_labels), scored, POSITIVE)

        summary = f"fastText trained on seeds, dim {settings['dim']}, word n-grams 1..{settings['ngram_max']}"
        flops_per_token = settings.get("flops_per_token") or 2.0 * settings["dim"] * settings["ngram_max"]
    description = {"classifier": summary, "seed_documents": len(seeds), "seed_positives": int(labels.sum()),
                   "held_out_auc": held_out_auc(texts, labels, train_and_score, seed),
                   "flops_per_token": flops_per_token,
                   "seed_labels": sorted({document.label for document in seeds if document.label is not None})}
    model = fit(texts, labels)
    with atomic_path(out_dir, directory=True) as tmp:
        if backend == "hashed_ngram":
            with open(tmp / MODEL_FILES[backend], "wb") as handle:
                pickle.dump(model, handle)
        else:
            model.save_model(str(tmp / MODEL_FILES[backend]))
        (tmp / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n")
    return description


def load_classifier(settings: dict, trained_dir: str | Path | None = None) -> Classifier:
    """The source's classifier: one trained here (from `trained_dir`), a fastText `model_file`, or a
    transformers model."""
    backend = settings["backend"]
    if is_trained_here(settings):
        if trained_dir is None:
            raise ValueError(f"classifier.backend {backend} is trained on its seeds first; pass its model folder")
        description = json.loads(Path(trained_dir, DESCRIPTION).read_text())
        flops_per_token, labels = description.pop("flops_per_token"), set(description.pop("seed_labels"))
        path = Path(trained_dir, MODEL_FILES[backend])
        if backend == "hashed_ngram":
            with open(path, "rb") as handle:  # written by train_classifier above, never a user's file
                model = pickle.load(handle)
            return Classifier(lambda texts: (model.predict_proba(texts)[:, 1] if texts else np.zeros(0), None),
                              flops_per_token, description, labels)
        return _fasttext_classifier(str(path), POSITIVE, settings, description, labels)
    if backend == "fasttext":
        return _fasttext_classifier(settings["model_file"], settings["label"], settings,
                                    {"classifier": f"fastText {settings['model_file']}",
                                     "score": f"p({settings['label']})"})
    return _transformers_classifier(settings)


def _fasttext_classifier(model_file: str, label: str, settings: dict, description: dict,
                         seed_labels: set[str] | None = None) -> Classifier:
    """Scores are the probability of `label`. Cost: about 2·dim FLOPs per word and n-gram read."""
    import fasttext

    model = fasttext.load_model(model_file)
    if label not in model.get_labels():
        raise ValueError(f"classifier.label: {label!r} is not a label of {model_file}; it has {model.get_labels()}")
    flops_per_token = settings.get("flops_per_token") or 2.0 * model.get_dimension() * model.f.getArgs().wordNgrams
    return Classifier(lambda texts: (_fasttext_probability(model, texts, label), None), flops_per_token, description,
                      seed_labels or set())


POSITIVE = "__label__positive"


FASTTEXT_CHILD = """import json, sys, fasttext
try:
    model = fasttext.train_supervised(input=sys.argv[1], **json.loads(sys.argv[3]))
except RuntimeError as error:
    if "NaN" not in str(error):
        raise
    sys.exit(3)
model.save_model(sys.argv[2])
"""  # a fresh Python process's training: the labelled lines of argv[1] to the model file argv[2]; 3: diverged


def _train_fasttext(settings: dict, texts: list[str], labels: np.ndarray):
    """A supervised fastText model on `texts` labelled positive / negative, single-threaded so it is
    reproducible for a seed, and trained in a fresh Python process (FASTTEXT_CHILD): fastText 0.9.2's training
    depends on what its process freed before. In a process that had freed blocks of NaNs, or had trained fastText
    once already, it diverged at any learning rate, 0.1 too, so the same seeds gave a model or an error by what
    ran before (tests/test_curate.py)."""
    import fasttext

    options = {"dim": settings["dim"], "bucket": settings["buckets"], "epoch": settings["epochs"],
               "wordNgrams": settings["ngram_max"], "lr": settings["lr"], "seed": settings["seed"], "thread": 1,
               "verbose": 0}
    with tempfile.TemporaryDirectory(prefix="fasttext-") as work:
        data, model_file = Path(work, "train.txt"), Path(work, "model.bin")
        with open(data, "w", encoding="utf-8") as handle:
            for text, label in zip(texts, labels, strict=True):
                handle.write(f"{POSITIVE if label else '__label__negative'} {_one_line(text)}\n")
        child = subprocess.run([sys.executable, "-c", FASTTEXT_CHILD, str(data), str(model_file), json.dumps(options)],
                               capture_output=True, text=True)
        if child.returncode == 3:
            raise ValueError(f"the fastText classifier diverged on its {len(texts)} seed documents (its loss became "
                             f"NaN) at classifier.lr {settings['lr']}; lower classifier.lr")
        if child.returncode:
            raise RuntimeError(f"training the fastText classifier failed:\n{child.stderr[-2000:]}")
        return fasttext.load_model(str(model_file))


def _fasttext_probability(model, texts: list[str], label: str) -> np.ndarray:
    """The probability of `label` for each text, batched through fastText's multi-line predict."""
    if not texts:
        return np.zeros(0)
    names, probabilities = model.predict([_one_line(text) for text in texts], k=-1)
    return np.array([dict(zip(row, values, strict=True)).get(label, 0.0)
                     for row, values in zip(names, probabilities, strict=True)])


def _one_line(text: str) -> str:
    """fastText reads one example per line."""
    return " ".join(text.split())


def _transformers_classifier(settings: dict) -> Classifier:
    """A sequence-classification model, run batched, longest first to limit padding.

    ``label: regression`` (or a one-output model) takes the raw output; otherwise the softmax probability
    of ``label`` (a name from the model's id2label, or an index). Cost: 2·N FLOPs per token read."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    trust = settings["trust_remote_code"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(settings["model"], trust_remote_code=trust)
    model = AutoModelForSequenceClassification.from_pretrained(
        settings["model"], trust_remote_code=trust, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.to(device).eval()
    parameters = sum(parameter.numel() for parameter in model.parameters())
    column = _score_column(model.config, settings["label"])
    batch_size = settings["batch_size"]

    def score(texts: list[str]) -> tuple[np.ndarray, int]:
        order = np.argsort([-len(text) for text in texts], kind="stable")
        values = np.zeros(len(texts))
        scanned = 0
        for start in range(0, len(texts), batch_size):
            batch = order[start:start + batch_size]
            encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                                max_length=settings["max_length"]).to(device)
            scanned += int(encoded["attention_mask"].sum())
            with torch.no_grad():
                logits = model(**encoded).logits.float()
            values[batch] = (logits[:, 0] if column is None else logits.softmax(-1)[:, column]).cpu().numpy()
        return values, scanned

    return Classifier(score, 2.0 * parameters, {
        "classifier": settings["model"], "classifier_parameters": parameters,
        "score": "regression" if column is None else f"p({settings.get('label')})"})


def _score_column(model_config, label: str | int) -> int | None:
    """None for a regression output, else the index of `label` among the model's labels."""
    if label == "regression" or model_config.num_labels == 1:
        return None
    names = {str(name): int(index) for index, name in model_config.id2label.items()}
    if str(label) in names:
        return names[str(label)]
    if str(label).isdigit() and int(label) < model_config.num_labels:
        return int(label)
    raise ValueError(f"classifier.label: {label!r} is not a label of the model; use one of {sorted(names)} "
                     "or 'regression'")
