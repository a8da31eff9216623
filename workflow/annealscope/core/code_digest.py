"""A digest of the code behind a stage, so that a changed annealscope, or an upgraded package it runs, reruns
the cheap stages it changes (collect, fit, backtest, report) and never a training or an evaluation: those rules'
params carry it, and Snakemake reruns a job whose params differ from the ones it recorded.

The digest covers the modules named and every annealscope module they import, at any depth and anywhere in
their code (imports inside functions too), as parsed syntax: a comment, a blank line or a reformatting changes
nothing, an edited expression or docstring changes it. It covers as well the installed version of every
distribution that provides a package those modules import (scipy, pandas, ...); the standard library and
packages not installed add nothing. It reads source files and installed metadata only; nothing is imported.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
from functools import cache
from pathlib import Path

PACKAGE = "annealscope"
ROOT = Path(__file__).resolve().parent.parent  # the package's folder


def code_digest(*modules: str, root: Path = ROOT) -> str:
    """A short hex digest of the modules named (dotted names under annealscope) and the annealscope modules
    they import, read from the package folder `root`, and the versions of the distributions they import."""
    parsed, pending = {}, list(_with_packages(modules))
    while pending:
        name = pending.pop()
        if name not in parsed:
            parsed[name] = _parsed(name, root)
            pending.extend(parsed[name][1])
    digest = hashlib.sha256()
    for name in sorted(parsed):
        digest.update(f"{name}\n{parsed[name][0]}\n".encode())
    for distribution, version in distribution_versions(set().union(*(third for _, _, third in parsed.values()))):
        digest.update(f"{distribution}=={version}\n".encode())
    return digest.hexdigest()[:16]


def distribution_versions(packages: set[str]) -> list[tuple[str, str]]:
    """The installed distributions that provide the top-level `packages`, with their versions, sorted."""
    provided = _providers()
    names = {distribution for package in packages for distribution in provided.get(package, ())}
    return sorted((name, importlib.metadata.version(name)) for name in names)


@cache
def _providers() -> dict[str, list[str]]:
    """Top-level package -> the installed distributions that provide it; read once a process (0.24 s)."""
    return importlib.metadata.packages_distributions()


def _parsed(name: str, root: Path) -> tuple[str, set[str], set[str]]:
    path = module_path(name, root)
    if path is None:
        raise ValueError(f"{name}: no such annealscope module under {root}")
    stat = path.stat()
    return _parse(path, root, stat.st_mtime_ns, stat.st_size)


@cache
def _parse(path: Path, root: Path, *stamp: int) -> tuple[str, set[str], set[str]]:
    """A module's syntax tree as text (no comments, no positions), the annealscope modules it imports and the
    other top-level packages it imports; parsed once a process while the file's `stamp` (time and size) stays
    the same."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return ast.dump(tree), *imported_packages(tree, root)


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


def imported_packages(tree: ast.Module, root: Path = ROOT) -> tuple[set[str], set[str]]:
    """What an absolute import anywhere in `tree` runs: the annealscope modules (each package on the way to a
    module, and for `from package import name` the submodule `name` where it is one), and the top-level names
    of the other packages."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_path(f"{node.module}.{alias.name}", root))
    ours = {name for name in names if name.split(".")[0] == PACKAGE}
    return _with_packages(ours), {name.split(".")[0] for name in names - ours}


def _with_packages(names) -> set[str]:
    """The modules named and each package on the way to them."""
    return {".".join(parts[:end]) for parts in (name.split(".") for name in names) for end in range(1, len(parts) + 1)}
