"""Configuration: schema validation with defaults (Snakemake's `validate`) and the checks a schema
cannot express, all before any job runs; every error names the key and the fix."""

from __future__ import annotations

import copy
import difflib
import importlib.util
from dataclasses import field
from functools import cache
from pathlib import Path

import yaml

from annealscope.core.branches import BRANCHED, config_branches, is_branched
from annealscope.core.corpora import CorpusError, check_reference, resolve_path
from annealscope.core.grid import all_budgets
from annealscope.core.layout import evaluated_task_names
from annealscope.core.prompts import TEMPLATE_NAMES, unknown_names
from annealscope.core.references import acquisition_kind, source_corpus_keys

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem, naming the key."""


FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser where PyYAML was built with it


@cache
def _schema() -> dict:
    return yaml.load(SCHEMA.read_text(), Loader=FAST_LOADER)


def schema_defaults(*path: str) -> dict:
    """The schema's default for every key of a section (`anneal`, `fit`, ..., or a nested one such as
    `anneal`, `communication`) that has one: the one source of defaults, for the workflow (through
    `validate_schema`) and for code that runs without a config."""
    section = _schema()
    for key in path:
        section = section["properties"][key]
    properties = section["properties"]
    return {key: copy.deepcopy(spec["default"]) for key, spec in properties.items() if "default" in spec}


def check_section(section: str, settings: dict) -> None:
    """Validate settings assembled outside a config (a command's options) against the schema's `section`; a
    ConfigError names each bad key as `section.key`."""
    errors = sorted(f"{section}.{schema_message(error)}"
                    for error in _part_validator(_schema()["properties"][section]).iter_errors(copy.deepcopy(settings)))
    if errors:
        raise ConfigError("; ".join(errors))


def definition_defaults(definition: str, instance: dict) -> dict:
    """A copy of `instance` with the defaults of the schema's `$defs/<definition>` (`generator`, `classifier`)
    filled in, those of the branch its kind or backend selects included."""
    filled = copy.deepcopy(instance)
    for _ in _part_validator({"$ref": f"#/$defs/{definition}"}).iter_errors(filled):  # it fills as it validates
        pass
    return filled


def _part_validator(part: dict):
    """The config's validator (defaults filled in) for one part of the schema, its definitions in reach."""
    return type(_validator())({"$defs": _schema()["$defs"], **part})


def schema_default(section: str, key: str):
    """A field default for a dataclass of settings: the schema's default of `section.key`."""
    return field(default_factory=lambda: schema_defaults(section)[key])


class _UniqueKeyLoader(FAST_LOADER):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise ConfigError(f"key {key!r} appears twice, at lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}; keep one (YAML would silently keep the last)")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_config_file(path: str | Path) -> dict:
    """A config file's contents; a duplicated key or a YAML syntax error is a ConfigError naming the line."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_UniqueKeyLoader) or {}
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None


def validate_schema(config: dict) -> None:
    """Validate against the JSON schema, one line per error, and fill in its defaults in place (as Snakemake's
    `validate(..., set_default=True)` does, in the same pass; its own error would bury the line under the
    whole schema)."""
    errors = sorted(schema_message(error) for error in _validator().iter_errors(config))
    if errors:
        raise ConfigError("\n".join(errors))


@cache
def _validator():
    """Draft 2020-12 with two changes: integers must be written as integers (150000, not 150000.0), and a
    valid object gets the defaults of its missing properties (jsonschema's recipe, which Snakemake uses)."""
    from jsonschema import Draft202012Validator, validators

    strict = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda checker, value: isinstance(value, int) and not isinstance(value, bool))
    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if validator.is_type(instance, "object"):  # first, so that a defaulted {} gets its own defaults
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": properties_with_defaults},
                             type_checker=strict)(_schema())


def schema_message(error) -> str:
    """One line naming the key (dotted path), what is wrong, and the closest valid key for an unknown one."""
    key = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - allowed)
        return "; ".join(_unknown_key(f"{key}.{name}" if key else name, name, allowed) for name in unknown)
    key = key or "<top level>"
    if error.validator == "oneOf":
        choices = " or ".join("/".join(option.get("required", [])) for option in error.validator_value)
        return f"{key}: set exactly one of {choices}"
    message = error.message if len(error.message) < 300 else error.message[:300] + "..."
    return f"{key}: {message}"


def _unknown_key(path: str, name: str, allowed: set[str]) -> str:
    initials = "".join(part[:1] for part in name.split("_"))  # learning_rate -> lr
    close = difflib.get_close_matches(name, sorted(allowed), n=1) or sorted({initials} & allowed)
    hint = f"did you mean `{close[0]}`?" if close else f"valid keys here: {', '.join(sorted(allowed))}"
    return f"{path}: unknown key; {hint}"


