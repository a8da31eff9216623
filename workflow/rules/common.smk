# Config validation, paths and every input function; rules never build paths inline. The settings a rule's
# params carry are assembled in annealscope.core.settings, the jobs' code lives in the package.
import hashlib
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from annealscope.anneal.stamp import stamp_start
from annealscope.core import layout
from annealscope.core.branches import is_branched
from annealscope.core.code_digest import code_digest
from annealscope.core.config import ConfigError, read_config_file
from annealscope.core.corpora import dataset_slug
from annealscope.core.decontamination import (
    decontaminated_names,
    prepared_record,
    prepared_subset,
    screened_names,
    task_subset,
)
from annealscope.core.grid import check_epoch_limits, print_plan
from annealscope.core.integrity import missing_collected_files
from annealscope.core.references import (
    hub_datasets,
    hub_models,
    is_trained_here,
    model_slug,
    source_corpus_references,
)
from annealscope.core.shards import planned_shards, shard_name, whole_replay
from annealscope.core.sampling import EpochLimitError
from annealscope.core.settings import EXECUTION_VARIABLE, RuleSettings, as_json
from annealscope.core.submission import family_resources, shard_family, slurm_resources
from annealscope.evaluate.tasks import (
    LOCAL_TASKS,
    PREPARING_VARIABLE,
    TaskSources,
    preparing,
    read_task_file,
    task_file_inputs,
    task_sources,
    tracks_helpers,
)
from annealscope.validation import validate_config


try:
    for configfile in workflow.configfiles:  # Snakemake read them already, keeping the last of duplicated keys
        read_config_file(configfile)
    # The schema with its defaults, then checks; the tasks only in the main process, before any job
    validate_config(config, Path(workflow.basedir) / "resources", tasks=workflow.is_main_process)
except ConfigError as error:
    raise WorkflowError(f"invalid configuration: {error}") from None

RUN = config["run"]
BRANCHED_GRID = is_branched(config)
try:
    check_epoch_limits(config, Path("results") / RUN)
except EpochLimitError as error:
    raise WorkflowError(f"invalid grid: {error}") from None
SETTINGS = RuleSettings(config)
TRAIN_THREADS = config["anneal"]["ranks"] * config["anneal"]["threads"]  # a training job's threads on its node
BASE_THREADS = (config["base_model"].get("build") or {}).get("threads") or config["anneal"]["threads"]  # per rank
os.environ[EXECUTION_VARIABLE] = SETTINGS.execution()  # how jobs run, read at run time (core.settings)
RESOURCES = Path(workflow.basedir) / "resources"
REPORT_CAPTIONS = sorted(str(path.resolve()) for path in layout.CAPTIONS.glob("*.rst"))  # what the report reads
SOURCE_NAMES = "|".join(config["sources"])
PLANNED_SHARDS = planned_shards(config)  # planned once, for the rules and the printed plan
SOURCE_SHARDS = {name: PLANNED_SHARDS[name] for name in config["sources"]}
SHARD_FAMILIES = {name: shard_family(source) for name, source in config["sources"].items()}
TRAINED_CLASSIFIERS = [name for name, source in config["sources"].items()
                       if source["curation"] == "filter" and is_trained_here(source["classifier"])]
REPLAY_SHARDS = PLANNED_SHARDS["replay"]
CACHE = config["cache_dir"]
HUB_DATASETS = {dataset_slug(reference): reference for reference in hub_datasets(config)}
HUB_MODELS = {model_slug(name, revision): (name, revision) for name, revision in hub_models(config)}
LM_EVAL_TASKS = sorted(task for task in config["eval"]["tasks"] if task not in LOCAL_TASKS)
DECONTAMINATED = decontaminated_names(config["eval"])  # training data keeps no n-gram of their items
SCREENED = screened_names(config["eval"])  # their items found in training data are not scored
HF_HOME = str(Path(CACHE, "hf").resolve()) if LM_EVAL_TASKS else ""  # where fetch_tasks puts their datasets
INCLUDE_PATH = config["eval"]["include_path"]  # the user's own task YAMLs: inputs, so that editing one reruns
INCLUDE_OPTION = f"--include-path {shlex.quote(str(Path(INCLUDE_PATH).resolve()))}" if INCLUDE_PATH else ""
USER_TASK_FILES = sorted(str(path) for path in Path(INCLUDE_PATH).rglob("*.yaml")) if INCLUDE_PATH else []
DECONTAMINATION_TASK_FILES = [file for file in USER_TASK_FILES  # a screened task's own YAML reruns no curation
                              if not SCREENED or read_task_file(Path(file)).get("task") not in SCREENED]


