"""The disk plan against real files: bytes a parameter of DeepSpeed checkpoints and exports, measured.

`snakemake -n` and `annealscope plan` charge a DeepSpeed checkpoint of an anneal 12 bytes a parameter under
ZeRO-3 and 14 (bf16) or 16 (fp32) under ZeRO-1 and 2, and an export 4 (`core/storage.py`). This builds a
Llama from a config (tokenizer trained on local text; about 3.5M parameters with the defaults, so the files'
headers weigh little), runs one short anneal per ZeRO stage and precision through
`annealscope.anneal.launch.run_training` (the DeepSpeed launch every anneal job makes) keeping its
checkpoints, and prints the measured bytes a parameter of its final checkpoint and its export, and their ratio
to the plan's. bf16 runs where the CPU only emulates it too: it is slower there, and its files are the same.

Run: python benchmarks/checkpoint_bytes.py [--hidden 256] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from annealscope.anneal.launch import run_training
from annealscope.anneal.spec import TrainSpec
from annealscope.base.build import initialise_base
from annealscope.core.corpora import read_corpus
from annealscope.core.io import write_jsonl
from annealscope.core.storage import WEIGHT_BYTES, checkpoint_bytes
from annealscope.curate.tokenize import tokenize_documents

RUNS = ((1, "bf16", 1), (1, "fp32", 1), (2, "bf16", 2), (3, "bf16", 2), (3, "fp32", 2))  # stage, dtype, ranks


def files_size(files) -> int:
    return sum(path.stat().st_size for path in files if path.is_file())


def measure(work: Path, init: Path, tokens: Path, zero_stage: int, dtype: str, ranks: int) -> dict:
    out = work / f"zero{zero_stage}_{dtype}"
    spec = TrainSpec(init_model=str(init), out_dir=str(out / "model"), log_path=str(out / "log.jsonl"),
                     summary_path=str(out / "summary.json"), source_tokens=str(tokens), replay_tokens=None,
                     source_budget_tokens=2048, replay_fraction=0.0, seed=0, seq_len=32, global_batch=8, lr=1e-3,
                     warmup_steps=1, schedule="linear_decay", weight_decay=0.1, gradient_clipping=1.0,
                     zero_stage=zero_stage, dtype=dtype, ranks=ranks, threads=1, keep_checkpoints=True)
    run_training(spec)
    parameters = json.loads((out / "summary.json").read_text())["parameters"]
    return {"parameters": parameters,
            "checkpoint": files_size((out / "checkpoints" / "final").rglob("*")) / parameters,
            "export": files_size((out / "model").glob("*.safetensors")) / parameters}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        init = work / "init"
        shape = dict(vocab_size=512, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                     num_layers=args.layers, num_heads=4, max_position_embeddings=128, init_seed=0)
        initialise_base(["pydoc:topics"], shape, init)
        write_jsonl(work / "docs.jsonl", (document.as_record() for document in read_corpus("pydoc:topics")))
        tokenize_documents(work / "docs.jsonl", init, work / "tokens.bin")
        rows = [(stage, dtype, measure(work, init, work / "tokens.bin", stage, dtype, ranks))
                for stage, dtype, ranks in RUNS]
    print(f"{'run':<12}{'parameters':>12}{'checkpoint B/param':>20}{'planned':>9}{'ratio':>8}"
          f"{'export B/param':>16}{'planned':>9}{'ratio':>8}")
    for stage, dtype, row in rows:
        planned = checkpoint_bytes(stage, dtype)
        print(f"{f'ZeRO-{stage} {dtype}':<12}{row['parameters']:>12,}{row['checkpoint']:>20.3f}{planned:>9}"
              f"{row['checkpoint'] / planned:>8.3f}{row['export']:>16.3f}{WEIGHT_BYTES['fp32']:>9}"
              f"{row['export'] / WEIGHT_BYTES['fp32']:>8.3f}")
    worst = max(abs(row["checkpoint"] / checkpoint_bytes(stage, dtype) - 1) for stage, dtype, row in rows)
    print(f"{len(rows)} anneals: checkpoints within {worst:.2%} of the disk plan's bytes a parameter")


if __name__ == "__main__":
    main()