def check_config(config: dict) -> None:
    """Semantic checks of what every stage shares: files exist, corpora resolve, the grid is consistent; first
    the values that follow from other keys are resolved (`resolve_derived`)."""
    resolve_derived(config)
    build = config["base_model"].get("build")
    for index, reference in enumerate(build["corpus"] if build else []):
        _check_corpus(f"base_model.build.corpus[{index}]", reference)
    replay = config["replay"]
    if replay["fraction"] > 0 and not replay["corpus"]:
        raise ConfigError("replay.corpus: empty while replay.fraction > 0; list corpora or set replay.fraction: 0")
    for index, reference in enumerate(replay["corpus"]):
        _check_corpus(f"replay.corpus[{index}]", reference)
    for name, source in config["sources"].items():
        _check_source(name, source, config)
    budgets, micro = config["grid"]["budgets"], config["grid"]["micro_anneal_budget"]
    if micro not in budgets:
        raise ConfigError(f"grid.micro_anneal_budget: {micro} is not one of grid.budgets {budgets}")
    for index, cell in enumerate(config["grid"]["extra_cells"]):
        if cell["source"] not in config["sources"]:
            raise ConfigError(f"grid.extra_cells[{index}].source: {cell['source']!r} is not one of the sources "
                              f"{sorted(config['sources'])}")
    anneal = config["anneal"]
    if build and anneal["seq_len"] > build["max_position_embeddings"]:
        raise ConfigError(f"anneal.seq_len: {anneal['seq_len']} exceeds base_model.build.max_position_embeddings "
                          f"({build['max_position_embeddings']})")
    _check_batch(anneal)
    _check_kernels(anneal)
    _check_schedule(config)
    for domain, references in config["eval"]["heldout"].items():
        for index, reference in enumerate(references):
            _check_corpus(f"eval.heldout.{domain}[{index}]", reference)
    evaluated = evaluated_task_names(config["eval"])
    if unknown := [name for name in config["eval"]["decontaminate"] or [] if name not in evaluated]:
        raise ConfigError(f"eval.decontaminate: {unknown} is not evaluated; list names of eval.tasks or held-out "
                          f"domains (heldout_<domain>): {evaluated}")
    if config["fit"]["allocate_usd"] and config["plan"]["gpu_hour_usd"] is None:
        raise ConfigError("fit.allocate_usd: dollars need plan.gpu_hour_usd, the price that turns training compute "
                          "into dollars; set it or remove fit.allocate_usd")


def resolve_derived(config: dict) -> None:
    """Write into the validated config the values that follow from other keys, which a schema default cannot
    hold: `grid.micro_anneal_budget` (the smallest budget), `anneal.global_batch` from `global_batch_tokens`,
    and `anneal.schedule` (linear_decay, or wsd on a branched grid). The only writes after the schema's."""
    grid, anneal = config["grid"], config["anneal"]
    grid.setdefault("micro_anneal_budget", min(grid["budgets"]))
    if anneal["global_batch_tokens"] is not None:
        if anneal["global_batch_tokens"] % anneal["seq_len"]:
            raise ConfigError(f"anneal.global_batch_tokens: {anneal['global_batch_tokens']} is not a multiple of "
                              f"anneal.seq_len ({anneal['seq_len']})")
        anneal["global_batch"] = anneal["global_batch_tokens"] // anneal["seq_len"]
    if not is_branched(config):
        anneal["schedule"] = anneal["schedule"] or "linear_decay"
    elif anneal["schedule"] in (None, "wsd"):
        anneal["schedule"] = "wsd"
    else:
        raise ConfigError(f"anneal.schedule: {anneal['schedule']} cannot branch; grid.schedule {BRANCHED} trains "
                          "every cell with wsd (set anneal.schedule: wsd or remove it)")