wildcard_constraints:
    source="[A-Za-z0-9_-]+",
    budget="[0-9]+",
    seed="[0-9]+",


def path(pattern, **wildcards):
    """A layout pattern for this run, with the given wildcards filled and the rest left for Snakemake."""
    return pattern.replace("{run}", RUN).format_map(_Keep(wildcards))


class _Keep(dict):
    def __missing__(self, key):
        return f"{{{key}}}"


WHOLE_REPLAY = whole_replay(config)  # a grid whose replay was tokenized whole, before replay was sharded
WHOLE_CORPORA = "pretrain|replay" if WHOLE_REPLAY else "pretrain"  # the corpora tokenized whole, in one job


# prepare_tasks' parameters, in the order the tasks were prepared in: reordering eval.tasks reruns nothing
TASKS_DIR, SCREENED_TASKS_DIR = path(layout.TASKS), path(layout.SCREENED_TASKS)
DECONTAMINATED_TASKS, DECONTAMINATED_HELDOUT = prepared_subset(config["eval"], DECONTAMINATED, TASKS_DIR)
SCREENED_EVAL_TASKS, SCREENED_HELDOUT = prepared_subset(config["eval"], SCREENED, SCREENED_TASKS_DIR)
# the evaluated tasks in those orders too, the decontaminated before the screened, as eval.tasks lists a task added
EVALUATED_ORDER = [*DECONTAMINATED_TASKS, *SCREENED_EVAL_TASKS,
                   *layout.heldout_task_names({**DECONTAMINATED_HELDOUT, **SCREENED_HELDOUT})]
# the task YAMLs each reads: one added or edited for another task reruns neither
TASK_FILE_INPUTS = {TASKS_DIR: task_file_inputs(DECONTAMINATION_TASK_FILES, DECONTAMINATED, TASKS_DIR, INCLUDE_PATH)}
if SCREENED:
    TASK_FILE_INPUTS[SCREENED_TASKS_DIR] = task_file_inputs(USER_TASK_FILES, SCREENED, SCREENED_TASKS_DIR, INCLUDE_PATH)
# and what those YAMLs read: the templates they include and the Python helpers that build documents are inputs of
# preparing them, the helpers that only score of every evaluation, and the datasets key their fetch (fetch_key);
# none of it for a folder prepared before its record listed helpers (tracks_helpers)
try:
    TASK_SOURCES = {folder: task_sources(inputs, INCLUDE_PATH) for folder, inputs in TASK_FILE_INPUTS.items()
                    if tracks_helpers(folder)}
except ConfigError as error:
    raise WorkflowError(f"invalid task: {error}") from None
# what each job records, read at run time: the YAMLs it does not read and, where tracked, the other files it does
os.environ[PREPARING_VARIABLE] = json.dumps({
    folder: preparing(USER_TASK_FILES, inputs, INCLUDE_PATH, TASK_SOURCES.get(folder))
    for folder, inputs in TASK_FILE_INPUTS.items()})
if len(os.environ[PREPARING_VARIABLE]) > 100_000:  # an environment string over 128 kB fails every job's start
    raise WorkflowError(f"eval.include_path: {INCLUDE_PATH} holds too many YAMLs the prepared tasks do not read "
                        "(every job is given their names); move those of tasks the grid does not evaluate elsewhere")
SCORING_HELPERS = sorted({file for sources in TASK_SOURCES.values() for file in sources.scoring})


def log_path(name):
    return f"{path(layout.LOGS)}/{name}.log"


def benchmark_path(name):
    return f"{path(layout.LOGS)}/{name}.benchmark.tsv"


