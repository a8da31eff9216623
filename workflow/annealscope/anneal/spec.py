"""The training job specification passed from the rule's front command to every DeepSpeed rank."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from annealscope.core.config import schema_default
from annealscope.core.io import read_json, write_json


@dataclass(frozen=True)
class TrainSpec:
    """What one training job runs: the config's `anneal` block (defaults from the schema), the cell, and paths."""

    init_model: str
    out_dir: str
    log_path: str | None
    summary_path: str
    source_tokens: str
    replay_tokens: str | None
    source_budget_tokens: int
    replay_fraction: float
    seed: int
    seq_len: int
    global_batch: int
    lr: float
    warmup_steps: int
    schedule: str
    weight_decay: float
    gradient_clipping: float
    dtype: str
    max_epochs: float | None = None  # sources.<name>.max_epochs
    cooldown_fraction: float = schema_default("anneal", "cooldown_fraction")
    micro_batch: int | None = schema_default("anneal", "micro_batch")
    activation_checkpointing: bool = schema_default("anneal", "activation_checkpointing")
    offload_optimizer: bool = schema_default("anneal", "offload_optimizer")
    attention: str = schema_default("anneal", "attention")
    liger_kernels: bool = schema_default("anneal", "liger_kernels")
    compile: bool = schema_default("anneal", "compile")
    communication: dict | None = None  # anneal.communication; None: the schema's defaults
    monitor: dict | None = None  # anneal.monitor; None: no tracker
    deepspeed: dict | None = schema_default("anneal", "deepspeed")
    checkpoint_every: int = schema_default("anneal", "checkpoint_every")
    keep_checkpoints: bool = schema_default("anneal", "keep_checkpoints")
    export_dtype: str = schema_default("anneal", "export_dtype")
    max_loss_ratio: float = schema_default("anneal", "max_loss_ratio")
    peak_flops: float | None = schema_default("anneal", "peak_flops")
    nodes: int = schema_default("anneal", "nodes")
    ranks: int = schema_default("anneal", "ranks")
    threads: int = schema_default("anneal", "threads")
    zero_stage: int = schema_default("anneal", "zero_stage")
    branch_budgets: list[int] | None = None  # a stable phase: checkpoint at these budgets' branch points
    branch_from: str | None = None  # a cooldown: the stable phase's checkpoint folder to start from
    marker_budgets: list[int] | None = None  # a stable phase: every budget of the grid, marked branch or not

    def outputs(self) -> list[str]:
        """The paths the job must leave behind."""
        return [path for path in (self.out_dir, self.log_path, self.summary_path) if path]

    def save(self, path: str | Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> TrainSpec:
        data = read_json(path)
        known = {field.name for field in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown training spec keys {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_settings(cls, settings: dict, **paths: str | None) -> TrainSpec:
        """Build a spec from a rule's settings dict (the config's `anneal` block plus the cell) and paths."""
        known = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in settings.items() if key in known}, **paths)
