"""Per-item metrics from lm-eval's logged samples (their means: `evaluate.aggregation`).

Continuous metrics predict better than accuracy (Schaeffer et al.; DataDecide), so every task gets one:
- multiple choice: `acc`, `brier` (multi-class Brier over the choice distribution), `nll` (negative
  log-likelihood of the gold continuation), `nll_token` and `nll_byte` (the same per gold token and per
  UTF-8 byte), `p_gold` (probability mass on the gold choice);
- generative: the task's own per-item scores (e.g. `exact_match`) plus `nll`, `nll_token` and `nll_byte`
  of the gold answer given the prompt;
- held-out text (``loglikelihood_rolling``): `bpb`, bits per UTF-8 byte.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import softmax


def choice_scores(logliks: list[float], gold: int, gold_tokens: int, gold_bytes: int) -> dict[str, float]:
    """Scores of one multiple-choice item from the log-likelihood of every choice's continuation."""
    values = np.asarray(logliks, dtype=float)
    probabilities = softmax(values)
    truth = np.zeros_like(probabilities)
    truth[gold] = 1.0
    return {"acc": float(np.argmax(values) == gold), "brier": float(np.sum((probabilities - truth) ** 2)),
            **gold_scores(float(values[gold]), gold_tokens, gold_bytes), "p_gold": float(probabilities[gold])}


def gold_scores(loglik: float, tokens: int, bytes_: int) -> dict[str, float]:
    """Negative log-likelihood of a gold continuation: in total, per token and per byte."""
    return {"nll": -loglik, "nll_token": -loglik / max(tokens, 1), "nll_byte": -loglik / max(bytes_, 1)}


def bits_per_byte(loglik: float, bytes_: int) -> float:
    return -loglik / (math.log(2) * max(bytes_, 1))


def unscored(kind: str) -> ValueError:
    return ValueError(f"output type {kind!r} is not scored; use multiple_choice, generate_until or "
                      "loglikelihood_rolling tasks")


def rolling_item(sample: dict) -> dict:
    """The per-item record of an lm-eval `loglikelihood_rolling` sample: bits per byte of its text."""
    return {"doc_id": sample["doc_id"], "scores": {"bpb": bits_per_byte(
        float(sample["filtered_resps"][0]), len(str(sample["target"]).encode()))}}
