"""Curation of one source: documents plus a manifest of what each step did, what it cost and where the
data came from. Steps run in order (acquire, heuristics, exact and near dedup, decontamination); each
records documents and tokens in and out, and a failing or emptying step is named in the error."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

from annealscope import __version__
from annealscope.core.corpora import TokenCounter, describe_reference, read_corpora
from annealscope.core.io import read_jsonl, write_json, write_jsonl
from annealscope.core.layout import DECONTAMINATION_TEXTS
from annealscope.core.references import acquisition_kind, source_corpus_references
from annealscope.core.tokens import token_counter
from annealscope.curate.decontaminate import ContaminationIndex
from annealscope.curate.dedup import exact_dedup, near_dedup
from annealscope.curate.diversity import describe_documents
from annealscope.curate.filtering import classify_pool
from annealscope.curate.heuristics import apply_heuristics
from annealscope.curate.synthesize import program_documents, teacher_documents


class CurationError(ValueError):
    """A curation step failed; the message names the source and the step."""


def eval_item_texts(tasks_dir: str | Path) -> dict[str, list[str]]:
    """Question plus gold answer of every prepared evaluation item, every held-out document, and every lm-eval
    task's documents as lm-eval builds them (`annealscope.evaluate.contamination`), by task."""
    texts = {}
    for path in sorted(Path(tasks_dir).glob("*.jsonl")):
        texts[path.stem] = [item["text"] if "text" in item else f"{item['question']} {item['choices'][item['gold']]}"
                            for item in read_jsonl(path)]
    for path in sorted(Path(tasks_dir, DECONTAMINATION_TEXTS).glob("*.jsonl")):
        texts[path.stem] = [item["text"] for item in read_jsonl(path)]
    return texts


Action = Callable[[list[dict]], tuple[list[dict], dict]]


class Steps:
    """The manifest's step log: documents and tokens in and out of each step, and what it reports."""

    def __init__(self, source: str):
        self.source = source
        self.records: list[dict] = []

    def run(self, name: str, documents: list[dict], action: Action, record_details: bool = True
            ) -> tuple[list[dict], dict]:
        """Apply `action` to `documents`; an error, or no documents left, is a CurationError naming the step."""
        started = time.perf_counter()
        try:
            kept, details = action(documents)
        except (ValueError, OSError, RuntimeError) as error:
            if isinstance(error, CurationError):
                raise
            raise CurationError(f"source {self.source}, step {name}: {error}") from error
        self.records.append({"step": name, "documents_in": len(documents), "documents_out": len(kept),
                             "tokens_in": sum(document.get("tokens", 0) for document in documents),
                             "tokens_out": sum(document.get("tokens", 0) for document in kept),
                             "seconds": round(time.perf_counter() - started, 3),
                             **(details if record_details else {})})
        if not kept:
            raise CurationError(f"source {self.source}, step {name}: no documents left (of {len(documents)}); "
                                "loosen this step's settings or widen its input")
        return kept, details


def acquire(name: str, settings: dict, steps: Steps, count: TokenCounter, cache_dir, work_dir
            ) -> tuple[list[dict], dict]:
    """The source's raw documents by acquisition kind, each with its token count, and what acquiring cost."""
    return ACQUIRERS[acquisition_kind(settings)](name, settings, steps, count, cache_dir, work_dir)


def _program(name, settings, steps, count, cache_dir, work_dir) -> tuple[list[dict], dict]:
    generator = settings["generator"]
    return steps.run("generate", [], lambda _: counted(program_documents(generator["documents"], generator["seed"]),
                                                       count), record_details=False)


def _teacher(name, settings, steps, count, cache_dir, work_dir) -> tuple[list[dict], dict]:
    generator = settings["generator"]
    return steps.run("generate", [], lambda _: counted(teacher_documents(
        generator, teacher_seeds(generator, cache_dir, count), name, work_dir), count), record_details=False)


def _filter(name, settings, steps, count, cache_dir, work_dir) -> tuple[list[dict], dict]:
    documents, _ = steps.run("read", [], lambda _: (read_records(settings["pool"], cache_dir, count), {}))
    documents = heuristics(steps, settings, documents)
    return steps.run("classify", documents, lambda docs: classify_pool(settings, docs, cache_dir),
                     record_details=False)


def _given(name, settings, steps, count, cache_dir, work_dir) -> tuple[list[dict], dict]:
    documents, _ = steps.run("read", [], lambda _: (read_records(settings["corpus"], cache_dir, count), {}))
    return documents, {"acquisition_flops": float(settings["acquisition_flops"])}


ACQUIRERS = {"program": _program, "teacher": _teacher, "filter": _filter, "given": _given}


