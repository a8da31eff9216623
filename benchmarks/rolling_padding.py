"""Held-out bits per byte per checkpoint: lm-eval's rolling batches (document order) against annealscope's
(`evaluate/rolling.py`: all windows batched longest first), on the demo's model size and held-out docstrings.

Prints, for each: the seconds of `loglikelihood_rolling` (best of --repeats), the tokens its forward passes ran
(padding included) and their ratio to the windows' own tokens; then the speed-up and the largest relative
difference between the two in any document's log-likelihood.
Run: python benchmarks/rolling_padding.py [--heldout "docstrings:sympy?max_documents=100"] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_rolling(model, method, requests, repeats: int) -> tuple[float, list[float], int]:
    """(best seconds, per-document log-likelihoods, tokens run through the model per call) of `method`."""
    ran = 0
    model_call = model._model_call

    def counting_call(inputs, *args, **kwargs):
        nonlocal ran
        ran += inputs.numel()
        return model_call(inputs, *args, **kwargs)

    model._model_call = counting_call
    seconds = []
    try:
        for _ in range(repeats):
            ran = 0
            started = time.perf_counter()
            logliks = method(model, requests, disable_tqdm=True)
            seconds.append(time.perf_counter() - started)
    finally:
        del model._model_call
    return min(seconds), logliks, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", default="docstrings:sympy?max_documents=100", help="corpus reference")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (the demo's eval.threads)")
    parser.add_argument("--batch-size", type=int, default=32, help="eval.batch_size")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import numpy as np
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from annealscope.base.build import initialise_base
    from annealscope.core.io import read_jsonl
    from annealscope.evaluate.rolling import LengthSortedHFLM
    from annealscope.evaluate.tasks import prepare_tasks
    from annealscope.validation import load_config

    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="rolling_padding."))
    demo = load_config(ROOT / "config" / "config.yaml", ROOT / "resources")["base_model"]["build"]
    initialise_base(["pydoc:topics"], demo, work / "model")  # the demo's model shape, untrained
    ((task, documents),) = prepare_tasks([], "resources", work / "tasks", heldout={"text": [args.heldout]}).items()
    texts = [item["text"] for item in read_jsonl(work / "tasks" / f"{task}.jsonl")]
    requests = [Instance(request_type="loglikelihood_rolling", doc={"text": text}, arguments=(text,), idx=0)
                for text in texts]
    model = LengthSortedHFLM(pretrained=str(work / "model"), dtype=torch.float32, batch_size=args.batch_size,
                             device="cpu")
    own_tokens = sum(len(model.tok_encode(text)) for text in texts)  # one input position per token scored
    results = {}
    for name, method in (("lm-eval, document order", HFLM.loglikelihood_rolling),
                         ("annealscope, longest first", LengthSortedHFLM.loglikelihood_rolling)):
        seconds, logliks, ran = timed_rolling(model, method, requests, args.repeats)
        results[name] = seconds, np.array(logliks)
        print(f"{name:<27}: {seconds:6.2f} s, {ran:,} tokens through the model ({ran / own_tokens:.2f}x the "
              f"windows' {own_tokens:,})")
    (baseline, base_logliks), (sorted_seconds, sorted_logliks) = results.values()
    difference = np.max(np.abs(sorted_logliks - base_logliks) / np.abs(base_logliks))
    print(f"{documents} documents of {args.heldout}, batch {args.batch_size}, {args.threads} "
          f"thread(s): ratio lm-eval / annealscope = {baseline / sorted_seconds:.2f}x, largest relative "
          f"difference in a document's log-likelihood {difference:.1e}")


if __name__ == "__main__":
    main()
