"""Compute accounting: training FLOPs and acquisition FLOPs by curation kind (docs/design.md)."""

from __future__ import annotations


def training_flops(parameters: int, tokens: int) -> float:
    """What a cell is charged for training: 6·N·D (forward and backward through N parameters per token)."""
    return 6.0 * parameters * tokens


def model_flops_per_token(parameters: int, layers: int, hidden: int, seq_len: int) -> float:
    """Training FLOPs per token for MFU: 6·N plus attention's 12·L·d·seq (PaLM, Chowdhery et al. 2022)."""
    return 6.0 * parameters + 12.0 * layers * hidden * seq_len


def decoder_parameters(vocab_size: int, hidden: int, layers: int, intermediate: int, kv_hidden: int | None = None,
                       tied_embeddings: bool = True) -> int:
    """A Llama-style decoder's parameter count: per layer the q and o projections (2·d²), k and v (2·d·kv),
    a gated MLP (3·d·inner) and two RMSNorms (2·d); the final norm; the embeddings, and an untied output head."""
    kv_hidden = hidden if kv_hidden is None else kv_hidden
    per_layer = 2 * hidden * hidden + 2 * hidden * kv_hidden + 3 * hidden * intermediate + 2 * hidden
    embeddings = vocab_size * hidden * (1 if tied_embeddings else 2)
    return embeddings + layers * per_layer + hidden


def generation_flops(generator_parameters: int, prompt_tokens: int, generated_tokens: int) -> float:
    """About 2·N_gen FLOPs per prompt token and per generated token."""
    return 2.0 * generator_parameters * (prompt_tokens + generated_tokens)


def classifier_flops(flops_per_token: float, scanned_tokens: int) -> float:
    """A filter's cost: the classifier's FLOPs per scanned token times the tokens scanned."""
    return flops_per_token * scanned_tokens


def gpu_hours(flops: float, plan: dict) -> float:
    """GPU-hours for `flops` at `plan.mfu` of `plan.gpu_peak_flops` (config `plan`)."""
    return flops / (plan["gpu_peak_flops"] * plan["mfu"] * 3600)
