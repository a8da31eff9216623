"""The sandbox a teacher's prompt template is rendered in: no attribute of Python objects beyond what Jinja's
sandbox allows, and an undefined name an error rather than an empty string."""

from __future__ import annotations

from pathlib import Path


def prompt_environment():
    """Jinja's sandbox, with undefined names as errors."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def prompt_template(path: str | Path):
    """The template at `path`, compiled in the sandbox; it renders with `document`, `index` and `params`."""
    return prompt_environment().from_string(Path(path).read_text(encoding="utf-8"))
