"""Filtered sources: a classifier scores a pool of documents, and those at or above a threshold are kept
(the DCLM / FineWeb-Edu pattern). The cost is the classifier's FLOPs per token times the tokens scanned."""

from __future__ import annotations

import time

from annealscope.core.corpora import read_corpus
from annealscope.core.flops import classifier_flops
from annealscope.curate.classifiers import fasttext_scores, hashed_ngram_scores, transformers_scores

SEEDED = {"hashed_ngram": hashed_ngram_scores, "fasttext": fasttext_scores}  # backends that read labelled seeds


def classify_pool(settings: dict, pool: list[dict], cache_dir=None) -> tuple[list[dict], dict]:
    """Score every pool document (each with its `tokens`), keep those scoring at least the threshold."""
    classifier = settings["classifier"]
    texts = [document["text"] for document in pool]
    started = time.perf_counter()
    if classifier["backend"] in SEEDED:
        seeds = list(read_corpus(classifier["seeds"], cache_dir)) if "seeds" in classifier else []
        scores = SEEDED[classifier["backend"]](classifier, seeds, texts, [document["tokens"] for document in pool])
        positive = set(classifier.get("positive_labels", []))
        seed_labels = {document.label for document in seeds}
    else:
        scores = transformers_scores(classifier, texts)
        positive, seed_labels = set(), set()
    seconds = time.perf_counter() - started
    kept = [{**document, "score": float(score)} for document, score in zip(pool, scores.values, strict=True)
            if score >= settings["threshold"]]
    kept_tokens = sum(document["tokens"] for document in kept)
    pool_tokens = sum(document["tokens"] for document in pool)
    labelled = [document.get("label") in positive for document in kept if document.get("label") in seed_labels]
    return kept, {
        **scores.description, "threshold": settings["threshold"], "pool_documents": len(pool),
        "scanned_tokens": scores.scanned_tokens, "kept_documents": len(kept),
        "pass_rate": kept_tokens / pool_tokens if pool_tokens else 0.0,
        "kept_labelled_precision": sum(labelled) / len(labelled) if labelled else None,
        "classify_seconds": seconds, "flops_per_token": scores.flops_per_token,
        "acquisition_flops": classifier_flops(scores.flops_per_token, scores.scanned_tokens),
    }
