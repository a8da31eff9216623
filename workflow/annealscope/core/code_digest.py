"""A digest of the code behind a stage, so that a changed annealscope reruns the cheap stages it changes
(collect, fit, backtest, report) and never a training or an evaluation: those rules' params carry it, and
Snakemake reruns a job whose params differ from the ones it recorded.

The digest covers the modules named and every annealscope module they import, at any depth and anywhere in
their code (imports inside functions too), as parsed syntax: a comment, a blank line or a reformatting changes
nothing, an edited expression or docstring changes it. It reads source files only; nothing is imported.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "annealscope"
ROOT = Path(__file__).resolve().parent.parent  # the package's folder


def code_digest(*modules: str, root: Path = ROOT) -> str:
    """A short hex digest of the modules named (dotted names under annealscope) and the annealscope modules
    they import, read from the package folder `root`."""
    parsed, pending = {}, list(_with_packages(modules))
    while pending:
        name = pending.pop()
        if name not in parsed:
            parsed[name] = _parsed(name, root)
            pending.extend(parsed[name][1])
    digest = hashlib.sha256()
    for name in sorted(parsed):
        digest.update(f"{name}\n{parsed[name][0]}\n".encode())
    return digest.hexdigest()[:16]


def _parsed(name: str, root: Path) -> tuple[str, set[str]]:
    path = module_path(name, root)
    if path is None:
        raise ValueError(f"{name}: no such annealscope module under {root}")
    stat = path.stat()
    return _parse(path, root, stat.st_mtime_ns, stat.st_size)


@cache
def _parse(path: Path, root: Path, *stamp: int) -> tuple[str, set[str]]:
    """A module's syntax tree as text (no comments, no positions) and the annealscope modules it imports; parsed
    once a process while the file's `stamp` (time and size) stays the same."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return ast.dump(tree), imported_modules(tree, root)


def module_path(name: str, root: Path = ROOT) -> Path | None:
    """The source file of an annealscope module or package (its __init__.py); None if there is none."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(tree: ast.Module, root: Path = ROOT) -> set[str]:
    """The annealscope modules an import anywhere in `tree` runs: each package on the way to a module, and for
    `from package import name` the submodule `name` where it is one."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_path(f"{node.module}.{alias.name}", root))
    return _with_packages(name for name in names if name.split(".")[0] == PACKAGE)


def _with_packages(names) -> set[str]:
    """The modules named and each package on the way to them."""
    return {".".join(parts[:end]) for parts in (name.split(".") for name in names) for end in range(1, len(parts) + 1)}
