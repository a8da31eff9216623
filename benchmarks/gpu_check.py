"""The GPU check (issue 19): what a lent GPU must show, in one command that fits 8 minutes on one H200.

1. `benchmarks/gpu_mfu.py`: tokens/s and MFU of a 1B-parameter Llama at sequence length 2048, bf16, under
   ZeRO-1 and under ZeRO-3, and again with Liger's kernels where liger-kernel is installed (goal: >= 50% of the
   dense bf16 peak); each run's output, with a profile of one more step, in results/gpu-check-mfu/.
2. `benchmarks/gpu_grid.yaml`: 2 sources x 2 budgets of a Llama of about 100M parameters built from the config,
   bf16 and ZeRO-3, end to end through Snakemake (curation, pre-training, anneals, evaluation, fit, report).
3. One of its checkpoints scored by the `hf` and the `vllm` evaluation backends where vLLM is installed: the
   per-choice log-likelihoods of every multiple-choice item agree within 1e-2 nats.
4. A `transformers` teacher and, where installed, a `vllm` teacher writing 64 prompts: tokens/s.
5. The peak GPU memory of each step (`nvidia-smi`, sampled every 0.2 s).

`--smoke` runs the same steps small on a CPU (no MFU; without vLLM, step 3 compares hf with itself) to check
the script itself.
Run: bash benchmarks/gpu_check.sh [--smoke]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from stage_times import anneal_summaries, stage_times  # beside this script

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "benchmarks" / "gpu_grid.yaml"
SMOKE = {  # the same grid, small enough for a CPU
    "run": "gpu-check-smoke", "cache_dir": "results/gpu-check-smoke/cache",
    "base_model": {"build": {"corpus": ["wikipedia:general"], "vocab_size": 1024, "hidden_size": 64,
                             "intermediate_size": 160, "num_layers": 2, "num_heads": 2, "pretrain_tokens": 20000}},
    "grid": {"budgets": [4096, 8192], "seeds": [0]}, "anneal": {"seq_len": 64, "global_batch": 8, "zero_stage": 3},
    "eval": {"tasks": ["arith_mc", "arith_gen"], "limit": 20, "heldout": {"sympy_docs": ["docstrings:sympy"]},
             "heldout_documents": 10},
    "fit": {"bootstrap": 20}}
PROMPTS = 64
TOLERANCE = 1e-2


class GpuMemory:
    """The most GPU memory in use while the block runs, sampled from nvidia-smi (MiB; None without a GPU)."""

    def __init__(self):
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                output = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                        capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.TimeoutExpired):
                return
            used = [float(line) for line in output.split() if line.strip()]
            if used:
                self.peak = max(self.peak or 0.0, max(used))

    def __enter__(self) -> GpuMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def step(results: list[dict], name: str, action) -> None:
    """Run one step, recording its outcome, wall time and peak GPU memory; a failure is recorded, not fatal."""
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    with GpuMemory() as memory:
        try:
            outcome = action()
        except Exception as error:  # the check reports every step, whatever one of them does
            outcome = f"FAILED: {type(error).__name__}: {str(error)[-2000:]}"
    results.append({"step": name, "outcome": outcome, "seconds": time.perf_counter() - started,
                    "peak_gpu_mib": memory.peak})
    print(f"   {outcome}", flush=True)


def run(command: list[str], limit_s: float) -> str:
    """Run a command of the check; a hang fails its step after `limit_s` seconds instead of using up the lease."""
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit_s)
    if completed.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} ... exited {completed.returncode}: "
                           f"{(completed.stdout + completed.stderr)[-3000:]}")
    return completed.stdout


def mfu(stage: int, liger: bool) -> str:
    import importlib.util

    if liger and importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed: not measured"
    knobs = ["--liger-kernels"] if liger else []
    output = run([sys.executable, "benchmarks/gpu_mfu.py", "--zero-stage", str(stage), "--steps", "10",
                  "--profile-steps", "1", *knobs], 180)
    profile = ROOT / "results" / "gpu-check-mfu" / f"zero{stage}{'-liger' if liger else ''}.txt"
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(output)  # the measurement and the profile of one more step: where the time went
    return next(line for line in output.splitlines() if " MFU " in line)


def grid(smoke: bool) -> str:
    import yaml

    run_name = "gpu-check-smoke" if smoke else "gpu-check"
    shutil.rmtree(ROOT / "results" / run_name, ignore_errors=True)
    config = GRID
    if smoke:
        config = ROOT / "results" / f"{run_name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(yaml.safe_dump(yaml.safe_load(GRID.read_text()) | SMOKE))
    run([sys.executable, "-m", "snakemake", "--cores", "all", "--configfile", str(config), "--quiet", "all"], 360)
    metrics = ROOT / "results" / run_name / "metrics.csv"
    runs = anneal_summaries(ROOT / "results" / run_name)
    speeds = ", ".join(f"{summary['tokens_per_s']:,.0f}" for summary in runs)
    jobs = stage_times(ROOT / "results" / run_name).loc["anneal"]  # Snakemake's benchmark files: the whole job
    training = [summary["wall_seconds"] for summary in runs]
    return (f"{len(runs)} anneals, {metrics.read_text().count(chr(10)) - 1} metric rows; anneal tokens/s "
            f"{speeds}; anneal jobs {jobs['shortest']:.1f}-{jobs['longest']:.1f} s, of which training "
            f"{min(training):.1f}-{max(training):.1f} s; {runs[0]['parameters'] / 1e6:.2f}M parameters, "
            f"{runs[0]['dtype']}, {runs[0]['parameters_per_rank'] / 1e6:.2f}M on the rank")


def checkpoint(smoke: bool) -> Path:
    run_name = "gpu-check-smoke" if smoke else "gpu-check"
    return sorted((ROOT / "results" / run_name / "anneal").glob("*/*/seed0/model"))[-1]


def backends(smoke: bool) -> str:
    """hf and vllm log-likelihoods of every choice of every multiple-choice item of one checkpoint."""
    import importlib.util

    other = "vllm" if importlib.util.find_spec("vllm") is not None else "hf" if smoke else None
    if other is None:
        return "vllm is not installed: not compared"
    model = checkpoint(smoke)
    tasks = model.parents[4] / "tasks"
    out = ROOT / "results" / "gpu-check-backends"
    task_names = ["arith_mc"] if smoke else ["arith_mc", "mmlu_math"]
    logliks = []
    for index, backend in enumerate(("hf", other)):
        items = out / f"{index}-{backend}.jsonl.gz"
        run([sys.executable, "-m", "annealscope.cli", "evaluate", "--tasks-dir", str(tasks), "--settings",
             json.dumps({"tasks": task_names, "limit": 200, "backend": backend}),
             "--job", str(model), str(out / f"{index}-{backend}.json"), str(items)], 180)
        with gzip.open(items, "rt") as handle:
            logliks.append({(record["task"], record["doc_id"]): record["logliks"]
                            for record in map(json.loads, handle) if "logliks" in record})
    worst = max(abs(a - b) for key, values in logliks[0].items() for a, b in zip(values, logliks[1][key], strict=True))
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    return f"{len(logliks[0])} items: largest |hf - {other}| {worst:.2e} nats, {verdict} {TOLERANCE}"


def teachers(smoke: bool) -> str:
    """The grid's base model, given a chat template, as a teacher of 64 prompts with each installed backend."""
    import importlib.util

    from transformers import AutoTokenizer

    from annealscope.curate.teachers import load_teacher

    run_name = "gpu-check-smoke" if smoke else "gpu-check"
    teacher = ROOT / "results" / "gpu-check-teacher"
    shutil.rmtree(teacher, ignore_errors=True)
    shutil.copytree(ROOT / "results" / run_name / "base" / "model", teacher)
    tokenizer = AutoTokenizer.from_pretrained(teacher)
    tokenizer.chat_template = "{% for message in messages %}{{ message['content'] }}\n{% endfor %}"
    tokenizer.save_pretrained(teacher)
    prompts = [f"Problem {index}: a farmer has {index + 3} rows of beans." for index in range(PROMPTS)]
    speeds = []
    for backend in ("transformers", "vllm"):
        if backend == "vllm" and importlib.util.find_spec("vllm") is None:
            speeds.append("vllm not installed")
            continue
        settings = {"backend": backend, "model": str(teacher), "trust_remote_code": False, "gguf_file": None,
                    "batch_size": PROMPTS, "max_new_tokens": 16 if smoke else 256, "temperature": 0.7,
                    "top_p": 0.95, "repetition_penalty": 1.0, "seed": 0, "parameters": None}
        model = load_teacher(settings)
        model.settings = settings | {"max_new_tokens": 8}  # a short warm-up: the rate is that of a running job
        model.generate(prompts, seed=0)
        model.settings = settings
        started = time.perf_counter()
        generations = model.generate(prompts, seed=0)
        seconds = time.perf_counter() - started
        tokens = sum(generation.completion_tokens for generation in generations)
        speeds.append(f"{backend} {tokens / seconds:,.0f} tokens/s ({tokens:,} tokens, {len(generations)} prompts)")
        del model
    return "; ".join(speeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small, on a CPU: checks the script, not the GPU")
    args = parser.parse_args()
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"GPU check on {device}", flush=True)
    results: list[dict] = []
    started = time.perf_counter()
    if not args.smoke:
        for liger in (False, True):
            for stage in (1, 3):
                name = f"1. MFU, ZeRO-{stage}{', Liger kernels' if liger else ''}"
                step(results, name, lambda stage=stage, liger=liger: mfu(stage, liger))
    step(results, "2. 2 x 2 grid, bf16, ZeRO-3", lambda: grid(args.smoke))
    step(results, "3. hf against vllm", lambda: backends(args.smoke))
    step(results, "4. teachers", lambda: teachers(args.smoke))
    print(f"\nGPU check on {device}, {time.perf_counter() - started:.0f} s in all:")
    for result in results:
        peak = f"{result['peak_gpu_mib']:,.0f} MiB" if result["peak_gpu_mib"] is not None else "-"
        print(f"| {result['step']} | {result['seconds']:.0f} s | peak GPU {peak} | {result['outcome']} |")
    if any(str(result["outcome"]).startswith("FAILED") for result in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