def cached_model(name, revision=None):
    """Where the fetch rule puts hub model `name`; other names (local paths) are returned unchanged."""
    slug = model_slug(name, revision)
    return f"{CACHE}/models/{slug}" if slug in HUB_MODELS else name


def cached_datasets(references):
    """The fetch rule's directories for the hub datasets among `references`."""
    return [f"{CACHE}/datasets/{dataset_slug(reference)}" for reference in references if reference.startswith("hf:")]


def base_model(part="model"):
    """The base model, the one accessor: the demo's build (its pre-trained `model`, or the untrained `init` that
    holds the tokenizer), else the fetched copy of a hub model, else the configured local path."""
    base = config["base_model"]
    if "build" in base:
        return path(layout.BASE_MODEL if part == "model" else layout.BASE_INIT)
    return cached_model(base["pretrained"], base.get("revision"))


def base_inputs(part="model"):
    """The base model as a rule input, where a rule makes it (the build, or the fetch of a hub model)."""
    location = base_model(part)
    return [location] if "build" in config["base_model"] or location.startswith(f"{CACHE}/models/") else []


def input_or_base(name):
    """A param naming the input `name` (so that it follows the file), else the configured local base model."""

    def choose(wildcards, input):
        files = input.get(name) or []
        return files if isinstance(files, str) else (files[0] if files else base_model())

    return choose


def base_input(wildcards=None):
    return base_inputs("model")


def tokenizer_input(wildcards=None):
    return base_inputs("init")


def corpus_references(wildcards):
    if wildcards.source == "pretrain":
        return config["base_model"]["build"]["corpus"]
    return config["replay"]["corpus"]


def corpus_inputs(wildcards):
    inputs = {"datasets": cached_datasets(corpus_references(wildcards))}
    if wildcards.source == "replay":
        inputs["tokenizer"] = tokenizer_input()
    return inputs


def tokenizer_argument(wildcards, input):
    return f"--tokenizer {input.tokenizer}" if input.get("tokenizer") else ""


def uses_base_as_teacher(source):
    generator = config["sources"][source].get("generator", {})
    return generator.get("kind") == "teacher" and generator.get("model") == "base"


def source_models(source):
    """The models a source runs (a teacher, a classifier), by their settings key."""
    settings = config["sources"][source]
    return {key: block["model"] for key in ("generator", "classifier")
            if (block := settings.get(key)) and "model" in block}


def curate_shard_inputs(wildcards):
    """What a shard job reads: the tokenizer, the fetched datasets and models of its source, the base model as
    a teacher, and the classifier trained for the source."""
    source = wildcards.source
    inputs = {"tokenizer": tokenizer_input(),
              "datasets": cached_datasets(source_corpus_references(config["sources"][source]))}
    if uses_base_as_teacher(source):
        inputs["teacher"] = base_input()
    models = [cached_model(name) for name in source_models(source).values()]
    inputs["models"] = [model for model in models if model.startswith(f"{CACHE}/models/")]
    if source in TRAINED_CLASSIFIERS:
        inputs["classifier"] = path(layout.CLASSIFIER, source=source)
    return inputs


def classifier_argument(wildcards, input):
    return f"--classifier {input.classifier}" if input.get("classifier") else ""


def shard_pieces(wildcards):
    return as_json(SOURCE_SHARDS[wildcards.source][int(wildcards.shard)])


def shard_files(pattern, wildcards):
    """`pattern` for every shard of the source, in shard order."""
    return source_shard_files(pattern, wildcards.source)


def source_shard_files(pattern, source):
    return [path(pattern, source=source, shard=shard_name(index)) for index in range(len(SOURCE_SHARDS[source]))]


def source_settings(wildcards):
    """The source's config block, with its models resolved to local paths: the fetched copy of a hub
    model, and the base checkpoint for a teacher named 'base'."""
    models = {key: base_model() if name == "base" else cached_model(name)
              for key, name in source_models(wildcards.source).items()}
    return SETTINGS.source(wildcards.source, models)


def anneal_settings(wildcards):
    return SETTINGS.cell(wildcards.source, wildcards.budget, wildcards.seed)


