"""Curation at scale: shards planned from sizes, read exactly once, deduplicated across shards as one source,
added up into the manifest a whole source would have, with memory bounded per shard job."""

import itertools
import json
import math
import random
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import few_open_files

from annealscope.core import compressed, corpora
from annealscope.core.corpora import parquet_row_groups, read_corpus, read_piece
from annealscope.core.io import write_jsonl
from annealscope.core.shards import describe_piece, replay_shards, source_shards
from annealscope.core.tokens import TokenArray, write_token_index
from annealscope.curate import dedup, diversity, pipeline
from annealscope.curate.dedup import MinHasher, Signer, exact_key, find_duplicates, shingle_hashes
from annealscope.curate.pipeline import (
    CurationError,
    dedup_source,
    filter_shard,
    finish_shard,
    teacher_seeds,
    write_manifest,
)
from annealscope.curate.text import HashedWords, ngrams, words
from annealscope.curate.tokenize import ShardEncoder, TokenEncoder, TokenRanges, tokenize_pieces, write_tokens

ROOT = Path(__file__).resolve().parent.parent
HUB = f"hf:{ROOT}/tests/data/hub_dataset?split=train&text=question&label=topic"
SHARDING = {"bytes": 1 << 28, "tokens": 1 << 26, "documents": 100_000}


def given(corpus, sharding=None, **overrides) -> dict:
    settings = {"curation": "given", "corpus": corpus, "acquisition_flops": 0.0, "decontamination_ngram": 13,
                "heuristics": {}, "near_dedup": {"threshold": 0.8, "num_perm": 64, "shingle": 3},
                "acquisition_usd": None, "sharding": {**SHARDING, **(sharding or {})}}
    return {**settings, **overrides}


def curate(name: str, settings: dict, tokenizer, tasks, out: Path, classifier=None) -> dict:
    """Every stage of a source's curation, as the workflow runs them (one call per job)."""
    shards = source_shards(settings)
    files = {kind: [out / f"shard{index}.{kind}" for index in range(len(shards))]
             for kind in ("filtered.jsonl", "filtered_tokens.bin", "signatures.npz", "filtered.json",
                          "documents.jsonl", "documents.json", "diversity.npz", "tokens.bin")}
    for index, pieces in enumerate(shards):
        filter_shard(name, settings, index, pieces, tokenizer, files["filtered.jsonl"][index],
                     files["filtered_tokens.bin"][index], files["signatures.npz"][index],
                     files["filtered.json"][index], work_dir=out / "work", classifier_dir=classifier)
    dedup_source(name, settings, files["filtered.json"], files["signatures.npz"], out / "duplicates.npz",
                 out / "duplicates.json")
    for index in range(len(shards)):
        finish_shard(name, settings, index, files["filtered.jsonl"][index], files["filtered_tokens.bin"][index],
                     out / "duplicates.npz", tasks, files["documents.jsonl"][index], files["tokens.bin"][index],
                     files["documents.json"][index], files["diversity.npz"][index])
    return write_manifest(name, settings, files["filtered.json"], out / "duplicates.json", files["documents.json"],
                          files["diversity.npz"], files["tokens.bin"], tokenizer, out / "manifest.json",
                          out / "index.json")


def documents_of(out: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(out.glob("shard*.documents.jsonl"), key=lambda p: int(p.name[5:-16]))
            for line in path.read_text().splitlines()]


@pytest.fixture
def tasks(tmp_path):
    item = "What is the value of seven times eight when both are multiplied together in a product"
    directory = tmp_path / "tasks"
    write_jsonl(directory / "quiz.jsonl", [{"question": item, "choices": ["56", "54"], "gold": 0}])
    return directory


def at_least(words: int) -> dict:
    """Heuristics that remove documents of fewer than `words` words (the pool's words are no stop words)."""
    return {"gopher_quality": {"min_doc_words": words, "min_stop_words": None}}


def pool(count: int, seed: int = 0) -> list[dict]:
    """Documents of random words, a tenth of them near copies of an earlier one and a tenth exact copies."""
    rng = random.Random(seed)
    vocabulary = [f"w{index}" for index in range(3000)]
    documents = []
    for index in range(count):
        if index > 10 and index % 10 == 3:
            documents.append({"text": documents[rng.randrange(index)]["text"]})
        elif index > 10 and index % 10 == 7:
            text = documents[rng.randrange(index)]["text"].split()
            text[rng.randrange(len(text))] = "changed"
            documents.append({"text": " ".join(text)})
        else:
            documents.append({"text": " ".join(rng.choices(vocabulary, k=rng.randint(40, 120)))})
    return documents


