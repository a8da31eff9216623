"""The package is laid out by stage, one subpackage per rule file, and data flows down: `core` imports no
stage, and a stage imports only `core` and itself."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "workflow" / "annealscope"
RULES = PACKAGE.parent / "rules"
STAGES = {"fetch", "base", "curate", "anneal", "evaluate", "fit", "report"}


def imported_subpackages(module: Path) -> set[str]:
    """The annealscope subpackages a module imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("annealscope."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {alias.name.split(".")[1] for alias in node.names if alias.name.startswith("annealscope.")}
    return names


def test_every_stage_has_its_rule_file_and_every_rule_file_a_package():
    packages = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    assert packages == STAGES | {"core"}
    rule_files = {path.stem for path in RULES.glob("*.smk")} - {"common"}
    assert rule_files == STAGES


def test_core_imports_no_stage_and_stages_import_only_core_and_themselves():
    for module in PACKAGE.rglob("*.py"):
        package = module.relative_to(PACKAGE).parts[0]
        if package not in STAGES | {"core"}:
            continue  # the CLI and the whole-config check wire the stages together
        allowed = {"core"} | ({package} if package in STAGES else set())
        assert imported_subpackages(module) <= allowed, f"{module.relative_to(PACKAGE)} imports a stage"