def heuristics(steps: Steps, settings: dict, documents: list[dict]) -> list[dict]:
    """The configured heuristic rules as a step, when any is set."""
    if not any(limit is not None for limit in settings["heuristics"].values()):
        return documents

    def apply_rules(documents: list[dict]) -> tuple[list[dict], dict]:
        kept, removed = apply_heuristics(documents, settings["heuristics"])
        return kept, {"removed_by_rule": removed}

    return steps.run("heuristics", documents, apply_rules)[0]


def read_records(references: list[str], cache_dir, count: TokenCounter) -> list[dict]:
    return counted(([document.as_record() for document in read_corpora(references, cache_dir, count)], {}), count)[0]


def counted(result: tuple[list[dict], dict], count: TokenCounter) -> tuple[list[dict], dict]:
    """`result` with each document's token count added as `tokens`."""
    documents, details = result
    for document, tokens in zip(documents, count([document["text"] for document in documents]), strict=True):
        document["tokens"] = tokens
    return documents, details


def teacher_seeds(settings: dict, cache_dir, count: TokenCounter) -> list[str]:
    """The seed document each prompt sees: program problems, or documents of configured corpora."""
    number = settings["prompts"]
    if settings.get("seed_corpus"):
        documents = [document.text for document in read_corpora(settings["seed_corpus"], cache_dir, count)]
        random.Random(settings["seed"]).shuffle(documents)
        return documents[:number]
    documents, _ = program_documents(number, seed=settings["seed"] + 1)
    return [document["text"] for document in documents]


def decontaminate(index: ContaminationIndex, documents: list[dict], items: dict) -> tuple[list[dict], dict]:
    kept, removed = index.filter(documents)
    return kept, {"ngram": index.n, "removed_by_task": {task: removed[task] for task in items}}


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


def curate_source(name: str, settings: dict, tokenizer_dir: str | Path, tasks_dir: str | Path,
                  documents_path: str | Path, manifest_path: str | Path, cache_dir: str | Path | None = None,
                  work_dir: str | Path | None = None) -> dict:
    """Curate source `name` by its kind, then filter, deduplicate and decontaminate; write both files."""
    started = time.perf_counter()
    count = token_counter(tokenizer_dir)
    curation = settings["curation"]
    if acquisition_kind(settings) not in ACQUIRERS:
        raise CurationError(f"sources.{name}: unknown curation {curation!r} (generator kind); use one of "
                            f"{sorted(ACQUIRERS)}")
    steps = Steps(name)
    work_dir = Path(work_dir or Path(documents_path).parent / "work")
    documents, acquisition = acquire(name, settings, steps, count, cache_dir, work_dir)
    if curation != "filter":  # a filtered source applies them before its classifier
        documents = heuristics(steps, settings, documents)
    documents, _ = steps.run("exact_dedup", documents, lambda docs: (exact_dedup(docs), {}))
    if near := settings["near_dedup"]:
        documents, _ = steps.run("near_dedup", documents, lambda docs: (
            near_dedup(docs, near["threshold"], near["num_perm"], near["shingle"]), {"settings": near}))
    items = eval_item_texts(tasks_dir)
    index = ContaminationIndex(items, n=settings["decontamination_ngram"])
    documents, contamination = steps.run("decontaminate", documents, lambda docs: decontaminate(index, docs, items))
    removed = contamination["removed_by_task"]
    write_jsonl(documents_path, documents)
    before = steps.records[0]["documents_out"]
    texts, token_counts = [document["text"] for document in documents], [document["tokens"] for document in documents]
    manifest = {
        "source": name, "curation": curation, "documents": len(documents), "tokens": int(sum(token_counts)),
        "acquisition_flops": acquisition["acquisition_flops"],
        "acquisition_usd": acquisition_dollars(settings, acquisition), "acquisition": acquisition,
        "steps": steps.records,
        "duplicate_rate": sum(record["documents_in"] - record["documents_out"] for record in steps.records
                              if record["step"].endswith("dedup")) / before,
        "contamination_rate": sum(removed.values()) / before,
        "diversity": describe_documents(texts, token_counts),
        "tokenizer": str(tokenizer_dir), "annealscope_version": __version__,
        "provenance": [describe_reference(reference, cache_dir) for reference in source_corpus_references(settings)],
        "seconds": time.perf_counter() - started,
    }
    write_json(manifest_path, manifest)
    print(f"curated {name} ({curation}): {len(documents):,} documents, {manifest['tokens']:,} tokens, "
          f"{manifest['acquisition_flops']:.3g} acquisition FLOPs, {manifest['duplicate_rate']:.1%} duplicates, "
          f"{sum(removed.values())} contaminated removed", flush=True)
    return manifest
