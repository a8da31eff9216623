"""Compute accounting: training FLOPs and acquisition FLOPs by curation kind (docs/design.md)."""

from __future__ import annotations


def training_flops(parameters: int, tokens: int, layers: int = 0, seq_len: int = 0, hidden: int = 0) -> float:
    """6·N·D, plus the attention term 6·L·seq·d per token (Chinchilla's 2·2·... forward+backward) when given."""
    attention = 6 * layers * seq_len * hidden * tokens
    return 6.0 * parameters * tokens + attention


def generation_flops(generator_parameters: int, prompt_tokens: int, generated_tokens: int) -> float:
    """About 2·N_gen FLOPs per prompt token and per generated token."""
    return 2.0 * generator_parameters * (prompt_tokens + generated_tokens)


def classifier_flops(flops_per_token: float, scanned_tokens: int) -> float:
    """A filter's cost: the classifier's FLOPs per scanned token times the tokens scanned."""
    return flops_per_token * scanned_tokens


def gpu_hours(flops: float, plan: dict) -> float:
    """GPU-hours for `flops` at `plan.mfu` of `plan.gpu_peak_flops` (config `plan`)."""
    return flops / (plan["gpu_peak_flops"] * plan["mfu"] * 3600)