def start_settings(wildcards):
    return SETTINGS.start(wildcards.source, wildcards.seed)


def stable_settings(wildcards):
    return SETTINGS.stable(wildcards.source, wildcards.seed)


def branch_markers():
    """The stable phase's marker per budget (its source and seed left as wildcards)."""
    return [path(layout.STABLE_BRANCH, budget=budget) for budget in SETTINGS.budgets]


def cooldown_settings(wildcards):
    checkpoints = path(layout.STABLE_CHECKPOINTS, source=wildcards.source, seed=wildcards.seed)
    return SETTINGS.cooldown(wildcards.source, wildcards.budget, wildcards.seed, checkpoints)


def replay_input(wildcards):
    """What an anneal mixes in: the replay shards' index, or the one array of a grid that predates them."""
    if config["replay"]["fraction"] == 0:
        return []
    return [path(layout.TOKENS if WHOLE_REPLAY else layout.TOKENS_META, source="replay")]


def replay_shard_files():
    return [path(layout.SHARD_TOKENS, source="replay", shard=shard_name(index)) for index in range(len(REPLAY_SHARDS))]


def replay_pieces(wildcards):
    return as_json(REPLAY_SHARDS[int(wildcards.shard)])


def replay_argument(wildcards, input):
    return f"--replay {input.replay}" if input.replay else ""


def checkpoint_input(wildcards):
    """The checkpoint a scores file evaluates: the base model for budget 0, else the anneal's export."""
    if wildcards.source == layout.BASE_SOURCE:
        return base_input()
    return [path(layout.ANNEAL_MODEL, **wildcards)]


def fetched_tasks(names, folder):
    """The fetch_tasks marker of the lm-eval (non-local) tasks among `names`, prepared into `folder`, if any."""
    tasks = [task for task in LM_EVAL_TASKS if task in names]
    return [f"{CACHE}/lm-eval/tasks-{fetch_key(tasks, folder)}"] if tasks else []


def fetch_key(tasks, folder):
    """The tasks, eval.include_path and, where the folder tracks them, the datasets its user YAMLs name: editing
    those fetches them again, as the jobs that prepare and score the tasks read the cache offline."""
    datasets = TASK_SOURCES.get(folder, TaskSources.untracked()).datasets
    key = " ".join([*tasks, INCLUDE_OPTION, *([datasets] if datasets else [])])
    return hashlib.sha1(key.encode()).hexdigest()[:10]


FETCHES = {fetch_key(tasks, folder): tasks for folder, tasks in
           ((folder, [task for task in LM_EVAL_TASKS if task in names])
            for folder, names in ((TASKS_DIR, DECONTAMINATED), (SCREENED_TASKS_DIR, SCREENED))) if tasks}


def evaluation_fetches(wildcards):
    return fetched_tasks(DECONTAMINATED, TASKS_DIR) + fetched_tasks(SCREENED, SCREENED_TASKS_DIR)


def task_inputs(names, folder):
    """The inputs of preparing the tasks among `names` into `folder`: their held-out corpora, their lm-eval
    datasets, the YAMLs under eval.include_path they may need and the Python helpers that build their documents."""
    heldout = task_subset(config["eval"], names)[1]
    return {"datasets": cached_datasets([reference for references in heldout.values() for reference in references]),
            "fetched": fetched_tasks(names, folder), "user_tasks": TASK_FILE_INPUTS[folder],
            "helpers": TASK_SOURCES.get(folder, TaskSources.untracked()).prepared}


def screened_shards(wildcards):
    """Every shard's screening, of every source."""
    return [file for source in SOURCE_SHARDS for file in source_shard_files(layout.SHARD_SCREENED, source)]


def evaluation_tasks(wildcards):
    """The prepared tasks an evaluation reads: those decontaminated against, and the screened ones' apart."""
    return path(layout.TASKS) if not SCREENED else [path(layout.TASKS), path(layout.SCREENED_TASKS)]