def _check_batch(anneal: dict) -> None:
    """The global batch splits evenly across ranks and micro-batches."""
    world = anneal["ranks"] * anneal["nodes"]
    if anneal["global_batch"] % world:
        raise ConfigError(f"anneal.global_batch: {anneal['global_batch']} sequences are not divisible by the "
                          f"{world} ranks (anneal.ranks x anneal.nodes)")
    micro = anneal["micro_batch"]
    if micro is not None and (anneal["global_batch"] // world) % micro:
        raise ConfigError(f"anneal.micro_batch: {micro} does not divide the {anneal['global_batch'] // world} "
                          "sequences per rank per step")


KERNEL_PACKAGES = {"attention": ("flash_attention_2", "flash_attn", "flash-attn", "sdpa"),
                   "liger_kernels": (True, "liger_kernel", "liger-kernel", "false")}
TRACKER_PACKAGES = ("tensorboard", "wandb")  # anneal.monitor.backends that need a package (csv needs none)


def _check_kernels(anneal: dict) -> None:
    """A kernel or tracker the config asks for is installed (whether there is a GPU is checked where the job
    runs)."""
    for key, (value, module, package, fallback) in KERNEL_PACKAGES.items():
        if anneal[key] == value and importlib.util.find_spec(module) is None:
            raise ConfigError(f"anneal.{key}: {value} needs the {package} package, which is not installed; "
                              f"pip install {package}, or set anneal.{key}: {fallback}")
    for backend in anneal["monitor"]["backends"]:
        if backend in TRACKER_PACKAGES and importlib.util.find_spec(backend) is None:
            raise ConfigError(f"anneal.monitor.backends: {backend} is not installed; pip install "
                              f"'annealscope[monitor]', or leave {backend} out")


def _check_schedule(config: dict) -> None:
    """Every branch point of a branched grid lies after the warmup."""
    anneal = config["anneal"]
    if not is_branched(config):
        return
    for branch in config_branches(config, all_budgets(config)):
        if branch.step <= anneal["warmup_steps"]:
            raise ConfigError(f"grid.budgets: budget {branch.budget} cools down from step {branch.step} of "
                              f"{branch.total_steps}, before anneal.warmup_steps ({anneal['warmup_steps']}) end; "
                              "raise the budget, lower warmup_steps or anneal.cooldown_fraction")


def _check_corpus(key: str, reference: str) -> None:
    try:
        check_reference(reference)
    except CorpusError as error:
        raise ConfigError(f"{key}: {error}") from None


def _check_source(name: str, source: dict, config: dict) -> None:
    key = f"sources.{name}"
    for corpus_key, reference in source_corpus_keys(source):
        _check_corpus(f"{key}.{corpus_key}", reference)
    if acquisition_kind(source) == "teacher":
        _check_teacher(f"{key}.generator", source["generator"])
    classifier = source.get("classifier") or {}
    model = classifier.get("model", "")
    if classifier.get("backend") == "transformers" and model.startswith((".", "/")) and not Path(model).exists():
        raise ConfigError(f"{key}.classifier.model: {classifier['model']} does not exist")
    scores_probability = classifier.get("backend") in ("hashed_ngram", "fasttext") or (
        classifier.get("backend") == "transformers" and classifier["label"] != "regression")
    if scores_probability and not 0 <= source["threshold"] <= 1:
        raise ConfigError(f"{key}.threshold: {source['threshold']} lies outside [0, 1], where the classifier's "
                          "scores (a label's probability) lie, so it would keep no document or every one; give a "
                          "threshold in [0, 1]")
    if classifier.get("model_file") and not Path(classifier["model_file"]).is_file():
        raise ConfigError(f"{key}.classifier.model_file: {classifier['model_file']} does not exist; download the "
                          "fastText .bin first (e.g. `huggingface-cli download REPO FILE --local-dir DIR`)")


def _check_teacher(key: str, generator: dict) -> None:
    if not Path(generator["template"]).is_file():
        raise ConfigError(f"{key}.template: {generator['template']} does not exist; point it at a Jinja file "
                          "such as resources/prompts/rephrase.jinja")
    _check_template(f"{key}.template", generator["template"])
    if generator["backend"] == "openai":
        for required in ("base_url", "parameters"):
            if required not in generator:
                raise ConfigError(f"{key}.{required}: required by backend openai (the endpoint URL, and the "
                                  "teacher's parameter count to charge FLOPs)")
        return
    model = generator["model"]
    if model.startswith("pkgdata:"):
        _check_local_model(f"{key}.model", model, generator.get("gguf_file"))
    elif model.startswith((".", "/")) and not Path(model).exists():
        raise ConfigError(f"{key}.model: {model} does not exist")


def _check_template(key: str, template: str) -> None:
    """A prompt template's Jinja syntax and the names it reads, in the sandbox the teacher renders it in: a name
    other than those it is given (a misspelt `{{ doc }}`) stops the dry run, not the generation job. It is not
    rendered: a sample document could fail a template that real ones pass."""
    from jinja2 import TemplateSyntaxError

    try:
        unknown = unknown_names(template)
    except TemplateSyntaxError as error:
        raise ConfigError(f"{key}: {template}, line {error.lineno}: {error.message}; fix the template") from None
    if unknown:
        raise ConfigError(f"{key}: {template} reads {unknown}, which no prompt defines (a template sees "
                          f"{', '.join(TEMPLATE_NAMES)}: the seed document, its number and generator.params); fix the "
                          "template")


def _check_local_model(key: str, model: str, gguf_file: str | None) -> None:
    try:
        location = resolve_path(model)
    except CorpusError as error:
        raise ConfigError(f"{key}: {error}") from None
    if gguf_file and not (location / gguf_file).is_file():
        raise ConfigError(f"{key}: {location} holds no {gguf_file}")
