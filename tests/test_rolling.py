"""Held-out text batched by length scores every document as lm-eval does, with less padding."""

from itertools import islice

import pytest
from conftest import load_benchmark

pytestmark = pytest.mark.slow


def test_length_sorted_rolling_scores_match_lm_eval_with_less_padding(tiny_base):
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from annealscope.core.corpora import read_corpora
    from annealscope.evaluate.rolling import LengthSortedHFLM

    model = LengthSortedHFLM(pretrained=str(tiny_base), dtype=torch.float32, batch_size=4, device="cpu")
    text = " ".join(document.text for document in islice(read_corpora(["pydoc:topics"]), 20))
    starts = range(0, 24 * 2000, 2000)
    texts = [text[start:start + size] for start, size in zip(starts, [1000, 40, 60, 80, 40, 60] * 4, strict=True)]
    lengths = [len(model.tok_encode(text)) for text in texts]  # a long document, then five short ones
    assert min(lengths[::6]) > 2 * model.max_length and max(lengths) - min(lengths) > model.max_length
    requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0) for text in texts]

    scored = load_benchmark("rolling_padding").timed_rolling  # (seconds, log-likelihoods, tokens run)
    _, expected, lm_eval_tokens = scored(model, HFLM.loglikelihood_rolling, requests, repeats=1)
    _, actual, sorted_tokens = scored(model, LengthSortedHFLM.loglikelihood_rolling, requests, repeats=1)

    assert actual == pytest.approx(expected, rel=1e-5)
    assert sum(lengths) <= sorted_tokens < 0.75 * lm_eval_tokens
