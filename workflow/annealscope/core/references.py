"""Hub references in a config: which corpora a source reads, which hub datasets and models the fetch
rule downloads, and the cache slug of each."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_hub_model(name: str) -> bool:
    """A hub repository id (org/name) rather than a local directory, a pkgdata: path or 'base'."""
    return bool(HUB_REPO_ID.match(name)) and not Path(name).exists()


def acquisition_kind(source: dict) -> str:
    """How a source's documents are acquired: written by a program or a teacher (`synthesize`), kept by a
    classifier (`filter`), or owned (`given`); the key of every per-kind registry."""
    if source["curation"] == "synthesize":
        return source["generator"]["kind"]
    return source["curation"]


def is_trained_here(classifier: dict) -> bool:
    """Whether a filtered source's classifier is trained on its labelled seeds (once, by its own job), rather
    than loaded (a fastText `model_file`, a transformers model)."""
    return classifier["backend"] in ("hashed_ngram", "fasttext") and not classifier.get("model_file")


def source_corpus_keys(source: dict) -> list[tuple[str, str]]:
    """(config key, reference) of every corpus a source reads: pool and seeds, a given corpus, teacher seeds."""
    generator, classifier = source.get("generator") or {}, source.get("classifier") or {}
    keyed = [(f"pool[{index}]", reference) for index, reference in enumerate(source.get("pool", []))]
    keyed += [("classifier.seeds", classifier["seeds"])] if "seeds" in classifier else []
    keyed += [(f"corpus[{index}]", reference) for index, reference in enumerate(source.get("corpus", []))]
    keyed += [(f"generator.seed_corpus[{index}]", reference)
              for index, reference in enumerate(generator.get("seed_corpus", []))]
    return keyed


def source_corpus_references(source: dict) -> list[str]:
    return [reference for _, reference in source_corpus_keys(source)]


def hub_datasets(config: dict) -> list[str]:
    """The distinct ``hf:`` references of a config, in order of appearance: the fetch rule's work list."""
    build = config["base_model"].get("build") or {}
    references = [*build.get("corpus", []), *config["replay"]["corpus"]]
    references += [reference for corpus in config["eval"]["heldout"].values() for reference in corpus]
    for source in config["sources"].values():
        references += source_corpus_references(source)
    return list(dict.fromkeys(reference for reference in references if reference.startswith("hf:")))


def hub_models(config: dict) -> list[tuple[str, str | None]]:
    """The distinct hub models of a config (base, teachers, classifiers) with their pinned revisions."""
    models = []
    base = config["base_model"]
    if "pretrained" in base:
        models.append((base["pretrained"], base.get("revision")))
    for source in config["sources"].values():
        for key in ("generator", "classifier"):
            block = source.get(key) or {}
            if "model" in block and block.get("backend", "transformers") != "openai":
                models.append((block["model"], None))
    return list(dict.fromkeys((name, revision) for name, revision in models if is_hub_model(name)))


def model_slug(name: str, revision: str | None = None) -> str:
    reference = f"{name}@{revision}" if revision else name
    return f"{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-')}-{hashlib.sha1(reference.encode()).hexdigest()[:10]}"
