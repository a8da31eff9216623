"""Curation of one source in shard jobs (docs/design.md, "Curation at scale"):

1. `filter_shard`, per shard: acquire its documents (generate, or read its pieces), apply the heuristics and
   the classifier, and sign what is kept for deduplication; streamed a batch at a time.
2. `dedup_source`, once per source: which documents repeat an earlier one, exactly or nearly
   (annealscope.curate.dedup), from the signatures alone.
3. `finish_shard`, per shard: drop its duplicates, decontaminate, write its documents and their token array,
   and sketch its diversity.
4. `write_manifest`, once per source: the shards' statistics added up into the manifest, and the source's
   token index (its shards' arrays, in order, read by training as one stream).

Every step records documents and tokens in and out; an error names the source, the shard and the step; a
source that some step leaves empty fails naming that step.
"""

from __future__ import annotations

import itertools
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from annealscope import __version__
from annealscope.core.corpora import TokenCounter, describe_reference, piece_hashes, read_corpora, read_piece
from annealscope.core.flops import classifier_flops
from annealscope.core.io import atomic_path, json_line, read_json, read_jsonl, write_json
from annealscope.core.layout import DECONTAMINATION_TEXTS
from annealscope.core.references import acquisition_kind, source_corpus_references
from annealscope.core.settings import job_threads
from annealscope.core.shards import describe_piece
from annealscope.core.tokens import backend_counter, write_token_index
from annealscope.curate.classifiers import load_classifier
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.dedup import Signer, find_duplicates
from annealscope.curate.diversity import Diversity, merged_description, saved_sketches
from annealscope.curate.synthesize import program_documents, teacher_documents
from annealscope.curate.text import HashedWords
from annealscope.curate.tokenize import ShardEncoder, TokenEncoder, TokenRanges, token_array, use_threads

if TYPE_CHECKING:
    from annealscope.curate.heuristics import Heuristics

BATCH = 1024  # documents held at once by a shard job's streaming steps


class CurationError(ValueError):
    """A curation step failed; the message names the source, the shard and the step."""


