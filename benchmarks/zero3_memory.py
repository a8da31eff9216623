"""Memory per rank under ZeRO-3 (the model built partitioned) against ZeRO-1, 2 ranks on CPU.

It builds a Llama of about 110M parameters from a config (tokenizer trained on local text), then runs the same
short anneal twice through `annealscope.anneal.launch.run_training` (the DeepSpeed launch every anneal job
makes): 2 data-parallel ranks, fp32, once with ZeRO-3 and once with ZeRO-1. Each run's summary holds the most
parameters any rank held once the model was built (`parameters_per_rank`) and the largest peak resident
memory of any rank through loading and training, before the export (`peak_rss_mb`). It prints both for each
stage and their ratios. Goal (issue 19): peak memory ratio <= 0.7. A third run repeats ZeRO-3 with glibc's
mmap threshold fixed at 1 MiB (`MALLOC_MMAP_THRESHOLD_`), so that every large block freed goes back to the
system at once: the difference is host memory the allocator kept, which a GPU run does not hold on the host.

Run: python benchmarks/zero3_memory.py [--layers 8] [--hidden 1024] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from unittest.mock import patch

from annealscope.anneal.launch import run_training
from annealscope.anneal.spec import TrainSpec
from annealscope.base.build import initialise_base
from annealscope.core.corpora import read_corpus
from annealscope.core.io import write_jsonl
from annealscope.curate.tokenize import tokenize_documents


def anneal(work: Path, init: Path, tokens: Path, zero_stage: int, steps: int, name: str) -> dict:
    out = work / name.lower().replace(" ", "_")
    seq_len, global_batch = 64, 4
    spec = TrainSpec(init_model=str(init), out_dir=str(out / "model"), log_path=str(out / "log.jsonl"),
                     summary_path=str(out / "summary.json"), source_tokens=str(tokens), replay_tokens=None,
                     source_budget_tokens=steps * seq_len * global_batch, replay_fraction=0.0, seed=0,
                     seq_len=seq_len, global_batch=global_batch, lr=1e-4, warmup_steps=1, schedule="linear_decay",
                     weight_decay=0.1, gradient_clipping=1.0, zero_stage=zero_stage, dtype="fp32", ranks=2,
                     threads=max(1, (os.cpu_count() or 2) // 2))
    run_training(spec)
    return json.loads(Path(spec.summary_path).read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zero3_memory.") as directory:
        work = Path(directory)
        shape = dict(vocab_size=8192, hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                     num_layers=args.layers, num_heads=args.hidden // 64, max_position_embeddings=256, init_seed=0)
        parameters = initialise_base(["pydoc:topics"], shape, work / "init")
        write_jsonl(work / "docs.jsonl", (document.as_record() for document in read_corpus("pydoc:topics")))
        tokenize_documents(work / "docs.jsonl", work / "init", work / "tokens.bin")
        print(f"model: {parameters / 1e6:.0f}M parameters, {parameters * 4 / 2**20:,.0f} MB in fp32; 2 ranks, "
              f"{args.steps} steps", flush=True)
        runs = {name: anneal(work, work / "init", work / "tokens.bin", stage, args.steps, name)
                for name, stage in (("ZeRO-3", 3), ("ZeRO-1", 1))}
        with patch.dict(os.environ, {"MALLOC_MMAP_THRESHOLD_": str(2**20)}):  # inherited by the ranks
            trimmed = anneal(work, work / "init", work / "tokens.bin", 3, args.steps, "ZeRO-3 trimmed")
    for name, run in runs.items():
        print(f"{name}: {run['parameters_per_rank'] / 1e6:.1f}M parameters on the busiest rank once built, "
              f"peak resident memory of the largest rank {run['peak_rss_mb']:,.0f} MB")
    held, peaks = (runs["ZeRO-3"][key] / runs["ZeRO-1"][key] for key in ("parameters_per_rank", "peak_rss_mb"))
    print(f"ZeRO-3 / ZeRO-1: parameters held {held:.2f}, peak memory ratio {peaks:.2f} (goal <= 0.7)")
    print(f"ZeRO-3 with MALLOC_MMAP_THRESHOLD_=1MiB: peak {trimmed['peak_rss_mb']:,.0f} MB, "
          f"{trimmed['peak_rss_mb'] / runs['ZeRO-1']['peak_rss_mb']:.2f} of ZeRO-1's")


if __name__ == "__main__":
    main()
