import contextlib
import importlib.util
import os
import resource
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_benchmark(name: str):
    """The script benchmarks/<name>.py as a module, registered in sys.modules (dataclasses look it up there)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def few_open_files(allowed: int):
    """Inside the block this process may open about `allowed` files beyond those open now, as a cluster's limit of
    open files would allow a job: a new descriptor takes the lowest free number, which must stay under the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + allowed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


TINY = dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2,
            max_position_embeddings=128, init_seed=0)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A tokenizer trained on pydoc topics and an untrained tiny Llama, saved together."""
    from annealscope.base.build import initialise_base

    directory = tmp_path_factory.mktemp("tiny_base") / "init"
    initialise_base(["pydoc:topics"], TINY, directory)
    return directory


def sequence_classifier(tiny_base, directory: Path) -> Path:
    """An untrained two-label Llama sequence classifier on the tiny base's tokenizer, saved to `directory`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_base))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_labels=2, id2label={0: "low", 1: "high"},
                         label2id={"low": 0, "high": 1}, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
