"""The `stable_start` rule's job: a stamp of everything a (source, seed) stable phase and its cooldowns start
from, so that what must rerun a cooldown reaches it (docs/design.md, "Incrementality")."""

from __future__ import annotations

import json
from pathlib import Path

from annealscope.core.io import write_json


def stamp_start(out: str, settings: str, inputs, log: str) -> None:
    """Write the stamp: the settings (JSON text) and the input files, then a one-line log."""
    write_json(out, {"settings": json.loads(settings), "inputs": list(inputs)})
    Path(log).write_text(f"stamped {out}\n")
