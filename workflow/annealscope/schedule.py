"""Learning-rate schedules as pure functions of the optimizer step."""

from __future__ import annotations

SCHEDULES = ("linear_decay", "constant")


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int, kind: str) -> float:
    """LR at `step` (0-based): linear warmup to `peak`, then constant or linear decay to zero at the end.

    ``linear_decay`` is the annealing schedule of Llama 3: the rate reaches exactly zero after the
    last step. ``constant`` is the stable phase used to pre-train the demo base model.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; use one of {SCHEDULES}")
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if kind == "constant":
        return peak
    decay_steps = max(total_steps - warmup_steps, 1)
    return peak * max(0.0, 1.0 - (step - warmup_steps + 1) / decay_steps)
