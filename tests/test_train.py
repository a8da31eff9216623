"""Real DeepSpeed training on CPU: two data-parallel ranks (gloo), ZeRO stages, Hugging Face export."""

import json
from pathlib import Path

import pytest

from annealscope.io import write_jsonl
from annealscope.launch import deepspeed_command, run_training
from annealscope.spec import TrainSpec
from annealscope.tokens import TokenArray, tokenize_documents

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_base) -> dict:
    """A tiny base model and a token array of real text."""
    directory = tmp_path_factory.mktemp("tiny")
    from annealscope.corpora import read_corpus

    write_jsonl(directory / "docs.jsonl", (document.as_record() for document in read_corpus("pydoc:topics")))
    tokenize_documents(directory / "docs.jsonl", tiny_base, directory / "tokens.bin", directory / "tokens.json")
    return {"dir": directory, "init": str(tiny_base), "tokens": str(directory / "tokens.bin")}


def spec_for(tiny: dict, name: str, **overrides) -> TrainSpec:
    out = Path(tiny["dir"]) / name
    settings = dict(source_budget_tokens=8192, replay_fraction=0.25, seed=0, seq_len=32, global_batch=8, lr=3e-3,
                    warmup_steps=2, schedule="linear_decay", weight_decay=0.1, gradient_clipping=1.0, zero_stage=1,
                    dtype="bf16", ranks=1, threads=1)
    settings.update(overrides)
    return TrainSpec(init_model=tiny["init"], out_dir=str(out / "model"), log_path=str(out / "log.jsonl"),
                     summary_path=str(out / "summary.json"), source_tokens=tiny["tokens"],
                     replay_tokens=tiny["tokens"], **settings)


def check_run(spec: TrainSpec, world_size: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    summary = json.loads(Path(spec.summary_path).read_text())
    assert summary["world_size"] == world_size
    assert summary["source_tokens"] == 8192
    log = [json.loads(line) for line in Path(spec.log_path).read_text().splitlines()]
    assert len(log) == summary["steps"]
    assert log[-1]["loss"] < log[0]["loss"]
    model = AutoModelForCausalLM.from_pretrained(spec.out_dir)
    assert AutoTokenizer.from_pretrained(spec.out_dir).eos_token == "<|endoftext|>"
    assert not any(path.name.endswith(".deepspeed") for path in Path(spec.out_dir).parent.iterdir())
    return {"summary": summary, "model": model}


def test_two_data_parallel_ranks_train_and_export(tiny):
    spec = spec_for(tiny, "two_ranks", ranks=2, zero_stage=2)
    run_training(spec)
    check_run(spec, world_size=2)


def test_zero3_weights_are_gathered_for_the_export(tiny):
    import torch

    spec = spec_for(tiny, "zero3", zero_stage=3, dtype="fp32")
    run_training(spec)
    exported = check_run(spec, world_size=1)["model"]
    from transformers import AutoModelForCausalLM

    initial = AutoModelForCausalLM.from_pretrained(tiny["init"])
    weight = "model.layers.0.mlp.down_proj.weight"
    trained = dict(exported.named_parameters())[weight]
    assert trained.shape == dict(initial.named_parameters())[weight].shape
    assert not torch.equal(trained, dict(initial.named_parameters())[weight])


def test_a_failed_job_names_its_outputs_and_leaves_none(tiny):
    spec = spec_for(tiny, "broken", seq_len=4096)
    with pytest.raises(RuntimeError, match="training job"):
        run_training(spec)
    assert not Path(spec.out_dir).exists() and not Path(spec.summary_path).exists()


def test_token_array_sidecar_is_exact(tiny):
    array = TokenArray.open(tiny["tokens"])
    assert array.tokens.size == array.meta["tokens"]
    assert array.tokens.dtype.name == "uint16"


def test_deepspeed_command_line():
    assert deepspeed_command("spec.json", 2, 29501) == [
        "deepspeed", "--num_gpus", "2", "--master_port", "29501", "--module", "annealscope.train", "--spec",
        "spec.json"]
