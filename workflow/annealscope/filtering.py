"""Filtered sources: a hashed n-gram logistic-regression classifier trained on labelled seeds scores a
pool of mixed documents, and those above a threshold are kept (the DCLM / FineWeb-Edu pattern)."""

from __future__ import annotations

import numpy as np

from annealscope.corpora import read_corpora, read_corpus
from annealscope.flops import classifier_flops


def train_classifier(texts: list[str], labels: np.ndarray, ngram_max: int, features: int, seed: int):
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = HashingVectorizer(ngram_range=(1, ngram_max), n_features=features, alternate_sign=False,
                                   norm="l2")
    classifier = LogisticRegression(class_weight="balanced", max_iter=2000, C=4.0, random_state=seed)
    return make_pipeline(vectorizer, classifier).fit(texts, labels)


def held_out_auc(texts: list[str], labels: np.ndarray, ngram_max: int, features: int, seed: int) -> float:
    """ROC AUC on a stratified 20% of the seeds, from a classifier trained on the other 80%."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    train_x, test_x, train_y, test_y = train_test_split(texts, labels, test_size=0.2, stratify=labels,
                                                        random_state=seed)
    model = train_classifier(train_x, train_y, ngram_max, features, seed)
    return float(roc_auc_score(test_y, model.predict_proba(test_x)[:, 1]))


def filter_documents(settings: dict, name: str, count_tokens) -> tuple[list[dict], dict]:
    """Train on the seeds, score the pool, keep documents scoring at least the threshold."""
    seeds = list(read_corpus(settings["seeds"]))
    positive = set(settings["positive_labels"])
    labels = np.asarray([document.label in positive for document in seeds], dtype=int)
    if labels.sum() < 5 or (1 - labels).sum() < 5:
        raise ValueError(f"source {name}: sources.{name}.seeds needs at least 5 positive and 5 negative "
                         f"examples for labels {sorted(positive)}; found {labels.sum()} and {(1 - labels).sum()}")
    texts = [document.text for document in seeds]
    ngram_max, features, seed = settings["ngram_max"], settings["features"], settings["seed"]
    auc = held_out_auc(texts, labels, ngram_max, features, seed)
    model = train_classifier(texts, labels, ngram_max, features, seed)

    pool = list(read_corpora(settings["pool"]))
    scores = model.predict_proba([document.text for document in pool])[:, 1]
    pool_tokens = count_tokens([document.text for document in pool])
    keep = scores >= settings["threshold"]
    documents = [{"id": document.id, "text": document.text, "score": float(score)}
                 for document, score, kept in zip(pool, scores, keep, strict=True) if kept]
    if not documents:
        raise ValueError(f"source {name}: no pool document scored at least sources.{name}.threshold "
                         f"({settings['threshold']}); lower the threshold or widen the pool")
    scanned = int(sum(pool_tokens))
    kept_tokens = int(sum(tokens for tokens, kept in zip(pool_tokens, keep, strict=True) if kept))
    seed_labels = {document.label for document in seeds}
    labelled = [(document.label in positive, kept) for document, kept in zip(pool, keep, strict=True)
                if document.label in seed_labels]
    kept_labels = [truth for truth, kept in labelled if kept]
    flops_per_token = settings.get("flops_per_token") or 2.0 * ngram_max
    return documents, {
        "classifier": f"hashed 1..{ngram_max}-gram logistic regression, {features} features",
        "seed_documents": len(seeds), "seed_positives": int(labels.sum()), "held_out_auc": auc,
        "pool_documents": len(pool), "scanned_tokens": scanned, "kept_tokens_before_dedup": kept_tokens,
        "pass_rate": kept_tokens / scanned if scanned else 0.0, "threshold": settings["threshold"],
        "kept_labelled_precision": float(np.mean(kept_labels)) if kept_labels else None,
        "flops_per_token": flops_per_token, "acquisition_flops": classifier_flops(flops_per_token, scanned),
    }
