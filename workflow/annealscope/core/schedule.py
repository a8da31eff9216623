"""Learning-rate schedules as pure functions of the optimizer step."""

from __future__ import annotations

import math

CONSTANT = "constant"  # a stable phase, and the built base's pre-training: no anneal ends at the peak LR
SCHEDULES = ("linear_decay", "cosine", "wsd", CONSTANT)


def learning_rate(step: int, total_steps: int, peak: float, warmup_steps: int, kind: str,
                  cooldown_fraction: float = 0.2) -> float:
    """LR at `step` (0-based): linear warmup to `peak`, then the schedule's shape, reaching exactly zero
    after the last step for every decaying kind.

    - ``linear_decay``: the annealing schedule of Llama 3, linear to zero.
    - ``cosine``: half a cosine from the peak to zero.
    - ``wsd``: warmup-stable-decay; the peak holds until the last `cooldown_fraction` of the steps, which
      cool down as 1 − sqrt(progress) (Hägele et al. 2024).
    - ``constant``: the stable phase, used to pre-train the demo base model.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"unknown schedule {kind!r}; use one of {SCHEDULES}")
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    if kind == CONSTANT:
        return peak
    if kind == "wsd":
        start = cooldown_start(total_steps, cooldown_fraction)
        cooldown = total_steps - start
        return peak if step < start else peak * (1.0 - math.sqrt(min((step - start + 1) / cooldown, 1.0)))
    progress = min((step - warmup_steps + 1) / max(total_steps - warmup_steps, 1), 1.0)
    if kind == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak * max(0.0, 1.0 - progress)


def cooldown_start(total_steps: int, cooldown_fraction: float) -> int:
    """The first cooldown step of a `wsd` run of `total_steps`: its last `cooldown_fraction` (at least one step)."""
    return total_steps - max(round(total_steps * cooldown_fraction), 1)
