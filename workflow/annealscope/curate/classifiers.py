"""Quality / domain classifiers that score documents for a filtered source, with their cost per token.

- ``hashed_ngram``: hashed word 1..n-gram features and logistic regression, trained on labelled seed
  documents (the DCLM / FineWeb-Edu fastText pattern); its held-out AUC goes in the manifest.
- ``fasttext``: a fastText supervised model (what the DCLM and OpenWebMath classifiers are): a trained
  ``model_file`` scored on one of its labels, or one trained here on labelled seeds, with its held-out AUC.
- ``transformers``: a Hugging Face sequence-classification model (e.g. an educational-value
  regressor), run batched; the score is its regression output or one label's probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from annealscope.core.corpora import Document


@dataclass
class Scores:
    """Per-document scores, the tokens the classifier read, and what to record about it."""

    values: np.ndarray
    scanned_tokens: int
    flops_per_token: float
    description: dict = field(default_factory=dict)


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
        raise ValueError(f"classifier.seeds needs at least 5 positive and 5 negative examples for labels "
                         f"{sorted(positive)}; found {labels.sum()} and {(1 - labels).sum()}")
    return labels


def hashed_ngram_scores(settings: dict, seeds: list[Document], texts: list[str], token_counts: list[int]) -> Scores:
    """Train on the labelled seeds, then score `texts`; about 2·n FLOPs per token (n hashed n-gram lookups)."""
    labels = seed_labels(settings, seeds)
    seed_texts = [document.text for document in seeds]
    ngram_max, features, seed = settings["ngram_max"], settings["features"], settings["seed"]

    def train_and_score(train_texts: list[str], train_labels: np.ndarray, scored: list[str]) -> np.ndarray:
        model = _hashed_pipeline(ngram_max, features, seed).fit(train_texts, train_labels)
        return model.predict_proba(scored)[:, 1] if scored else np.zeros(0)

    return Scores(
        values=train_and_score(seed_texts, labels, texts),
        scanned_tokens=int(sum(token_counts)),
        flops_per_token=settings.get("flops_per_token") or 2.0 * ngram_max,
        description={"classifier": f"hashed 1..{ngram_max}-gram logistic regression, {features} features",
                     "seed_documents": len(seeds), "seed_positives": int(labels.sum()),
                     "held_out_auc": held_out_auc(seed_texts, labels, train_and_score, seed)})


def fasttext_scores(settings: dict, seeds: list[Document], texts: list[str], token_counts: list[int]) -> Scores:
    """Score `texts` with a fastText model: `model_file`'s probability of `label`, or a model trained on the
    labelled seeds (probability of a positive label). Cost: about 2·dim FLOPs per word and n-gram read."""
    import fasttext

    if settings.get("model_file"):
        model = fasttext.load_model(settings["model_file"])
        label = settings["label"]
        if label not in model.get_labels():
            raise ValueError(f"classifier.label: {label!r} is not a label of {settings['model_file']}; it has "
                             f"{model.get_labels()}")
        values = _fasttext_probability(model, texts, label)
        description = {"classifier": f"fastText {settings['model_file']}", "score": f"p({label})"}
    else:
        labels = seed_labels(settings, seeds)
        seed_texts = [document.text for document in seeds]

        def train_and_score(train_texts: list[str], train_labels: np.ndarray, scored: list[str]) -> np.ndarray:
            return _fasttext_probability(_train_fasttext(settings, train_texts, train_labels), scored, POSITIVE)

        model = _train_fasttext(settings, seed_texts, labels)
        values = _fasttext_probability(model, texts, POSITIVE)
        description = {"classifier": f"fastText trained on seeds, dim {settings['dim']}, word n-grams "
                                     f"1..{settings['ngram_max']}", "seed_documents": len(seeds),
                       "seed_positives": int(labels.sum()),
                       "held_out_auc": held_out_auc(seed_texts, labels, train_and_score, settings["seed"])}
    ngrams = model.f.getArgs().wordNgrams
    return Scores(values=values, scanned_tokens=int(sum(token_counts)),
                  flops_per_token=settings.get("flops_per_token") or 2.0 * model.get_dimension() * ngrams,
                  description=description)


POSITIVE = "__label__positive"


def _train_fasttext(settings: dict, texts: list[str], labels: np.ndarray):
    """A supervised fastText model on `texts` labelled positive / negative, single-threaded so it is
    reproducible for a seed."""
    import tempfile

    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
        for text, label in zip(texts, labels, strict=True):
            handle.write(f"{POSITIVE if label else '__label__negative'} {_one_line(text)}\n")
        handle.flush()
        return fasttext.train_supervised(input=handle.name, dim=settings["dim"], epoch=settings["epochs"],
                                         wordNgrams=settings["ngram_max"], lr=settings["lr"],
                                         seed=settings["seed"], thread=1, verbose=0)


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


def transformers_scores(settings: dict, texts: list[str]) -> Scores:
    """Score `texts` with a sequence-classification model, batched, longest first to limit padding.

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
    order = np.argsort([-len(text) for text in texts], kind="stable")
    values = np.zeros(len(texts))
    scanned = 0
    batch_size = settings["batch_size"]
    for start in tqdm(range(0, len(texts), batch_size), desc="classify", unit="batch", mininterval=5):
        batch = order[start:start + batch_size]
        encoded = tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, truncation=True,
                            max_length=settings["max_length"]).to(device)
        scanned += int(encoded["attention_mask"].sum())
        with torch.no_grad():
            logits = model(**encoded).logits.float()
        values[batch] = (logits[:, 0] if column is None else logits.softmax(-1)[:, column]).cpu().numpy()
    return Scores(values=values, scanned_tokens=scanned, flops_per_token=2.0 * parameters,
                  description={"classifier": settings["model"], "classifier_parameters": parameters,
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
