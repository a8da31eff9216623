"""The DeepSpeed configuration derived from a training spec, with the user's raw JSON merged on top."""

from __future__ import annotations

import torch

from annealscope.anneal.monitor import monitor_config
from annealscope.anneal.spec import TrainSpec
from annealscope.core.config import schema_defaults

ZERO_KEYS = {"prefetch_bucket_size": "stage3_prefetch_bucket_size",  # anneal.communication -> zero_optimization
             "max_live_parameters": "stage3_max_live_parameters",
             "persistence_threshold": "stage3_param_persistence_threshold"}
ZERO3_ONLY = {"prefetch_bucket_size", "max_live_parameters", "persistence_threshold"}


def gradient_accumulation(spec: TrainSpec, world_size: int) -> int:
    """Micro-batches per optimizer step on each rank, from the global batch, the micro batch and the ranks."""
    if spec.global_batch % world_size:
        raise ValueError(f"anneal.global_batch ({spec.global_batch} sequences) must be divisible by the number "
                         f"of ranks ({world_size})")
    per_rank = spec.global_batch // world_size
    micro = spec.micro_batch or per_rank
    if per_rank % micro:
        raise ValueError(f"anneal.micro_batch ({micro}) must divide the {per_rank} sequences each of the "
                         f"{world_size} ranks trains per step (anneal.global_batch / ranks)")
    return per_rank // micro


def merge(base: dict, override: dict) -> dict:
    """`override` merged into `base`, recursively for nested objects."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key),
                                                                                            dict) else value
    return merged


def model_sized(hidden_size: int) -> dict:
    """Bucket sizes from the model's width, as transformers' Trainer fills DeepSpeed's `auto` values: at 7B
    (hidden 4096) a 16.8M-element reduce bucket instead of DeepSpeed's 5e8, which ZeRO-3 allocates up front."""
    return {"reduce_bucket_size": hidden_size * hidden_size, "prefetch_bucket_size": int(0.9 * hidden_size ** 2),
            "persistence_threshold": 10 * hidden_size}


def communication(spec: TrainSpec, hidden_size: int) -> dict:
    """`anneal.communication` as ZeRO settings: the schema's defaults, the spec's values over them; null bucket
    sizes follow the model's width (`model_sized`), other nulls are left to DeepSpeed."""
    settings = model_sized(hidden_size) | {key: value for key, value in (
        schema_defaults("anneal", "communication") | (spec.communication or {})).items() if value is not None}
    return {ZERO_KEYS.get(key, key): value for key, value in settings.items()
            if spec.zero_stage == 3 or key not in ZERO3_ONLY}


def deepspeed_config(spec: TrainSpec, world_size: int, hidden_size: int) -> dict:
    """ZeRO stage and communication (sized by the model's `hidden_size`), precision, batch split, optional CPU
    optimizer offload, and AdamW; `spec.deepspeed` (the config's raw `anneal.deepspeed` object) overrides any
    of it."""
    accumulation = gradient_accumulation(spec, world_size)
    zero: dict = {"stage": spec.zero_stage, **communication(spec, hidden_size)}
    if spec.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    config = {
        "train_batch_size": spec.global_batch,
        "train_micro_batch_size_per_gpu": spec.global_batch // world_size // accumulation,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": spec.gradient_clipping,
        "optimizer": {
            "type": "AdamW",
            # torch's AdamW needs no compiled op; an offloaded optimizer runs DeepSpeed's CPU Adam instead.
            "params": {"lr": spec.lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": spec.weight_decay,
                       "torch_adam": not spec.offload_optimizer},
        },
        "zero_optimization": zero,
        "bf16": {"enabled": spec.dtype == "bf16"},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
        **monitor_config(spec),
    }
    return merge(config, spec.deepspeed or {})
