"""The sandbox a teacher's prompt template is rendered in: no attribute of Python objects beyond what Jinja's
sandbox allows, and an undefined name an error rather than an empty string."""

from __future__ import annotations

from pathlib import Path

TEMPLATE_NAMES = ("document", "index", "params")  # what a prompt template is rendered with


def _environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


def prompt_template(path: str | Path):
    """The template at `path`, compiled in the sandbox; it renders with the TEMPLATE_NAMES."""
    return _environment().from_string(Path(path).read_text(encoding="utf-8"))


def unknown_names(path: str | Path) -> list[str]:
    """The names the template at `path` reads beyond the TEMPLATE_NAMES, found by parsing, not rendering;
    a syntax error raises jinja2's TemplateSyntaxError."""
    from jinja2 import meta

    names = meta.find_undeclared_variables(_environment().parse(Path(path).read_text(encoding="utf-8")))
    return sorted(names - set(TEMPLATE_NAMES))
