"""Held-out text scored with less padding: lm-eval's `HFLM` with rolling windows batched by length.

lm-eval 0.4.13 batches the windows of `loglikelihood_rolling` in document order, each batch padded to its
longest window, so the short windows batched beside a long document's pay for its length. Handing every
window to `_loglikelihood_tokens` at once lets lm-eval's own collator batch them longest first, each batch
padded to windows of about its length. Each window is scored by the same forward pass; only the padding
beside it changes, and with it the last bits of the floating-point sums. `python benchmarks/rolling_padding.py`
measures both on the demo's held-out docstrings.
"""

from __future__ import annotations

from itertools import islice

from lm_eval import utils
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM


class LengthSortedHFLM(HFLM):
    """`HFLM` whose rolling log-likelihoods batch the windows of all documents together, longest first."""

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        if self.world_size > 1:  # lm-eval pads every rank's windows to one count
            return super().loglikelihood_rolling(requests, disable_tqdm)
        windows, counts = [], []
        for request in requests:
            document = [(None, *utils.make_disjoint_window(window)) for window in utils.get_rolling_token_windows(
                token_list=self.tok_encode(request.args[0]), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1)]
            windows += document
            counts.append(len(document))
        scored = iter(self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm))
        totals = []
        for request, count in zip(requests, counts, strict=True):
            total = sum(loglikelihood for loglikelihood, _ in islice(scored, count))
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
            totals.append(total)
        return totals
