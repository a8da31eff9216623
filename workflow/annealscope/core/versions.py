"""The versions of the packages that made an artifact, recorded in it so that cells made months apart can be
compared (evaluate/comparability.py)."""

from __future__ import annotations

import importlib.metadata


def package_versions(*packages: str) -> dict[str, str]:
    """Each installed package's version, by its distribution name."""
    return {package: importlib.metadata.version(package) for package in packages}
