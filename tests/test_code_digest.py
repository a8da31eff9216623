"""The digest of a stage's code: what changes it and what does not (the workflow's reruns are in
test_workflow.py)."""

import importlib.metadata
from pathlib import Path

import pytest

from annealscope.core.code_digest import code_digest

MODULES = {
    "__init__.py": "",
    "fit/__init__.py": "",
    "fit/model.py": '''"""Curves."""
from annealscope.core import maths


def fitted(x):
    from annealscope.core.io import save  # imported where it runs
    return save(maths.square(x))
''',
    "core/__init__.py": "",
    "core/maths.py": "import json\nimport yaml.constructor\n\n\ndef square(x):\n    return x * x\n",
    "core/io.py": "def save(value):\n    return value\n",
    "core/unrelated.py": "def train():\n    return 1\n",
}


@pytest.fixture
def package(tmp_path) -> Path:
    for name, text in MODULES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def digest_after(package: Path, name: str, text: str) -> str:
    (package / name).write_text(text)
    return code_digest("annealscope.fit.model", root=package)


@pytest.mark.parametrize(("name", "text"), [
    ("core/io.py", "def save(value):\n    return value + 0\n"),  # imported inside a function, two levels down
    ("core/maths.py", "def square(x):\n    return x ** 2\n"),
    ("core/maths.py", '"""Arithmetic."""\ndef square(x):\n    return x * x\n'),  # a docstring is code
    ("fit/__init__.py", "LIMIT = 3\n"),  # a package on the way runs too
])
def test_an_edit_to_any_module_the_stage_runs_changes_the_digest(package, name, text):
    before = code_digest("annealscope.fit.model", root=package)
    assert digest_after(package, name, text) != before


@pytest.mark.parametrize(("name", "text"), [
    ("core/maths.py", "import json\nimport yaml.constructor  # documents\n# squares\n\ndef square(x):   # of a"
                      " number\n\n    return x*x\n"),
    ("fit/model.py", MODULES["fit/model.py"].replace("maths.square(x)", "maths.square(\n        x,\n    )")),
    ("core/unrelated.py", "def train():\n    return 2\n"),  # not imported by the stage
])
def test_comments_formatting_and_modules_the_stage_never_imports_leave_it(package, name, text):
    before = code_digest("annealscope.fit.model", root=package)
    assert digest_after(package, name, text) == before


def test_a_module_that_is_not_there_is_named(package):
    (package / "core/io.py").unlink()
    with pytest.raises(ValueError, match=r"annealscope\.core\.io: no such annealscope module"):
        code_digest("annealscope.fit.model", root=package)


def installed_as(monkeypatch, distribution: str, version: str) -> None:
    """importlib.metadata reporting `distribution` at `version`, as after an upgrade."""
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: version if name == distribution else real(name))


def test_an_upgrade_of_a_package_the_stage_imports_changes_it_and_of_any_other_leaves_it(package, monkeypatch):
    before = code_digest("annealscope.fit.model", root=package)
    with monkeypatch.context() as patch:
        installed_as(patch, "scipy", "0.1")  # installed, but no module of the stage imports it
        assert code_digest("annealscope.fit.model", root=package) == before
    installed_as(monkeypatch, "PyYAML", "0.1")  # its package is yaml, which a module the stage imports imports
    assert code_digest("annealscope.fit.model", root=package) != before
