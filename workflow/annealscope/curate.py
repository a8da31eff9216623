"""Curation of one source: documents plus a manifest of what they cost and where they came from."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

from annealscope import __version__
from annealscope.corpora import describe_reference, read_corpora
from annealscope.decontaminate import ContaminationIndex
from annealscope.filtering import filter_documents
from annealscope.io import read_jsonl, write_json, write_jsonl
from annealscope.synthesize import program_documents, teacher_documents

CURATIONS = ("synthesize", "filter", "given")


def eval_item_texts(tasks_dir: str | Path) -> dict[str, list[str]]:
    """Question plus gold answer of every prepared evaluation item, by task."""
    texts = {}
    for path in sorted(Path(tasks_dir).glob("*.jsonl")):
        texts[path.stem] = [f"{item['question']} {item['choices'][item['gold']]}" for item in read_jsonl(path)]
    return texts


def teacher_seeds(settings: dict) -> list[str]:
    """The seed document each prompt sees: program problems, or documents of configured corpora."""
    count = settings["prompts"]
    if settings.get("seed_corpus"):
        documents = [document.text for document in read_corpora(settings["seed_corpus"])]
        random.Random(settings["seed"]).shuffle(documents)
        return documents[:count]
    documents, _ = program_documents(count, seed=settings["seed"] + 1)
    return [document["text"] for document in documents]


def curate_source(name: str, settings: dict, tokenizer_dir: str | Path, tasks_dir: str | Path,
                  documents_path: str | Path, manifest_path: str | Path) -> dict:
    """Curate source `name` by its kind, deduplicate, decontaminate, count tokens, write both files."""
    from transformers import AutoTokenizer

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    curation = settings["curation"]
    provenance: list[dict] = []
    if curation == "synthesize" and settings["generator"]["kind"] == "program":
        documents, acquisition = program_documents(settings["generator"]["documents"], settings["generator"]["seed"])
    elif curation == "synthesize":
        generator = settings["generator"]
        documents, acquisition = teacher_documents(generator, teacher_seeds(generator), name)
        provenance += [describe_reference(reference) for reference in generator.get("seed_corpus", [])]
    elif curation == "filter":
        documents, acquisition = filter_documents(settings, name, count_tokens)
        provenance += [describe_reference(reference) for reference in [*settings["pool"], settings["seeds"]]]
    elif curation == "given":
        documents = [document.as_record() for document in read_corpora(settings["corpus"])]
        acquisition = {"acquisition_flops": float(settings.get("acquisition_flops", 0.0))}
        provenance += [describe_reference(reference) for reference in settings["corpus"]]
    else:
        raise ValueError(f"sources.{name}.curation: unknown kind {curation!r}; use one of {CURATIONS}")

    before_dedup = len(documents)
    unique: dict[str, dict] = {}
    for document in documents:
        unique.setdefault(hashlib.sha1(document["text"].encode()).hexdigest(), document)
    documents = list(unique.values())
    index = ContaminationIndex(eval_item_texts(tasks_dir), n=settings["decontamination_ngram"])
    documents, removed = index.filter(documents)
    if not documents:
        raise ValueError(f"source {name}: no documents left after deduplication and decontamination")
    tokens = count_tokens([document["text"] for document in documents])
    write_jsonl(documents_path, documents)
    manifest = {
        "source": name, "curation": curation, "documents": len(documents), "tokens": int(sum(tokens)),
        "acquisition_flops": acquisition["acquisition_flops"],
        "acquisition_usd": settings.get("acquisition_usd"),
        "acquisition": acquisition,
        "documents_before_dedup": before_dedup, "exact_duplicates_removed": before_dedup - len(unique),
        "decontamination": {"ngram": settings["decontamination_ngram"], "removed_by_task": dict(removed)},
        "tokenizer": str(tokenizer_dir), "provenance": provenance, "annealscope_version": __version__,
        "seconds": time.perf_counter() - started,
    }
    write_json(manifest_path, manifest)
    print(f"curated {name} ({curation}): {len(documents):,} documents, {sum(tokens):,} tokens, "
          f"{manifest['acquisition_flops']:.3g} acquisition FLOPs, {sum(removed.values())} contaminated removed",
          flush=True)
    return manifest
