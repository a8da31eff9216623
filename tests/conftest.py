import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