def eval_items(tasks_dir: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    """(task, doc id, text) of every prepared evaluation item by configured task: question plus gold answer of a
    local task's items, every held-out document, and every lm-eval task's documents as lm-eval builds them
    (`annealscope.evaluate.contamination`), under the subtask and doc id lm-eval scores them by (for texts
    written before those were recorded: the configured name and the place)."""
    paths = [*sorted(Path(tasks_dir).glob("*.jsonl")), *sorted(Path(tasks_dir, DECONTAMINATION_TEXTS).glob("*.jsonl"))]
    return {path.stem: [(item.get("task", path.stem), str(item.get("doc_id", place)), _item_text(item))
                        for place, item in enumerate(read_jsonl(path))] for path in paths}


def _item_text(item: dict) -> str:
    return item["text"] if "text" in item else f"{item['question']} {item['choices'][item['gold']]}"


def eval_item_texts(tasks_dir: str | Path) -> dict[str, list[str]]:
    """The texts of `eval_items`, by configured task."""
    return {name: [text for *_, text in items] for name, items in eval_items(tasks_dir).items()}


class Steps:
    """A shard's step log: documents and tokens in and out of each step, summed over batches, and what each
    step reports (counts in nested dicts add up)."""

    def __init__(self, where: str):
        self.where = where
        self.records: dict[str, dict] = {}

    def add(self, name: str, before: list[dict], after: list[dict], seconds: float, details: dict | None = None
            ) -> None:
        record = self.records.setdefault(name, {"step": name, "documents_in": 0, "documents_out": 0,
                                                "tokens_in": 0, "tokens_out": 0, "seconds": 0.0})
        record["documents_in"] += len(before)
        record["documents_out"] += len(after)
        record["tokens_in"] += sum(document["tokens"] for document in before)
        record["tokens_out"] += sum(document["tokens"] for document in after)
        record["seconds"] += seconds
        for key, value in (details or {}).items():
            record[key] = add_counts(record.get(key), value)

    def run(self, name: str, action, *arguments):
        """Call `action`, naming the source, shard and step in any error."""
        try:
            return action(*arguments)
        except (ValueError, OSError, RuntimeError) as error:
            if isinstance(error, CurationError):
                raise
            raise CurationError(f"{self.where}, step {name}: {error}") from error

    def list(self) -> list[dict]:
        return [{**record, "seconds": round(record["seconds"], 3)} for record in self.records.values()]


def add_counts(total, value):
    """Add counts, including dicts of counts (removals per rule or per task); anything else is kept as is."""
    if isinstance(value, dict):
        total = dict(total or {})
        for key, count in value.items():
            total[key] = add_counts(total.get(key), count)
        return total
    if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(total, int | float):
        return total + value
    return value if total is None else total


def batched(documents: Iterable[dict], size: int = BATCH) -> Iterator[list[dict]]:
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


# 1. A shard's acquisition, heuristics, classifier and signatures.

def filter_shard(name: str, settings: dict, shard: int, pieces: list[dict], tokenizer_dir: str | Path,
                 documents_path: str | Path, tokens_path: str | Path, signatures_path: str | Path,
                 stats_path: str | Path,
                 cache_dir: str | Path | None = None, work_dir: str | Path | None = None,
                 classifier_dir: str | Path | None = None) -> dict:
    """Acquire shard `shard` of source `name`, keep what its heuristics and classifier pass, and write the kept
    documents, their token ids (encoded once, here), their signatures and the shard's statistics (each
    atomically)."""
    from annealscope.curate.heuristics import Heuristics  # datatrove: only the jobs that filter import it

    started = time.perf_counter()
    where = f"source {name}, shard {shard} ({'; '.join(map(describe_piece, pieces))})"
    steps = Steps(where)
    threads = job_threads()
    if threads > 1:  # the job's cores for the tokenizer too (the CLI leaves it serial by default)
        use_threads(threads)
    encoder = TokenEncoder(tokenizer_dir)
    count = backend_counter(encoder.backend)  # the tokenizer loaded once
    encode = ShardEncoder(encoder)
    kind = acquisition_kind(settings)
    classifier = steps.run("classify", load_classifier, settings["classifier"], classifier_dir) \
        if kind == "filter" else None
    signer = Signer(settings["near_dedup"])
    rules = Heuristics.build(settings["heuristics"])
    acquisition: dict = {}
    first_step = "read" if kind in ("filter", "given") else "generate"
    documents = acquire(kind, name, settings, pieces, cache_dir, work_dir, count, encode, steps, acquisition)
    steps.add(first_step, [], [], 0.0)  # recorded even for a shard that holds nothing
    with atomic_path(documents_path) as tmp, open(tmp, "w", encoding="utf-8") as handle, \
            token_array(tokens_path, encoder.meta()) as tokens, \
            tqdm(desc=f"curate {name} shard {shard}", unit="doc", mininterval=5) as progress:
        while True:
            ticked = time.perf_counter()
            batch = steps.run(first_step, lambda: next(documents, None))
            if batch is None:
                break
            steps.add(first_step, [], batch, time.perf_counter() - ticked)
            batch = heuristics(steps, rules, encode, batch)
            if classifier is not None:
                batch = steps.run("classify", classify, steps, settings, classifier, batch, acquisition)
            signer.add(batch)
            tokens.add([document.pop("ids") for document in batch])
            for document in batch:
                del document["key"]
                handle.write(json_line(document))
            progress.update(len(batch))
    signer.save(signatures_path)
    stats = {"source": name, "shard": shard, "pieces": pieces, "steps": steps.list(), "acquisition": acquisition,
             "sha256": piece_hashes(pieces), "seconds": time.perf_counter() - started, "threads": threads}
    write_json(stats_path, stats)
    kept = stats["steps"][-1]["documents_out"] if stats["steps"] else 0
    print(f"{where}: kept {kept:,} documents", flush=True)
    return stats


def acquire(kind: str, name: str, settings: dict, pieces: list[dict], cache_dir, work_dir, count: TokenCounter,
            encode: ShardEncoder, steps: Steps, acquisition: dict) -> Iterator[list[dict]]:
    """The shard's documents in batches, each with its token ids; what acquiring cost goes in `acquisition`."""
    if kind in ("filter", "given"):  # a capped piece counts through `encode`, so each text is encoded once
        records = (document.as_record() for piece in pieces for document in read_piece(piece, cache_dir,
                                                                                         encode.count))
        return map(encode, batched(records))
    generated, details = steps.run("generate", GENERATORS[kind], name, settings, pieces[0], cache_dir, work_dir,
                                   count)
    acquisition |= details
    return map(encode, batched(generated))


def _program(name, settings, piece, cache_dir, work_dir, count) -> tuple[list[dict], dict]:
    """Documents [first, first + count) of the program: the first shard draws from the generator's seed (so a
    one-shard source is what it always was), shard k from its own stream."""
    generator = settings["generator"]
    first, number = piece["program"]
    shard = first // settings["sharding"]["documents"]
    seed = generator["seed"] if shard == 0 else f"{generator['seed']}/{shard}"
    documents, details = program_documents(number, seed)
    return [{**document, "id": f"program/{first + index}"} for index, document in enumerate(documents)], details


def _teacher(name, settings, piece, cache_dir, work_dir, count) -> tuple[list[dict], dict]:
    generator = settings["generator"]
    first, number = piece["prompts"]
    seeds = teacher_seeds(generator, cache_dir, count, first, number)
    return teacher_documents(generator, seeds, name, work_dir, first)


GENERATORS = {"program": _program, "teacher": _teacher}


def teacher_seeds(settings: dict, cache_dir, count: TokenCounter, first: int, number: int) -> list[str]:
    """The seed documents of prompts [first, first + number): program problems, or documents of the configured
    corpora in a shuffled order. Only indices are shuffled, so a shard holds only its own seeds."""
    prompts = settings["prompts"]
    if settings.get("seed_corpus"):
        total = sum(1 for _ in read_corpora(settings["seed_corpus"], cache_dir, count))
        order = list(range(total))
        random.Random(settings["seed"]).shuffle(order)
        wanted = {index: position for position, index in enumerate(order[:prompts][first:first + number])}
        seeds = [None] * len(wanted)
        for index, document in enumerate(read_corpora(settings["seed_corpus"], cache_dir, count)):
            if index in wanted:
                seeds[wanted[index]] = document.text
        return seeds
    documents, _ = program_documents(prompts, seed=settings["seed"] + 1)
    return [document["text"] for document in documents[first:first + number]]


def heuristics(steps: Steps, rules: Heuristics, encode: ShardEncoder, documents: list[dict]) -> list[dict]:
    """The configured heuristic filters as a step, when any is on; a document whose text a filter shortened
    is encoded again."""
    if not rules.filters:
        return documents
    started = time.perf_counter()
    kept, removed = steps.run("heuristics", rules.apply, documents)
    encode([document for document in kept if "tokens" not in document])
    steps.add("heuristics", documents, kept, time.perf_counter() - started, {"removed_by": removed})
    return kept


def classify(steps: Steps, settings: dict, classifier, documents: list[dict], acquisition: dict) -> list[dict]:
    """Score a batch; keep those at or above the threshold; add what scanning it cost to `acquisition`."""
    started = time.perf_counter()
    values, scanned = classifier.score([document["text"] for document in documents])
    seconds = time.perf_counter() - started
    kept = [{**document, "score": float(score)} for document, score in zip(documents, values, strict=True)
            if score >= settings["threshold"]]
    steps.add("classify", documents, kept, seconds)
    scanned = sum(document["tokens"] for document in documents) if scanned is None else scanned
    positive = set(settings["classifier"].get("positive_labels", []))
    labelled = [document for document in kept if document.get("label") in classifier.seed_labels]
    totals = {"pool_documents": len(documents), "scanned_tokens": scanned, "kept_documents": len(kept),
              "pool_tokens": sum(document["tokens"] for document in documents),
              "kept_tokens": sum(document["tokens"] for document in kept), "classify_seconds": seconds,
              "kept_labelled": len(labelled),
              "kept_labelled_positive": sum(document["label"] in positive for document in labelled)}
    acquisition |= {**classifier.description, "threshold": settings["threshold"],
                    "flops_per_token": classifier.flops_per_token,
                    **{key: acquisition.get(key, 0) + value for key, value in totals.items()}}
    return kept


# 2. Deduplication across the source.

def dedup_source(name: str, settings: dict, stats_paths: list[str | Path], signature_paths: list[str | Path],
                 duplicates_path: str | Path, out_stats: str | Path) -> dict:
    """Decide which documents of the whole source repeat an earlier one; a source left empty by an earlier step
    fails here, before any later job runs, naming the step."""
    started = time.perf_counter()
    check_not_empty(name, merged_steps([read_json(path)["steps"] for path in stats_paths]))
    scratch = Path(duplicates_path).with_name("dedup-scratch")  # the passes' key files, one band at a time
    shutil.rmtree(scratch, ignore_errors=True)  # what a killed earlier run of this job left
    scratch.mkdir(parents=True)
    try:
        drop, records = find_duplicates(signature_paths, settings["near_dedup"], scratch=scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = round(time.perf_counter() - started, 3)
    records = [{**record, "seconds": seconds} for record in records]
    check_not_empty(name, records)
    with atomic_path(duplicates_path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{f"shard{index}": positions for index, positions in enumerate(drop)})
    write_json(out_stats, {"source": name, "steps": records})
    removed = records[0]["documents_in"] - records[-1]["documents_out"]
    print(f"dedup {name}: {removed:,} of {records[0]['documents_in']:,} documents are duplicates "
          f"({len(stats_paths)} shards)", flush=True)
    return {"steps": records}


def check_not_empty(name: str, records: list[dict]) -> None:
    """A step that left no document in any shard ends the source, naming the step and, for the heuristics, the
    rules that removed most."""
    for record in records:
        if not record["documents_out"]:
            reasons = sorted(((count, f"{rule}'s {reason}") for rule, counts in record.get("removed_by", {}).items()
                              for reason, count in counts.items()), reverse=True)
            removed = "; ".join(f"{reason} removed {count:,}" for count, reason in reasons[:3])
            raise CurationError(f"source {name}, step {record['step']}: no documents left (of "
                                f"{record['documents_in']:,} in all its shards{'; ' + removed if removed else ''}); "
                                "loosen this step's settings or widen its input")


def merged_steps(shard_steps: list[list[dict]]) -> list[dict]:
    """The step records of every shard added up, in step order."""
    merged: dict[str, dict] = {}
    for records in shard_steps:
        for record in records:
            merged[record["step"]] = add_counts(merged.get(record["step"]), record)
    return [{**record, "seconds": round(record["seconds"], 3)} for record in merged.values()]


# 3. A shard's duplicates dropped, decontamination, documents and tokens.

def finish_shard(name: str, settings: dict, shard: int, filtered_path: str | Path, filtered_tokens: str | Path,
                 duplicates_path: str | Path, tasks_dir: str | Path, documents_path: str | Path,
                 tokens_path: str | Path, stats_path: str | Path, diversity_path: str | Path) -> dict:
    """Drop the shard's duplicates, decontaminate the rest against every evaluation task, and write the shard's
    documents, their token array (copied from the filtered ids, not encoded again), statistics and diversity
    sketch."""
    started = time.perf_counter()
    where = f"source {name}, shard {shard}"
    steps = Steps(where)
    with np.load(duplicates_path) as duplicates:
        drop = set(duplicates[f"shard{shard}"].tolist())
    items = eval_item_texts(tasks_dir)
    index = ContaminationIndex(items, n=settings["decontamination_ngram"])
    diversity = Diversity()
    removed: Counter = Counter()
    with atomic_path(documents_path) as tmp, open(tmp, "w", encoding="utf-8") as handle, \
            token_array(tokens_path, read_json(Path(filtered_tokens).with_suffix(".json"))) as tokens, \
            tqdm(desc=f"finish {name} shard {shard}", unit="doc", mininterval=5) as progress, \
            TokenRanges(filtered_tokens) as filtered:  # closed first: ids left over fail before anything is in place
        position = 0
        for batch in batched(read_jsonl(filtered_path)):
            ids = steps.run("tokens", filtered.take, [document["tokens"] for document in batch])
            unique = [{**document, "ids": document_ids}
                      for offset, (document, document_ids) in enumerate(zip(batch, ids, strict=True))
                      if position + offset not in drop]
            position += len(batch)
            ticked = time.perf_counter()
            texts = [document["text"] for document in unique]
            hashed = HashedWords.of(texts)
            tasks = steps.run("decontaminate", index.tasks, texts, hashed)
            kept = [document for document, task in zip(unique, tasks, strict=True) if task is None]
            removed.update(task for task in tasks if task is not None)
            steps.add("decontaminate", unique, kept, time.perf_counter() - ticked)
            diversity.add(hashed.select(np.array([task is None for task in tasks], dtype=bool)),
                          [document["tokens"] for document in kept])
            tokens.add([document.pop("ids") for document in kept])
            for document in kept:
                handle.write(json_line(document))
            progress.update(len(batch))
    meta = tokens.summary()
    if "decontaminate" not in steps.records:  # nothing left after deduplication
        steps.add("decontaminate", [], [], 0.0)
    steps.records["decontaminate"]["removed_by_task"] = {task: removed[task] for task in items}
    with atomic_path(diversity_path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **diversity.arrays())
    stats = {"source": name, "shard": shard, "steps": steps.list(), "tokens": meta["tokens"],
             "seconds": time.perf_counter() - started}
    write_json(stats_path, stats)
    print(f"{where}: {meta['documents']:,} documents, {meta['tokens']:,} tokens after decontamination", flush=True)
    return stats


# 4. The manifest and the token index.

def write_manifest(name: str, settings: dict, filter_stats: list[str | Path], dedup_stats: str | Path,
                   finish_stats: list[str | Path], diversity_paths: list[str | Path], token_paths: list[str | Path],
                   tokenizer_dir: str | Path, manifest_path: str | Path, index_path: str | Path,
                   cache_dir: str | Path | None = None) -> dict:
    """Add the shards' statistics up into the source's manifest (the same fields as a source curated whole),
    and write the token index that training reads; a source left empty fails naming the step."""
    filtered = [read_json(path) for path in filter_stats]
    finished = [read_json(path) for path in finish_stats]
    steps = [*merged_steps([shard["steps"] for shard in filtered]), *read_json(dedup_stats)["steps"],
             *merged_steps([[record for record in shard["steps"] if record["step"] == "decontaminate"]
                            for shard in finished])]
    check_not_empty(name, steps)
    acquisition = merged_acquisition(settings, [shard["acquisition"] for shard in filtered])
    hashes = {path: digest for shard in filtered for path, digest in shard.get("sha256", {}).items()}  # older: none
    steps[-1]["ngram"] = settings["decontamination_ngram"]
    removed = steps[-1]["removed_by_task"]
    before = steps[0]["documents_out"]
    index = write_token_index(index_path, token_paths)
    manifest = {
        "source": name, "curation": settings["curation"], "documents": steps[-1]["documents_out"],
        "tokens": steps[-1]["tokens_out"], "acquisition_flops": acquisition["acquisition_flops"],
        "acquisition_usd": acquisition_dollars(settings, acquisition), "acquisition": acquisition, "steps": steps,
        "duplicate_rate": sum(record["documents_in"] - record["documents_out"] for record in steps
                              if record["step"].endswith("dedup")) / before,
        "contamination_rate": sum(removed.values()) / before,
        "diversity": merged_description(saved_sketches(diversity_paths)),
        "tokenizer": str(tokenizer_dir), "annealscope_version": __version__,
        "provenance": [describe_reference(reference, cache_dir, hashes)
                       for reference in source_corpus_references(settings)],
        "shards": [{"shard": shard["shard"], "pieces": [describe_piece(piece) for piece in shard["pieces"]],
                    "documents": done["steps"][-1]["documents_out"], "tokens": done["tokens"]}
                   for shard, done in zip(filtered, finished, strict=True)],
        "seconds": sum(shard["seconds"] for shard in [*filtered, *finished]),
        "token_array": {"tokens": index["tokens"], "documents": index["documents"]},
    }
    write_json(manifest_path, manifest)
    print(f"curated {name} ({settings['curation']}) in {len(filtered)} shard(s): {manifest['documents']:,} "
          f"documents, {manifest['tokens']:,} tokens, {manifest['acquisition_flops']:.3g} acquisition FLOPs, "
          f"{manifest['duplicate_rate']:.1%} duplicates, {sum(removed.values())} contaminated removed", flush=True)
    return manifest


ADDITIVE = {"pool_documents", "scanned_tokens", "kept_documents", "pool_tokens", "kept_tokens", "classify_seconds",
            "kept_labelled", "kept_labelled_positive", "prompts", "shards", "prompt_tokens", "generated_tokens",
            "kept_generations", "kept_generated_tokens", "generation_seconds", "acquisition_flops", "attempts"}
RATIOS = {"pass_rate": ("kept_tokens", "pool_tokens"), "kept_labelled_precision": ("kept_labelled_positive",
                                                                                  "kept_labelled"),
          "yield": ("kept_generated_tokens", "generated_tokens")}


def merged_acquisition(settings: dict, shards: list[dict]) -> dict:
    """Every shard's acquisition added up: counts, seconds and FLOPs summed, ratios recomputed from their sums,
    the rest (which model, which template) taken from the first shard. A given source costs what it says."""
    merged: dict = {}
    for shard in shards:
        for key, value in shard.items():
            merged[key] = merged.get(key, 0) + value if key in ADDITIVE else merged.get(key, value)
    for ratio, (numerator, denominator) in RATIOS.items():
        if denominator in merged:
            merged[ratio] = merged[numerator] / merged[denominator] if merged[denominator] else None
    kind = acquisition_kind(settings)
    if kind == "given":
        merged["acquisition_flops"] = float(settings["acquisition_flops"])
    elif kind == "filter":
        merged["acquisition_flops"] = classifier_flops(merged["flops_per_token"], merged["scanned_tokens"])
    merged.setdefault("acquisition_flops", 0.0)
    return merged


def acquisition_dollars(settings: dict, acquisition: dict) -> float | None:
    """A fixed `acquisition_usd`, else the `pricing` applied to GPU time and tokens; None if unpriced."""
    if settings.get("acquisition_usd") is not None:
        return float(settings["acquisition_usd"])
    pricing = settings.get("pricing")
    if not pricing:
        return None
    seconds = acquisition.get("generation_seconds", acquisition.get("classify_seconds", 0.0))
    input_tokens = acquisition.get("prompt_tokens", acquisition.get("scanned_tokens", 0))
    return (pricing.get("gpu_hour_usd", 0.0) * pricing.get("gpus", 1) * seconds / 3600
            + pricing.get("usd_per_million_input_tokens", 0.0) * input_tokens / 1e6
            + pricing.get("usd_per_million_output_tokens", 0.0) * acquisition.get("generated_tokens", 0) / 1e6)