def test_shards_are_planned_from_sizes_and_generators_alone(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", pool(50))
    write_jsonl(tmp_path / "b.jsonl", pool(400, seed=1))
    write_jsonl(tmp_path / "c.jsonl.gz", pool(400, seed=2))
    small = (tmp_path / "a.jsonl").stat().st_size
    settings = given([str(tmp_path / "*.jsonl*"), "pydoc:topics"], {"bytes": small * 2})
    shards = source_shards(settings)
    pieces = [piece for shard in shards for piece in shard]
    split = [piece for piece in pieces if piece.get("path", "").endswith("b.jsonl")]
    assert len(split) > 2 and split[0]["start"] == 0 and split[-1]["end"] == (tmp_path / "b.jsonl").stat().st_size
    assert all(left["end"] == right["start"] for left, right in itertools.pairwise(split))
    assert next(piece for piece in pieces if piece.get("path", "").endswith(".gz"))["start"] == 0  # read whole
    assert shards[-1][-1] == {"reference": "pydoc:topics"}  # a built-in corpus joins the last shard
    hub = given([HUB + "&max_documents=7"], {"documents": 3})
    assert [shard[0]["part"] for shard in source_shards(hub)] == [0, 1, 2]
    program = {"curation": "synthesize", "generator": {"kind": "program", "documents": 250}, "sharding": SHARDING}
    assert source_shards({**program, "sharding": {**SHARDING, "documents": 100}})[-1] == [{"program": [200, 50]}]
    teacher = {"curation": "synthesize", "sharding": SHARDING,
               "generator": {"kind": "teacher", "prompts": 10, "shard_prompts": 4}}
    assert [describe_piece(shard[0]) for shard in source_shards(teacher)] == ["prompts 0..3", "prompts 4..7",
                                                                              "prompts 8..9"]


def test_byte_ranges_of_a_jsonl_file_read_every_record_once_in_order(tmp_path):
    records = [{"text": f"record {index} " + "x" * random.Random(index).randint(0, 80)} for index in range(300)]
    path = tmp_path / "pool.jsonl"
    write_jsonl(path, records)
    size = path.stat().st_size
    for step in (1, 7, 64, 1000, size):
        texts = [document.text for start in range(0, size, step)
                 for document in read_piece({"reference": str(path), "path": str(path), "start": start,
                                             "end": min(start + step, size)})]
        assert texts == [record["text"] for record in records], step


def test_a_text_file_larger_than_a_shard_splits_at_byte_offsets_read_once_with_the_ids_of_the_whole(tmp_path):
    """Documents of one line or many, and runs of blank lines between them: a `.txt` file larger than a shard
    splits into byte ranges whose pieces read every document once, in order, with the id it has whole."""
    rng = random.Random(0)
    texts = ["\n".join(f"line {index}.{line} " + "x" * rng.randint(1, 60) for line in range(rng.randint(1, 5)))
             for index in range(400)]
    path = tmp_path / "pool.txt"
    path.write_text("".join(text + "\n" * rng.randint(2, 4) for text in texts), encoding="utf-8")
    whole = [(document.id, document.text) for document in read_piece(
        {"reference": str(path), "path": str(path), "start": 0, "end": path.stat().st_size})]
    assert [text for _, text in whole] == texts
    for limit in (997, 5000, path.stat().st_size // 3):
        shards = source_shards(given([str(path)], {"bytes": limit}))
        assert len(shards) == math.ceil(path.stat().st_size / limit) > 1, limit
        read = [(document.id, document.text) for shard in shards for piece in shard for document in read_piece(piece)]
        assert read == whole, limit


def test_a_parquet_file_larger_than_a_shard_splits_by_row_groups_read_once_with_the_ids_of_the_whole(tmp_path):
    """Uneven row groups, other field names and a column curation never reads: whatever the shard size, the
    pieces read every record once, in order, numbered as the whole file numbers them; a row group is not cut."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    rng = random.Random(0)
    path = tmp_path / "pool.parquet"
    with parquet.ParquetWriter(path, pa.schema([("content", pa.string()), ("url", pa.string())])) as writer:
        first = 0
        for rows in [rng.randint(1, 60) for _ in range(40)]:
            indices = range(first, first + rows)
            texts = [f"record {index} " + "x" * rng.randint(0, 400) for index in indices]
            writer.write_table(pa.table({"content": texts, "url": [f"https://example.org/{i}" for i in indices]}))
            first += rows
    reference = f"{path}?text=content"
    whole = [(document.id, document.text) for document in read_corpus(reference)]
    assert len(whole) == first and whole[-1][0] == f"pool.parquet/{first - 1}"
    groups = [size for size, _ in parquet_row_groups(path)]
    size = path.stat().st_size
    for limit in (size, size - 1, size // 2, size // 9):
        pieces = [piece for shard in source_shards(given([reference], {"bytes": limit})) for piece in shard]
        read = [(document.id, document.text) for piece in pieces for document in read_piece(piece)]
        assert read == whole, limit
        if limit == size:
            assert pieces == [{"reference": reference, "path": str(path), "start": 0, "end": size}]
            continue
        ranges = [piece["row_groups"] for piece in pieces]
        assert ranges[0][0] == 0 and ranges[-1][1] == len(groups)
        assert all(left[1] == right[0] for left, right in itertools.pairwise(ranges))
        assert len(ranges) == -(-sum(groups) // limit)  # as many as equal shares need
        assert all(sum(groups[slice(*span)]) <= limit + max(groups) for span in ranges)
    assert describe_piece(pieces[0]) == f"{path} row groups [0, {ranges[0][1]})"


def test_a_parquet_row_group_larger_than_a_shard_splits_by_rows_read_once_with_the_ids_of_the_whole(tmp_path):
    """One row group, or a large one between small ones: cut into slices of rows, read once, in order, numbered
    as the whole file numbers them; only the first piece hashes the file; a shard planned before row groups
    were cut keeps each whole."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    from annealscope.core.corpora import piece_hashes

    rng = random.Random(1)
    texts = [f"record {index} " + "y" * rng.randint(0, 300) for index in range(1000)]
    one, mixed = tmp_path / "one.parquet", tmp_path / "mixed.parquet"
    parquet.write_table(pa.table({"text": texts}), one, row_group_size=len(texts))
    with parquet.ParquetWriter(mixed, pa.schema([("text", pa.string())])) as writer:
        for span in ((0, 40), (40, 900), (900, 1000)):
            writer.write_table(pa.table({"text": texts[slice(*span)]}))
    for path in (one, mixed):
        whole = [(document.id, document.text) for document in read_corpus(str(path))]
        assert [text for _, text in whole] == texts
        size = path.stat().st_size
        for limit in (size // 2, size // 7, size // 50):
            pieces = [piece for shard in source_shards(given([str(path)], {"bytes": limit})) for piece in shard]
            read = [(document.id, document.text) for piece in pieces for document in read_piece(piece)]
            assert read == whole, (path.name, limit)
            rows = [piece["rows"] for piece in pieces]
            assert rows[0][0] == 0 and rows[-1][1] == len(texts)
            shares = -(-sum(group for group, _ in parquet_row_groups(path)) // limit)
            assert shares - 1 <= len(pieces) <= shares  # two cuts may snap to one boundary
            assert all(left[1] == right[0] for left, right in itertools.pairwise(rows))
            assert list(piece_hashes(pieces)) == [str(path)]
        assert describe_piece(pieces[1]) == f"{path} rows [{rows[1][0]}, {rows[1][1]})"
    assert len(source_shards(given([str(one)], {"bytes": 1}))) == len(texts)  # a row a slice at most
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"shards": [{"path": "0.bin"}]}))
    assert source_shards(given([str(one)], {"bytes": 100}), index) == [
        [{"reference": str(one), "path": str(one), "row_groups": [0, 1]}]]


def test_a_parquet_row_group_streams_a_page_at_a_time(tmp_path):
    """A shard job reading a row group of 48 MB of text holds a few batches in pyarrow's memory, not the group's
    column chunk (the default read held it whole)."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", dtype=np.uint8)
    texts = [letters[rng.integers(0, 27, 1200)].tobytes().decode() for _ in range(40_000)]
    path = tmp_path / "big.parquet"
    parquet.write_table(pa.table({"text": texts}), path, row_group_size=len(texts), compression="snappy")
    chunk = parquet_row_groups(path)[0][0]
    script = (f"import pyarrow as pa; from annealscope.core.corpora import read_piece; "
              f"count = sum(1 for _ in read_piece({{'reference': {str(path)!r}, 'path': {str(path)!r}, "
              f"'row_groups': [0, 1], 'rows': [30000, 40000]}})); "
              f"print(count, pa.default_memory_pool().max_memory())")
    count, peak = map(int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                          check=True).stdout.split())
    assert count == 10_000 and chunk > 40e6
    assert peak < chunk / 2, (peak, chunk)  # read whole, the chunk alone took more than the group


def compressed_pool(path: Path, records: list[dict]) -> None:
    """`records` as JSON lines with blank lines between some, compressed by the file's suffix into three
    members (gzip, zero-padded after the first) or frames (Zstandard), as concatenated or parallel writers do."""
    import gzip

    import zstandard

    lines = [json.dumps(record).encode() + (b"\n\n" if index % 97 == 0 else b"\n")
             for index, record in enumerate(records)]
    thirds = [b"".join(lines[part * len(lines) // 3:(part + 1) * len(lines) // 3]) for part in range(3)]
    if path.suffix == ".gz":
        compressed = [gzip.compress(third, compresslevel=1) for third in thirds]
        compressed[0] += b"\0" * 9
    else:
        compressed = [zstandard.ZstdCompressor(level=1).compress(third) for third in thirds]
    path.write_bytes(b"".join(compressed))


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json.zst"])
def test_a_compressed_jsonl_file_larger_than_a_shard_splits_by_compressed_bytes_read_once_with_the_ids_of_the_whole(
        tmp_path, suffix):
    """Whatever the shard size, down to a third of the block a range is cut in, the pieces read every record
    once, in order, numbered as the whole file numbers them, across members or frames and blank lines; a range
    is whole blocks, so none is empty."""
    rng = random.Random(0)
    vocabulary = [f"w{index}" for index in range(4000)]
    records = [{"text": " ".join(rng.choices(vocabulary, k=rng.randint(1, 250))), "id": None if index % 5 else
                f"doc-{index}"} for index in range(6000)]
    path = tmp_path / f"pool{suffix}"
    compressed_pool(path, records)
    size = path.stat().st_size
    whole = [(document.id, document.text) for document in read_corpus(str(path))]
    assert [text for _, text in whole] == [record["text"] for record in records]
    assert whole[1] == (f"{path.name}/1", records[1]["text"]) and whole[5][0] == "doc-5"
    for limit in (size, size - 1, size // 4, compressed.READ // 3):
        pieces = [piece for shard in source_shards(given([str(path)], {"bytes": limit})) for piece in shard]
        assert len(pieces) == min(-(-size // limit), size // compressed.READ)  # whole blocks: none is empty
        assert all(piece["start"] % compressed.READ == 0 for piece in pieces)
        read = [(document.id, document.text) for piece in pieces for document in read_piece(piece)]
        assert read == whole, limit
    assert describe_piece(pieces[1]).startswith(f"{path} compressed bytes [")
    path.write_bytes(path.read_bytes()[:size * 2 // 3])  # a copy cut short fails the piece that reads to its end
    cut = source_shards(given([str(path)], {"bytes": size // 3}))
    assert sum(1 for _ in read_piece(cut[0][0])) > 0
    with pytest.raises(corpora.CorpusError, match=rf"pool{re.escape(suffix)}: cannot read this shard .*cut short"):
        list(read_piece(cut[-1][0]))


def test_a_corpus_tokenized_before_compressed_files_were_split_keeps_them_whole_until_its_index_goes(tmp_path):
    """A token index counting the shards of the plan that read a compressed file whole keeps that plan, for a
    source and for the replay corpus; one counting the split plan's, or none, gets the split plan."""
    write_jsonl(tmp_path / "a.jsonl", pool(100))
    compressed_pool(tmp_path / "b.jsonl.zst", pool(1500, seed=1))
    sharding = {"bytes": (tmp_path / "b.jsonl.zst").stat().st_size // 3 + 1}
    (tmp_path / "c.txt").write_text("\n\n".join(record["text"] for record in pool(200, seed=2)))
    assert sharding["bytes"] < (tmp_path / "c.txt").stat().st_size <= 2 * sharding["bytes"]
    references = [str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl.zst"), str(tmp_path / "c.txt")]
    split = source_shards(given(references, sharding))
    old = [[{"reference": reference, "path": reference, "start": 0, "end": Path(reference).stat().st_size}]
           for reference in references]
    assert len(split) == 6 and split[0] == old[0]
    index = tmp_path / "index.json"
    for recorded, expected in ((3, old), (6, split), (4, split)):
        index.write_text(json.dumps({"shards": [{"path": f"{k}.bin", "tokens": 1} for k in range(recorded)]}))
        assert source_shards(given(references, sharding), index) == expected, recorded
    index.write_text(json.dumps({"tokens": 5}))  # a whole array's sidecar
    assert source_shards(given(references, sharding), index) == split
    config = {"run": "upgraded", "replay": {"corpus": references, "fraction": 0.5, "sharding": {**SHARDING,
                                                                                            **sharding}}}
    replay_index = tmp_path / "results/upgraded/tokens/replay.json"
    replay_index.parent.mkdir(parents=True)
    replay_index.write_text(json.dumps({"shards": [{"path": f"{k}.bin"} for k in range(3)]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        assert replay_shards(config) == old
        replay_index.unlink()
        assert replay_shards(config) == split


def test_the_plan_names_a_compressed_file_split_into_so_many_jobs_that_their_skipping_adds_up(tmp_path):
    from annealscope.core.shards import SKIPPING_SHARDS, planned_shards, skipping_lines

    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz ", dtype=np.uint8)
    path = tmp_path / "big.jsonl.zst"
    compressed_pool(path, [{"text": letters[rng.integers(0, 27, 1000)].tobytes().decode()} for _ in range(4000)])
    blocks = path.stat().st_size // compressed.READ
    assert blocks > SKIPPING_SHARDS
    config = {"run": "skipping", "replay": {"corpus": [], "fraction": 0.0, "sharding": SHARDING}}
    for limit, expected in ((compressed.READ, blocks), (path.stat().st_size // SKIPPING_SHARDS + 1, None)):
        lines = skipping_lines(planned_shards({**config, "sources": {"big": given([str(path)], {"bytes": limit})}}))
        assert lines == ([f"curation: {path} (big) splits into {expected} shard jobs, each decompressing the file "
                          f"from its start up to its own range ({(expected - 1) / 2:.0f} shards' worth on average); "
                          "split it into files of a few GB to spare that (docs/design.md, \"Curation at scale\")"]
                         if expected else [])


def test_a_capped_hub_reference_splits_into_runs_of_rows_each_read_from_the_files_that_hold_them(tmp_path,
                                                                                                  monkeypatch):
    """8 rows of about 66 characters fetched in files of 160 characters of text (3, 3 and 2 rows): each of 3
    parts reads its consecutive rows, in order, opening only the files that hold them; a cap splits exactly
    over the parts; a cache fetched as one file before chunking reads the same; a part of a dataset not
    fetched is refused, naming the fix."""
    from annealscope.core import corpora
    from annealscope.core.corpora import CorpusError, dataset_slug
    from annealscope.fetch.dataset import fetch_dataset

    monkeypatch.setattr("annealscope.fetch.dataset.CHUNK_TEXT", 160)
    capped = HUB + "&max_documents=5"
    for reference in (HUB, capped):
        fetch_dataset(reference, tmp_path / "datasets" / dataset_slug(reference))
    rows = [document.text for document in read_corpus(HUB)]
    assert [document.text for document in read_corpus(HUB, tmp_path)] == rows
    opened, gzip_open = [], corpora.gzip.open
    monkeypatch.setattr(corpora.gzip, "open", lambda path, *args, **kwargs: opened.append(Path(path).name) or
                        gzip_open(path, *args, **kwargs))
    parts = []
    for part in range(3):
        opened.clear()
        parts.append([document.text for document in read_piece({"reference": HUB, "part": part, "parts": 3},
                                                               tmp_path)])
        assert opened == [f"documents-{index:05d}.jsonl.gz" for index in ([0], [0, 1], [1, 2])[part]], opened
    assert parts == [rows[:2], rows[2:5], rows[5:]]
    assert [len(list(read_piece({"reference": capped, "part": part, "parts": 3}, tmp_path)))
            for part in range(3)] == [2, 2, 1]
    old = tmp_path / "old" / "datasets" / dataset_slug(HUB)  # one file, and no chunks in fetch.json
    old.mkdir(parents=True)
    write_jsonl(old / "documents.jsonl.gz", [{"id": str(index), "text": text} for index, text in enumerate(rows)])
    (old / "fetch.json").write_text(json.dumps({"fetched": HUB, "rows": len(rows)}))
    assert [[document.text for document in read_piece({"reference": HUB, "part": part, "parts": 3},
                                                      tmp_path / "old")] for part in range(3)] == parts
    with pytest.raises(CorpusError, match="fetch it first"):
        list(read_piece({"reference": HUB, "part": 0, "parts": 3}, tmp_path / "nowhere"))


def datasketch_greedy(signatures: np.ndarray, near: dict) -> list[int]:
    """The reference: insert the documents' signatures into datasketch's MinHashLSH one at a time, keeping those
    with no match."""
    from datasketch import MinHash, MinHashLSH

    lsh, kept = MinHashLSH(threshold=near["threshold"], num_perm=near["num_perm"]), []
    for index, values in enumerate(signatures):
        signature = MinHash(num_perm=near["num_perm"], hashvalues=values, scheme="affine64")
        if not lsh.query(signature):
            lsh.insert(str(index), signature)
            kept.append(index)
    return kept


def signed(texts: list[str]) -> list[dict]:
    """Documents with ids: one id per word (the pool's words are `w<number>` and `changed`)."""
    return [{"text": text, "key": exact_key(text), "tokens": 1,
             "ids": np.array([int(word[1:]) if word[1:].isdigit() else 9999 for word in text.split()], np.uint16)}
            for text in texts]


@pytest.mark.parametrize(("threshold", "part"), [(0.5, 1 << 22), (0.8, 1 << 22), (0.8, 64)])
def test_near_dedup_over_shards_keeps_what_one_lsh_index_over_the_whole_source_keeps(tmp_path, threshold, part,
                                                                                    monkeypatch):
    monkeypatch.setattr(dedup, "PART_DOCUMENTS", part)  # 64: the keys sorted in 10 passes
    near = {"threshold": threshold, "num_perm": 64, "shingle": 3}
    documents = pool(600, seed=3)
    texts = [document["text"] for document in documents]
    unique = list(dict.fromkeys(texts))  # exact dedup first, as the workflow does
    files = []
    for index, start in enumerate(range(0, len(texts), 170)):  # four shards, pairs split across them
        signer = Signer(near)
        signer.add(signed(texts[start:start + 170]))
        signer.save(tmp_path / f"{index}.npz")
        files.append(tmp_path / f"{index}.npz")
    drop, records = find_duplicates(files, near)
    kept = [position for index, positions in enumerate(drop)
            for position in sorted(set(range(min(170, len(texts) - 170 * index))) - set(positions.tolist()))
            for position in [170 * index + position]]
    documents = signed(unique)
    signatures = MinHasher(near["num_perm"])(*shingle_hashes([document["ids"] for document in documents], 3))
    expected = [texts.index(unique[index]) for index in datasketch_greedy(signatures, near)]
    assert kept == expected
    assert records[0]["documents_in"] - records[0]["documents_out"] == len(texts) - len(unique)
    assert records[1]["documents_out"] == len(expected) < len(unique)


def test_the_dedup_job_reads_each_key_once_however_many_passes_it_sorts_in(tmp_path, monkeypatch):
    near, files = {"threshold": 0.8, "num_perm": 64, "shingle": 3}, []
    texts = [document["text"] for document in pool(600, seed=5)]
    for index, start in enumerate(range(0, len(texts), 170)):
        signer = Signer(near)
        signer.add(signed(texts[start:start + 170]))
        signer.save(tmp_path / f"{index}.npz")
        files.append(tmp_path / f"{index}.npz")
    load, reads = np.load, {}

    class Counted:
        """A signature file that counts the reads of each of its members."""

        def __init__(self, path):
            self.path, self.data = path, load(path)
            self.files = self.data.files

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.data.close()

        def __getitem__(self, member):
            reads[self.path, member] = reads.get((self.path, member), 0) + 1
            return self.data[member]

    monkeypatch.setattr(np, "load", Counted)
    counted, scratch = [], tmp_path / "scratch"
    scratch.mkdir()
    for part in (1 << 22, 64):  # one pass, then 10
        monkeypatch.setattr(dedup, "PART_DOCUMENTS", part)
        reads.clear()
        counted.append((find_duplicates(files, near, scratch=scratch), dict(reads)))
    (whole, one), (parted, ten) = counted
    assert [positions.tolist() for positions in parted[0]] == [positions.tolist() for positions in whole[0]]
    assert parted[1] == whole[1] and whole[1][1]["documents_out"] < whole[1][0]["documents_out"]
    assert ten == one and max(count for (_, member), count in ten.items() if member.startswith("band")) == 1
    assert not any(scratch.iterdir())  # the passes' files are gone


def one_by_one(keys: np.ndarray) -> list[bool]:
    """Greedy LSH as an index queried and filled one document at a time: keys is (documents, bands)."""
    seen, keep = [set() for _ in range(keys.shape[1])], []
    for row in keys:
        keep.append(not any(key in band for key, band in zip(row.tolist(), seen, strict=True)))
        if keep[-1]:
            for key, band in zip(row.tolist(), seen, strict=True):
                band.add(key)
    return keep


@pytest.mark.parametrize(("part", "rounds"), [(1 << 22, dedup.ROUNDS), (40, dedup.ROUNDS), (40, 1), (1 << 22, 0)])
def test_greedy_lsh_decides_each_document_as_one_index_filled_in_order_would(tmp_path, monkeypatch, part, rounds):
    """Clusters of copies, and chains (a~b in one band, b~c in another, ...) as long as 30 documents, whose
    documents are kept and dropped alternately and settle one a round, past the rounds allowed; decided in
    ranges of 10 documents (part 40) or at once."""
    monkeypatch.setattr(dedup, "PART_DOCUMENTS", part)
    monkeypatch.setattr(dedup, "ROUNDS", rounds)
    rng, count, bands = np.random.default_rng(11), 600, 4
    keys = rng.integers(0, 1 << 62, (count, bands), dtype=np.uint64)
    for _ in range(40):  # clusters sharing some bands
        members = rng.choice(count, rng.integers(2, 6), replace=False)
        shared = rng.random(bands) < 0.5
        keys[np.ix_(members, shared)] = keys[members[0], shared]
    for _ in range(4):  # chains through the bands, in document order
        chain = np.sort(rng.choice(count, 30, replace=False))
        for index, (a, b) in enumerate(itertools.pairwise(chain)):
            keys[b, index % bands] = keys[a, index % bands]
    expected = one_by_one(keys)

    def parts(band):
        order = np.argsort(keys[:, band] % 3, kind="stable")  # three parts a band, positions ascending in each
        for value in range(3):
            mine = np.sort(order[keys[order, band] % 3 == value])
            yield mine.astype(np.int64), keys[mine, band]

    spill = tmp_path / "spill"
    spill.mkdir()
    kept = dedup.greedy_lsh(count, (parts(band) for band in range(bands)), spill)
    assert kept.tolist() == expected
    assert 300 < sum(expected) < count - 50 and not any(spill.iterdir())


@pytest.mark.parametrize("colliding", [0.05, 0.6])
def test_the_dedup_job_holds_a_few_bytes_a_document_and_decides_as_in_one_pass(tmp_path, monkeypatch, colliding):
    rng = np.random.default_rng(7)
    files, near = [], {"threshold": 0.8, "num_perm": 128, "shingle": 5}
    bands = dedup.band_parameters(near)[0]
    for index in range(4):  # 4 shards of 100,000 documents; a tenth repeat a text, `colliding` share band keys
        exact = rng.integers(0, 1 << 63, 100_000, dtype=np.uint64)
        exact[rng.random(100_000) < 0.1] = exact[:1000][rng.integers(0, 1000)]
        arrays = {"exact": exact, "tokens": rng.integers(1, 500, 100_000)}
        for band in range(bands):
            keys = rng.integers(1 << 20, 1 << 63, 100_000, dtype=np.uint64)
            shared = rng.random(100_000) < colliding
            keys[shared] = rng.integers(0, 5000, shared.sum()).astype(np.uint64)  # groups of ~10 to ~50
            arrays[f"band{band}"] = keys
        np.savez(tmp_path / f"{index}.npz", **arrays)
        files.append(tmp_path / f"{index}.npz")
    whole = dedup.find_duplicates(files, near)
    monkeypatch.setattr(dedup, "PART_DOCUMENTS", 50_000)  # 8 passes, pairs decided 12,500 documents at a time
    parted = dedup.find_duplicates(files, near)
    assert [positions.tolist() for positions in parted[0]] == [positions.tolist() for positions in whole[0]]
    assert parted[1] == whole[1] and whole[1][1]["documents_out"] < whole[1][0]["documents_out"] < 400_000
    # the 9 bands' keys alone are 72 bytes a document, and at 0.6 the colliding pairs held at once 130
    assert traced_peak(TRACED_DEDUP, json.dumps([list(map(str, files)), near])) < 40 * 400_000


TRACED_DEDUP = """
import json, sys, tracemalloc
from annealscope.curate import dedup
files, near = json.loads(sys.argv[1])
dedup.PART_DOCUMENTS = 50_000
tracemalloc.start()
dedup.find_duplicates(files, near)
print(tracemalloc.get_traced_memory()[1])
"""


def traced_peak(script: str, argument: str) -> int:
    """The peak memory `tracemalloc` traces while `script` runs, in a fresh interpreter as a job runs: inside
    the test process, after the full suite's earlier tests, it traced 25.3 MB where alone it traces 9.9."""
    result = subprocess.run([sys.executable, "-c", script, argument], capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


def test_minhash_agreement_estimates_the_jaccard_similarity_of_token_shingles():
    rng = np.random.default_rng(0)
    minhash, size = MinHasher(256), 5
    for changed in (1, 5, 20, 60, 150):
        first = rng.integers(0, 50_000, 300)
        second = first.copy()
        second[rng.choice(300, changed, replace=False)] = rng.integers(50_000, 60_000, changed)
        sets = [{tuple(ids[i:i + size]) for i in range(len(ids) - size + 1)} for ids in (first, second)]
        jaccard = len(sets[0] & sets[1]) / len(sets[0] | sets[1])
        signatures = minhash(*shingle_hashes([first, second], size))
        assert np.mean(signatures[0] == signatures[1]) == pytest.approx(jaccard, abs=0.1), changed


def test_a_documents_signature_does_not_depend_on_its_neighbours_in_the_batch():
    minhash = MinHasher(32)
    documents = [np.array([7, 8, 9, 10, 11, 12], np.uint32), np.array([], np.uint32), np.array([5, 6], np.uint32),
                 np.array([9, 10, 11], np.uint32)]
    together = minhash(*shingle_hashes(documents, 4))
    alone = np.vstack([minhash(*shingle_hashes([document], 4)) for document in documents])
    np.testing.assert_array_equal(together, alone)
    assert len({row.tobytes() for row in together}) == 4  # short and empty documents sign as themselves


def test_a_near_duplicate_pair_split_over_two_shards_keeps_the_first(tmp_path, tiny_base, tasks):
    text = "the quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat by the door " * 3
    write_jsonl(tmp_path / "a.jsonl", [{"text": text}, {"text": "a different document about prime numbers " * 3}])
    write_jsonl(tmp_path / "b.jsonl", [{"text": text.replace("fox", "wolf", 1)}])
    settings = given([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")],
                     {"bytes": (tmp_path / "a.jsonl").stat().st_size})  # a file a shard
    assert len(source_shards(settings)) == 2
    manifest = curate("mine", settings, tiny_base, tasks, tmp_path / "out")
    assert [shard["documents"] for shard in manifest["shards"]] == [2, 0]
    assert manifest["steps"][2]["step"] == "near_dedup" and manifest["duplicate_rate"] == pytest.approx(1 / 3)


def test_a_source_curated_in_shards_has_the_manifest_and_tokens_of_one_curated_whole(tmp_path, tiny_base, tasks,
                                                                                    monkeypatch):
    item = "What is the value of seven times eight when both are multiplied together in a product"
    documents = [*pool(900, seed=4), {"text": f"Leaked: {item} 56. More words follow here."}, {"text": "tiny"}]
    write_jsonl(tmp_path / "pool.jsonl", documents)
    settings = given([str(tmp_path / "pool.jsonl")], heuristics=at_least(2))
    whole = curate("mine", settings, tiny_base, tasks, tmp_path / "whole")
    monkeypatch.setattr(dedup, "PART_DOCUMENTS", 128)  # the sharded source's dedup sorts in 8 passes
    stale = tmp_path / "sharded" / "dedup-scratch" / "band0.3"  # as a killed dedup job leaves it
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"\0" * 16)
    hashed = []
    monkeypatch.setattr(corpora, "file_sha256", lambda path, digest=corpora.file_sha256: hashed.append(path) or
                        digest(path))
    sharded = curate("mine", {**settings, "sharding": {**SHARDING, "bytes": 20_000}}, tiny_base, tasks,
                     tmp_path / "sharded")
    assert len(sharded["shards"]) > 5 and len(whole["shards"]) == 1
    assert hashed == [tmp_path / "pool.jsonl"]  # once in all: by the shard job reading its first bytes
    assert not stale.parent.exists()
    ignore = {"shards", "seconds", "steps"}
    assert {key: value for key, value in sharded.items() if key not in ignore} == \
        {key: value for key, value in whole.items() if key not in ignore}
    strip = [{key: value for key, value in step.items() if key != "seconds"} for step in whole["steps"]]
    assert [{key: value for key, value in step.items() if key != "seconds"} for step in sharded["steps"]] == strip
    assert [step["step"] for step in whole["steps"]] == ["read", "heuristics", "exact_dedup", "near_dedup",
                                                          "decontaminate"]
    assert strip[1]["removed_by"] == {"gopher_quality": {"gopher_short_doc": 1}}
    assert strip[-1]["removed_by_task"] == {"quiz": 1}
    assert 0 < whole["duplicate_rate"] < 0.3 and whole["diversity"]["distinct_exact"]
    assert documents_of(tmp_path / "sharded") == documents_of(tmp_path / "whole")
    stream = TokenArray.open(tmp_path / "sharded" / "index.json")
    one = TokenArray.open(tmp_path / "whole" / "index.json")
    assert stream.size == one.size == whole["token_array"]["tokens"]
    np.testing.assert_array_equal(np.concatenate([stream.window(index, 61) for index in range(stream.windows(61))]),
                                  one.window(0, 61 * one.windows(61)))
    write_tokens((document["text"] for document in documents_of(tmp_path / "whole")), tiny_base,
                 tmp_path / "afresh.bin", "afresh")  # the ids copied on from the read equal encoding what trains
    np.testing.assert_array_equal(TokenArray.open(tmp_path / "afresh.bin").window(0, one.size), one.window(0, one.size))


def test_diversity_sketches_are_exact_when_small_and_estimate_within_a_percent_when_large(monkeypatch):
    rng = random.Random(5)
    texts = [" ".join(f"w{rng.randrange(20000)}" for _ in range(rng.randint(5, 60))) for _ in range(1500)]
    truth = {n: len({gram for text in texts for gram in ngrams(words(text), n)}) /
             sum(max(len(words(text)) - n + 1, 0) for text in texts) for n in diversity.ORDERS}
    halves = [diversity.Diversity(), diversity.Diversity()]
    for index, text in enumerate(texts):
        halves[index % 2].add(HashedWords.of([text]), [1])
    merged = diversity.merged_description([half.arrays() for half in halves])
    assert merged["distinct_exact"]
    assert {n: merged[f"distinct_{n}"] for n in diversity.ORDERS} == pytest.approx(truth, rel=1e-9)
    monkeypatch.setattr(diversity, "EXACT_LIMIT", 2000)  # past it, a HyperLogLog
    halves = [diversity.Diversity(), diversity.Diversity()]
    for index, text in enumerate(texts):
        halves[index % 2].add(HashedWords.of([text]), [1])
    merged = diversity.merged_description([half.arrays() for half in halves])
    assert not merged["distinct_exact"]
    assert {n: merged[f"distinct_{n}"] for n in diversity.ORDERS} == pytest.approx(truth, rel=0.015)


def test_a_shard_of_a_token_capped_hub_reference_encodes_each_text_once(tmp_path, tiny_base, monkeypatch):
    """The cap counts tokens with the shard's own encoder, whose ids the documents then take: 8 rows in 2 parts
    of a 60-token cap, each encoded by the tokenizer once (before, what was read was encoded again for its
    ids)."""
    from annealscope.core import tokens
    from annealscope.core.corpora import dataset_slug
    from annealscope.curate import tokenize
    from annealscope.fetch.dataset import fetch_dataset

    reference = HUB + "&max_tokens=60"
    fetch_dataset(reference, tmp_path / "datasets" / dataset_slug(reference))
    settings = given([reference], {"tokens": 30})
    encoded, load = [], tokens.backend_tokenizer

    class Counted:
        """The backend tokenizer, recording every text it encodes."""

        def __init__(self, directory):
            self.backend = load(directory)

        def encode_batch_fast(self, texts, **options):
            encoded.extend(texts)
            return self.backend.encode_batch_fast(texts, **options)

        def __getattr__(self, name):
            return getattr(self.backend, name)

    monkeypatch.setattr(tokens, "backend_tokenizer", Counted)
    monkeypatch.setattr(tokenize, "backend_tokenizer", Counted)
    read, out = [], tmp_path / "out"
    for index, pieces in enumerate(source_shards(settings)):
        filter_shard("capped", settings, index, pieces, tiny_base, out / f"{index}.jsonl", out / f"{index}.bin",
                     out / f"{index}.npz", out / f"{index}.json", cache_dir=tmp_path)
        read += [json.loads(line)["text"] for line in (out / f"{index}.jsonl").read_text().splitlines()]
    assert index == 1 and 2 <= len(read) < 8
    assert len(encoded) == len(set(encoded)) == 8 and set(read) < set(encoded)  # the parts counted all 8 rows


def test_an_unreadable_shard_fails_its_own_job_naming_source_shard_and_step(tmp_path, tiny_base):
    write_jsonl(tmp_path / "good.jsonl", pool(20))
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    settings = given([str(tmp_path / "good.jsonl"), str(tmp_path / "bad.jsonl.gz")],
                     {"bytes": (tmp_path / "good.jsonl").stat().st_size})
    shards = source_shards(settings)
    out = tmp_path / "out"
    filter_shard("mine", settings, 0, shards[0], tiny_base, out / "0.jsonl", out / "0.ids.bin", out / "0.npz",
                 out / "0.json")
    with pytest.raises(CurationError, match=r"source mine, shard 1 \(.*bad\.jsonl\.gz\), step read: .*cannot read"):
        filter_shard("mine", settings, 1, shards[1], tiny_base, out / "1.jsonl", out / "1.ids.bin", out / "1.npz",
                     out / "1.json")
    assert sorted(path.name for path in out.iterdir()) == ["0.ids.bin", "0.ids.json", "0.json", "0.jsonl",
                                                           "0.npz"]  # nothing half-written


def test_a_source_that_a_step_empties_fails_naming_the_step(tmp_path, tiny_base, tasks):
    write_jsonl(tmp_path / "corpus.jsonl", [{"text": "one two"}, {"text": "three four"}])
    settings = given([str(tmp_path / "corpus.jsonl")], heuristics=at_least(50))
    with pytest.raises(CurationError, match=r"source mine, step heuristics: no documents left \(of 2 in all its "
                       r"shards; gopher_quality's gopher_short_doc removed 2\); loosen"):
        curate("mine", settings, tiny_base, tasks, tmp_path / "out")
    assert not (tmp_path / "out" / "duplicates.npz").exists()
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(CurationError, match="source mine, step read: no documents left"):
        curate("mine", given([str(tmp_path / "blank.jsonl")]), tiny_base, tasks, tmp_path / "blank")


def test_a_template_error_stops_its_shard_naming_source_shard_and_step(tmp_path, tiny_base):
    template = tmp_path / "broken.jinja"
    template.write_text("{{ document }} {% if %}")
    generator = {"kind": "teacher", "backend": "openai", "model": "tiny", "base_url": "http://127.0.0.1:9/v1",
                 "parameters": 1e5, "template": str(template), "prompts": 4, "shard_prompts": 2, "params": {},
                 "seed": 0}
    settings = {**given([]), "curation": "synthesize", "generator": generator}
    shards = source_shards(settings)
    with pytest.raises(CurationError, match=r"source qa, shard 1 \(prompts 2\.\.3\), step generate: prompt template"):
        filter_shard("qa", settings, 1, shards[1], tiny_base, tmp_path / "d.jsonl", tmp_path / "d.bin",
                     tmp_path / "s.npz", tmp_path / "s.json")
    assert not list(tmp_path.glob("d.*")) and not (tmp_path / "work").exists()


def test_each_teacher_shard_sees_its_own_slice_of_the_shuffled_seeds():
    settings = {"prompts": 7, "seed": 3, "seed_corpus": [HUB]}
    whole = teacher_seeds(settings, None, None, 0, 7)
    assert len(set(whole)) == 7
    assert teacher_seeds(settings, None, None, 0, 3) + teacher_seeds(settings, None, None, 3, 4) == whole


def test_a_shard_jobs_memory_does_not_grow_with_its_documents(tmp_path, tiny_base, monkeypatch):
    """Peak traced memory of a shard job over 4× the documents (24 batches against 6) stays within 1.3×, after
    a warm-up run that fills the caches of imports and the tokenizer."""
    monkeypatch.setattr(pipeline, "BATCH", 200)
    peaks = []
    for count in (300, 1200, 4800):
        write_jsonl(tmp_path / f"{count}.jsonl", pool(count, seed=count))
        settings = given([str(tmp_path / f"{count}.jsonl")], heuristics=at_least(5))
        out = tmp_path / str(count)
        tracemalloc.start()
        filter_shard("mine", settings, 0, source_shards(settings)[0], tiny_base, out / "f.jsonl", out / "f.bin",
                     out / "s.npz", out / "s.json")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[2] < 1.3 * peaks[1], peaks


def test_the_replay_corpus_tokenized_in_shard_jobs_streams_what_one_job_tokenizing_it_whole_wrote(tmp_path,
                                                                                                  tiny_base):
    """Replay from a local file three shards long (split at byte offsets), a hub reference capped at 5 rows (3
    parts of 2, 2 and 1) and a built-in corpus: tokenized shard by shard and indexed, it streams exactly the
    tokens of the whole corpus read and tokenized at once."""
    from annealscope.core.corpora import dataset_slug, read_corpora
    from annealscope.fetch.dataset import fetch_dataset

    write_jsonl(tmp_path / "web.jsonl", pool(300))
    capped = HUB + "&max_documents=5"
    fetch_dataset(capped, tmp_path / "datasets" / dataset_slug(capped))
    references = [str(tmp_path / "web.jsonl"), capped, "pydoc:topics"]
    sharding = {**SHARDING, "bytes": (tmp_path / "web.jsonl").stat().st_size // 3 + 1, "documents": 2}
    replay = {"corpus": references, "fraction": 0.5, "sharding": sharding}
    shards = replay_shards({"run": "test", "replay": replay})
    assert [len(shard) for shard in shards] == [1, 1, 1, 1, 1, 1, 1] and shards[-1] == [{"reference": "pydoc:topics"}]
    bins = [tmp_path / "replay" / f"shard{index}.bin" for index in range(len(shards))]
    metas = [tokenize_pieces(pieces, tiny_base, out, tmp_path) for pieces, out in zip(shards, bins, strict=True)]
    assert [meta["documents"] for meta in metas[3:6]] == [2, 2, 1]
    write_token_index(tmp_path / "replay.json", bins)
    write_tokens((document.text for document in read_corpora(references, tmp_path)), tiny_base,
                 tmp_path / "whole.bin", "whole")
    sharded, whole = TokenArray.open(tmp_path / "replay.json"), TokenArray.open(tmp_path / "whole.bin")
    assert sharded.size == whole.size > 0
    assert np.array_equal(sharded.window(0, sharded.size), whole.window(0, whole.size))
    assert replay_shards({"run": "test", "replay": {**replay, "fraction": 0}}) == []
    (tmp_path / "empty.jsonl").touch()
    empty_corpus = {"run": "test", "replay": {**replay, "corpus": [str(tmp_path / "empty.jsonl")]}}
    empty = tokenize_pieces(replay_shards(empty_corpus)[0], tiny_base, tmp_path / "empty.bin")
    assert empty["tokens"] == 0
    with pytest.raises(ValueError, match="hold no tokens"):
        write_token_index(tmp_path / "empty-index.json", [tmp_path / "empty.bin"])
    assert not (tmp_path / "empty-index.json").exists()


def test_a_token_index_reads_shards_as_one_stream_across_boundaries(tmp_path):
    arrays = [np.arange(0, 10, dtype=np.uint16), np.zeros(0, dtype=np.uint16), np.arange(10, 33, dtype=np.uint16)]
    paths = []
    for index, array in enumerate(arrays):
        array.tofile(tmp_path / f"{index}.bin")
        (tmp_path / f"{index}.json").write_text(json.dumps({"dtype": "uint16", "tokens": len(array), "documents": 1,
                                                             "vocab_size": 100, "eos_token_id": 0}))
        paths.append(tmp_path / f"{index}.bin")
    write_token_index(tmp_path / "index.json", paths)
    (tmp_path / "1.bin").unlink()  # an empty shard's array need not exist
    stream = TokenArray.open(tmp_path / "index.json")
    assert stream.size == 33 and stream.windows(8) == 4
    assert [stream.window(index, 8).tolist() for index in range(4)] == [list(range(8 * i, 8 * i + 8)) for i in range(4)]


def test_a_source_of_more_shards_than_its_job_may_open_files_dedups_merges_and_streams(tmp_path, monkeypatch):
    """200 shards and 40 files allowed open, as a cluster's limit of 1,024 against a source of thousands of
    shards: the dedup decision (in 10 passes and ranges of 16 documents), the manifest's merge of the diversity
    sketches and the training stream each hold no shard's file open past its read, and give what they give
    without the limit."""
    near, shards = {"threshold": 0.8, "num_perm": 64, "shingle": 3}, 200
    texts = [document["text"] for document in pool(3 * shards, seed=5)]
    signatures, sketches, arrays = [], [], []
    for shard in range(shards):
        signer, sketch = Signer(near), diversity.Diversity()
        signer.add(signed(texts[3 * shard:3 * shard + 3]))
        signer.save(tmp_path / f"{shard}.npz")
        sketch.add(HashedWords.of(texts[3 * shard:3 * shard + 3]), [1, 1, 1])
        np.savez(tmp_path / f"{shard}.sketch.npz", **sketch.arrays())
        np.arange(10 * shard, 10 * shard + 10, dtype=np.uint16).tofile(tmp_path / f"{shard}.bin")
        (tmp_path / f"{shard}.json").write_text(json.dumps({"dtype": "uint16", "tokens": 10, "documents": 1,
                                                            "vocab_size": 65536, "eos_token_id": 0}))
        signatures.append(tmp_path / f"{shard}.npz")
        sketches.append(tmp_path / f"{shard}.sketch.npz")
        arrays.append(tmp_path / f"{shard}.bin")
    write_token_index(tmp_path / "index.json", arrays)
    monkeypatch.setattr(dedup, "PART_DOCUMENTS", 64)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    unlimited = find_duplicates(signatures, near, scratch=scratch)
    with few_open_files(40):
        drop, records = find_duplicates(signatures, near, scratch=scratch)
        merged = diversity.merged_description(diversity.saved_sketches(sketches))
        stream = TokenArray.open(tmp_path / "index.json")
        windows = [stream.window(index, 7).tolist() for index in range(stream.windows(7))]
    assert [positions.tolist() for positions in drop] == [positions.tolist() for positions in unlimited[0]]
    assert records == unlimited[1] and records[1]["documents_out"] < records[0]["documents_out"] < 3 * shards
    assert merged == diversity.merged_description(diversity.saved_sketches(sketches)) and merged["distinct_exact"]
    assert windows == [list(range(7 * index, 7 * index + 7)) for index in range(10 * shards // 7)]


def test_a_shard_encoder_encodes_a_repeat_only_once_it_is_forgotten_and_holds_at_most_its_limit(tiny_base):
    encode = TokenEncoder(tiny_base)
    rng = random.Random(0)
    distinct = [" ".join(rng.choices(["alpha", "beta", "gamma", "delta", "x"], k=rng.randint(1, 30)))
                for _ in range(300)]
    texts = [rng.choice(distinct[max(0, index - 40):index + 1]) for index in range(len(distinct))] * 2
    expected = [ids.tolist() for ids in encode(texts)]
    for limit in (10**6, 500):  # 500: far fewer ids than the texts hold, so old ones are forgotten
        encoded: list[str] = []
        shard = ShardEncoder(lambda batch, encoded=encoded: encoded.extend(batch) or encode(batch), limit=limit)
        documents = [document for start in range(0, len(texts), 64)
                     for document in shard([{"text": text} for text in texts[start:start + 64]])]
        assert [document["ids"].tolist() for document in documents] == expected
        assert [document["tokens"] for document in documents] == list(map(len, expected))
        assert [document["key"] for document in documents] == list(map(exact_key, texts))
        assert shard.held == sum(map(len, shard.recent.values())) <= limit
        assert len(set(texts)) == len(set(encoded)) <= len(encoded) < len(texts)
        assert len(encoded) == len(set(texts)) if limit > 500 else len(encoded) > len(set(texts))


def test_filtered_token_ids_read_back_only_with_their_documents_counts(tmp_path, tiny_base):
    texts = ["one two three", "four five", "six"]
    write_tokens(texts, tiny_base, tmp_path / "ids.bin", "ids")
    counts = [len(ids) for ids in TokenEncoder(tiny_base)(texts)]
    with TokenRanges(tmp_path / "ids.bin") as ranges:
        assert [ids.tolist() for ids in ranges.take(counts[:2]) + ranges.take(counts[2:])] == \
            [ids.tolist() for ids in TokenEncoder(tiny_base)(texts)]
    with pytest.raises(ValueError, match="do not match its documents' token counts"), \
            TokenRanges(tmp_path / "ids.bin") as ranges:
        ranges.take([counts[0] + 1, counts[1] - 1, counts[2]])
    with pytest.raises(ValueError, match="more token ids than its documents hold"), \
            TokenRanges(tmp_path / "ids.bin") as ranges:
        ranges.take(counts[:2])
