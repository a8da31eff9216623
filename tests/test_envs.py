"""No conda channel is reachable here, so the rules' conda environment is kept consistent by this test."""

import re
import tomllib

import yaml


def test_conda_environment_lists_the_package_dependencies(root):
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((root / "envs" / "annealscope.yaml").read_text())
    pip = next(entry["pip"] for entry in environment["dependencies"] if isinstance(entry, dict))
    assert sorted(requirement for requirement in pip if not requirement.startswith("-e")) == sorted(
        project["dependencies"])


def test_every_shell_rule_declares_the_environment(root):
    """`run:` rules execute in Snakemake's own environment, so only shell rules take `conda:`."""
    checked = []
    for rules in (root / "workflow" / "rules").glob("*.smk"):
        blocks = re.split(r"\n(?=[ ]*rule \w+:)", rules.read_text())  # indented rules (under `if`) too
        checked += [block for block in blocks if re.match(r"\s*rule \w+:", block) and "shell:" in block]
    assert {"anneal", "stable", "cooldown"} <= {re.match(r"\s*rule (\w+):", block)[1] for block in checked}
    for block in checked:
        assert re.search(r'conda:\n\s+"../../envs/annealscope.yaml"', block), block.split(":")[0].strip()
