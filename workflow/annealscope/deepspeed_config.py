"""The DeepSpeed configuration derived from a training spec."""

from __future__ import annotations

from annealscope.spec import TrainSpec


def deepspeed_config(spec: TrainSpec, world_size: int) -> dict:
    """ZeRO stage, precision, batch and AdamW settings for `deepspeed.initialize`."""
    if spec.global_batch % world_size:
        raise ValueError(f"anneal.global_batch ({spec.global_batch}) must be divisible by the number of "
                         f"ranks ({world_size})")
    return {
        "train_batch_size": spec.global_batch,
        "train_micro_batch_size_per_gpu": spec.global_batch // world_size,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": spec.gradient_clipping,
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": spec.lr, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": spec.weight_decay,
                       "torch_adam": True},
        },
        "zero_optimization": {"stage": spec.zero_stage},
        "bf16": {"enabled": spec.dtype == "bf16"},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