def all_cells(pattern):
    """`pattern` (scores or per-item results) for the base model and every cell of the grid."""
    files = [path(pattern, source=layout.BASE_SOURCE, budget=0, seed=0)]
    for cell in SETTINGS.cells:
        files.append(path(pattern, source=cell.source, budget=cell.budget, seed=cell.seed))
    return files


def collect_inputs(wildcards):
    """Every cell's scores and per-item results; refused, naming them, when files that metrics.csv was collected
    from are gone, since Snakemake does not rerun for a missing intermediate file (unless collect is forced)."""
    forced = set(workflow.dag_settings.forcerun) & {"collect", path(layout.METRICS)}
    missing = [] if forced else missing_collected_files(Path("results") / RUN)
    if missing:
        raise WorkflowError(f"{len(missing)} file(s) that metrics.csv was collected from are gone, e.g. "
                            f"{', '.join(map(str, missing[:3]))}; run `snakemake --forcerun collect` to remake "
                            "them and collect again")
    screened = {"screened": path(layout.SCREENED)} if SCREENED else {}
    return {"scores": all_cells(layout.SCORES), "per_item": all_cells(layout.ITEMS), **screened}


def fit_output(name):
    return f"{path(layout.FIT_DIR)}/{name}"


def backtest_output(name):
    return f"{path(layout.BACKTEST_DIR)}/{name}"


def final_outputs():
    return [path(layout.METRICS), *(fit_output(name) for name in layout.FIT_OUTPUTS),
            *(backtest_output(name) for name in layout.BACKTEST_OUTPUTS), path(layout.REPORT)]


def code_of(*modules):
    """A param that changes when the annealscope code these modules run changes, so that an upgrade reruns the
    cheap stages it touches (annealscope.core.code_digest); computed only for jobs in the plan."""
    return lambda wildcards: code_digest(*modules)


def family_cpus(family, least=1):
    """The CPUs a job of the family asks for, at least `least`, as a rule's threads: Snakemake hands them to the
    job's command (OMP_NUM_THREADS, or --threads), whose tokenizer and torch then use them all
    (annealscope.curate.tokenize)."""
    return max(least, family_resources(config, family)["cpus"])


def job_resources(family, nodes=1, threads=1):
    """Snakemake resources of a rule family from config `resources.<family>` (annealscope.core.submission's
    family_resources), named as snakemake-executor-plugin-slurm reads them; at least the rule's threads in
    CPUs. Plain values, not functions: Snakemake would inspect a function for every job."""
    resources = slurm_resources(family_resources(config, family), nodes)
    return {**resources, "cpus_per_task": max(threads, resources["cpus_per_task"])}


# Local evaluate jobs run in threads of this process and take turns with one evaluator (evaluate_in_process). This
# resource runs them one at a time, so that no evaluation holds cores while it waits for another; scoped local,
# it is not counted across a cluster run's jobs, each of which evaluates in its own process.
EVALUATOR = "annealscope_evaluator"
workflow.global_resources.setdefault(EVALUATOR, 1)


resource_scopes:
    **{EVALUATOR: "local"},


def evaluate_in_process(*arguments):
    """The evaluate rule's job (annealscope.evaluate.harness), imported only when a job runs."""
    from annealscope.evaluate.harness import evaluate_in_process as evaluate

    evaluate(*arguments)


if workflow.is_main_process:  # the plan table, on `snakemake -n` and at the start of every run
    print_plan(config, sys.stderr, shards=PLANNED_SHARDS)
    for folder in sorted(TASK_FILE_INPUTS.keys() - TASK_SOURCES.keys()):  # prepared by an earlier annealscope
        if prepared_record(folder) is None:
            print(f"tasks: {folder} was prepared before annealscope recorded what it was prepared from "
                  "(prepared.json): reordering eval.tasks or eval.heldout reruns it, and all that was decontaminated "
                  "or screened against it", file=sys.stderr)
        if INCLUDE_PATH:
            print(f"tasks: {folder} was prepared by an earlier annealscope, which tracked neither the Python helpers "
                  "nor the included templates of its task YAMLs: editing one reruns nothing there, and a task "
                  "pointed at other data is not fetched again (delete the folder to track them, which reruns what "
                  "was decontaminated or screened against it)", file=sys.stderr)
