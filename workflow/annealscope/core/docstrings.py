"""Public docstrings of installed libraries, the same text in every process.

Some libraries build docstrings when they are imported, and not always the same way twice: scipy.stats draws
random samples into the examples of its distributions (outputs marked ``# may vary``), and scipy lists a
function's deprecated arguments in a set's order, which hash randomisation changes from process to process. So
the docstrings are read in a child process with a fixed hash seed, doctest outputs marked ``# may vary`` are
left out, and every library's modules are imported before any is read (scipy rewrites some numpy docstrings
when it is imported). A corpus that changed between runs would change a source's documents, its curation and
every anneal on it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGES = {
    "numpy": ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.polynomial"],
    "scipy": ["scipy.linalg", "scipy.stats", "scipy.optimize", "scipy.integrate", "scipy.special",
              "scipy.interpolate", "scipy.signal", "scipy.sparse"],
    "sympy": ["sympy"],
    "python": ["builtins", "math", "statistics", "fractions", "decimal", "itertools", "functools",
               "collections", "string", "re", "json", "pathlib", "random", "datetime", "textwrap"],
}
MIN_CHARS = 200
HASH_SEED = "0"
VARYING = "# may vary"
PROMPTS = (">>>", "...")


@functools.cache
def library_docstrings() -> dict[str, list[tuple[str, str]]]:
    """Per library of PACKAGES, its public docstrings as (module.name, text), read once per process (in a
    child process with PYTHONHASHSEED fixed, unless this process has it)."""
    if os.environ.get("PYTHONHASHSEED") == HASH_SEED:
        return read_docstrings()
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "docstrings.json"
        package_root = str(Path(__file__).resolve().parents[2])  # importable however this process found it
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        child = subprocess.run([sys.executable, "-m", __name__, str(out)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONHASHSEED": HASH_SEED, "PYTHONPATH": path})
        if child.returncode:
            raise RuntimeError(f"reading the docstrings of {sorted(PACKAGES)} failed:\n{child.stderr[-3000:]}")
        return {library: [tuple(pair) for pair in pairs] for library, pairs in json.loads(out.read_text()).items()}


def read_docstrings() -> dict[str, list[tuple[str, str]]]:
    """Per library, the public members' docstrings (cleaned, without varying outputs) of at least MIN_CHARS,
    each text once, in module order and then by name."""
    for module_name in (name for names in PACKAGES.values() for name in names):
        importlib.import_module(module_name)
    found: dict[str, list[tuple[str, str]]] = {}
    for library, module_names in PACKAGES.items():
        seen: set[str] = set()
        found[library] = []
        for module_name in module_names:
            module = importlib.import_module(module_name)
            for name in sorted(getattr(module, "__all__", None) or dir(module)):
                if name.startswith("_"):
                    continue
                try:
                    member = getattr(module, name)
                except AttributeError:
                    continue
                text = without_varying_outputs(inspect.cleandoc(getattr(member, "__doc__", None) or ""))
                if len(text) >= MIN_CHARS and text not in seen and not inspect.ismodule(member):
                    seen.add(text)
                    found[library].append((f"{module_name}.{name}", text))
    return found


def without_varying_outputs(text: str) -> str:
    """`text` less each doctest output (the lines after a ``>>>`` prompt, up to a blank line or the next
    prompt) that has a line marked ``# may vary``, numpydoc's mark for an output that changes from run to run."""
    def settled(lines: list[str]) -> list[str]:
        return [] if any(VARYING in line for line in lines) else lines

    kept: list[str] = []
    output: list[str] = []  # the current example's output, kept once it is known not to vary
    in_example = False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(">>>") or (in_example and stripped.startswith(PROMPTS)) or not stripped:
            kept += [*settled(output), line]
            output = []
            in_example = bool(stripped)
        elif in_example:
            output.append(line)
        else:
            kept.append(line)
    return "\n".join(kept + settled(output))


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(read_docstrings()))
