"""The `annealscope` command: one subcommand per stage; the Snakemake rules call these."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from annealscope.core.config import check_section, schema_defaults
from annealscope.core.layout import BASE_SOURCE

if TYPE_CHECKING:
    from annealscope.fit.curves import FitSettings

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ONLINE_COMMANDS = {"fetch-dataset", "fetch-model", "fetch-tasks"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="annealscope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (describe, run, help_text) in COMMANDS.items():
        describe(commands.add_parser(name, help=help_text, parents=PARENTS.get(describe, []))).set_defaults(run=run)
    args = parser.parse_args(argv)
    if getattr(args, "hf_home", None):
        os.environ["HF_HOME"] = str(Path(args.hf_home).resolve())
    for key, value in OFFLINE.items():
        if args.command in ONLINE_COMMANDS and key.endswith("OFFLINE"):
            os.environ[key] = "0"
        else:
            os.environ.setdefault(key, value)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"annealscope {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _above_zero(convert):
    """An argparse type: `convert`'s value, refused unless above 0 (a NaN is not)."""

    def parse(text: str):
        value = convert(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not above 0")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in "invalid float value"
    return parse


def _parent(*arguments: tuple[tuple[str, ...], dict]) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    for flags, options in arguments:
        parent.add_argument(*flags, **options)
    return parent


CACHE_DIR = _parent((("--cache-dir",), {"help": "where the fetch rule caches hf: references"}))
OUT = _parent((("--out",), {"required": True}))
SOURCE = _parent((("--name",), {"required": True, "help": "the source"}),
                 (("--settings",), {"required": True, "help": "JSON of sources.<name>"}))
FIT_INPUT = _parent(
    (("metrics",), {"help": "a table with the metrics.csv columns"}),
    (("--items",), {"help": "per-item results (items.parquet from collect): bootstrap over items"}),
    (("--forms",), {"nargs": "+", "help": "forms to try (default: fit.forms)"}),
    (("--fit-metrics",), {"nargs": "+", "help": "metrics to fit (default: fit.metrics)"}),
    (("--bootstrap",), {"type": int, "help": "replicates (default: fit.bootstrap)"}),
    (("--settings",), {"help": "JSON of fit (command-line options take precedence; the schema fills the rest)"}),
    (("--seeds",), {"type": int, "nargs": "+", "help": "only the runs of these seeds (default: all)"}),
    (("--suite",), {"action": "append", "default": [], "metavar": "NAME=TASK,PATTERN,...",
                    "help": "fit these tasks as one more panel, the mean of their values (as fit.suites)"}),
    (("--groups",), {"help": "lm-eval's groups the evaluation recorded (task_groups.json from collect): each is a "
                             "panel too, weighted as lm-eval weighs it"}),
)

DECISION = _parent((("--micro-anneal-budget",), {"type": _above_zero(int)}),
                   (("--higher-is-better",), {"action": "append", "default": [], "metavar": "METRIC=true|false"}))


def _init_base_arguments(command):
    command.add_argument("--settings", required=True, help="JSON of base_model.build")
    return command


def _fetch_dataset_arguments(command):
    command.add_argument("reference")
    command.add_argument("--workers", type=int,
                         help="processes streaming the dataset's files (default: the job's threads, else 1)")
    return command


def _fetch_model_arguments(command):
    command.add_argument("name")
    command.add_argument("--revision", default="")
    return command


def _fetch_tasks_arguments(command):
    command.add_argument("tasks", nargs="+")
    command.add_argument("--hf-home", required=True, help="the Hugging Face cache evaluation jobs read")
    command.add_argument("--include-path", help="eval.include_path: a folder of the user's task YAMLs")
    return command


def _corpus_arguments(command):
    command.add_argument("references", nargs="+")
    command.add_argument("--tokenizer", help="the base tokenizer, to apply max_tokens caps")
    return command


def _train_classifier_arguments(command):
    return command


def _curate_shard_arguments(command):
    command.add_argument("--shard", type=int, required=True)
    command.add_argument("--pieces", required=True, help="JSON of the shard's pieces (annealscope.core.shards)")
    command.add_argument("--tokenizer", required=True)
    command.add_argument("--work-dir", required=True, help="resumable intermediate files (teacher generations)")
    command.add_argument("--classifier", help="the source's trained classifier folder (seeded backends)")
    command.add_argument("--documents", required=True, help="the kept documents (JSONL)")
    command.add_argument("--tokens", required=True, help="their token ids, a .bin token array (sidecar: .json)")
    command.add_argument("--signatures", required=True, help="their dedup keys (.npz)")
    command.add_argument("--stats", required=True, help="the shard's step counts and acquisition (JSON)")
    return command


def _dedup_arguments(command):
    command.add_argument("--stats", nargs="+", required=True, help="every shard's curate-shard statistics, in order")
    command.add_argument("--signatures", nargs="+", required=True, help="every shard's signatures, in order")
    command.add_argument("--out-stats", required=True, help="the dedup steps' counts (JSON)")
    return command


def _finish_shard_arguments(command):
    command.add_argument("--shard", type=int, required=True)
    command.add_argument("--filtered", required=True, help="the shard's documents from curate-shard")
    command.add_argument("--filtered-tokens", required=True, help="their token array from curate-shard")
    command.add_argument("--duplicates", required=True, help="the source's dedup decision (.npz)")
    command.add_argument("--tasks", required=True, help="prepared evaluation tasks, for decontamination")
    command.add_argument("--documents", required=True)
    command.add_argument("--tokens", required=True, help="the shard's .bin token array (sidecar: .json)")
    command.add_argument("--stats", required=True)
    command.add_argument("--diversity", required=True, help="the shard's diversity sketch (.npz)")
    return command


def _manifest_arguments(command):
    command.add_argument("--filter-stats", nargs="+", required=True)
    command.add_argument("--dedup-stats", required=True)
    command.add_argument("--finish-stats", nargs="+", required=True)
    command.add_argument("--diversity", nargs="+", required=True)
    command.add_argument("--tokens", nargs="+", required=True, help="every shard's .bin token array, in order")
    command.add_argument("--tokenizer", required=True)
    command.add_argument("--manifest", required=True)
    command.add_argument("--index", required=True, help="the source's token index (.json) that training reads")
    return command


def _tokenize_arguments(command):
    what = command.add_mutually_exclusive_group(required=True)
    what.add_argument("--documents", help="a JSONL of documents (the pre-training corpus)")
    what.add_argument("--pieces", help="JSON of one shard's pieces of corpus references (annealscope.core.shards)")
    command.add_argument("--tokenizer", required=True)
    command.add_argument("--out", required=True, help="the .bin path; the sidecar is the same name with .json")
    command.add_argument("--threads", type=int, help="cores for the tokenizer (default: all)")
    return command


def _train_arguments(command):
    command.add_argument("--settings", required=True, help="JSON of the training settings")
    command.add_argument("--init", required=True, help="checkpoint to start from")
    command.add_argument("--source", required=True, help="token array of the data to train on")
    command.add_argument("--replay", help="token array of replay data")
    command.add_argument("--out", required=True, help="the model export, or a stable phase's checkpoint folder")
    command.add_argument("--log", help="the per-step log (not written by a stable phase)")
    command.add_argument("--summary", required=True)
    command.add_argument("--job-threads", type=int,
                         help="the job's CPU threads, shared by its ranks (default: anneal.threads per rank)")
    return command


def _prepare_tasks_arguments(command):
    command.add_argument("tasks", nargs="*")
    command.add_argument("--resources", default="resources")
    command.add_argument("--heldout", default="{}", help="JSON of eval.heldout: {domain: [corpus references]}")
    command.add_argument("--heldout-documents", type=int, default=schema_defaults("eval")["heldout_documents"])
    command.add_argument("--include-path", help="eval.include_path: a folder of the user's task YAMLs")
    return command


def _evaluate_arguments(command):
    command.add_argument("--tasks-dir", required=True)
    command.add_argument("--settings", required=True, help="JSON of eval")
    command.add_argument("--job", nargs=3, action="append", required=True, metavar=("CHECKPOINT", "SCORES", "ITEMS"))
    command.add_argument("--trust-remote-code", action="store_true")
    command.add_argument("--hf-home", help="the Hugging Face cache fetch-tasks filled")
    return command


def _collect_arguments(command):
    command.add_argument("scores", nargs="+")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--plan", default="{}", help="JSON of plan (gpu_hour_usd, gpu_peak_flops, mfu): dollars")
    command.add_argument("--items", help="where to write every cell's per-item scores (parquet)")
    command.add_argument("--groups", help="where to write the lm-eval groups the cells recorded (JSON)")
    command.add_argument("--screened", help="the screened tasks' items found in training data (from `screen`): "
                                            "left out of their scores")
    return command


def _screen_shard_arguments(command):
    command.add_argument("--documents", required=True, help="a shard's curated documents (documents.jsonl)")
    command.add_argument("--tasks", required=True, help="the screened tasks, as prepare-tasks wrote them")
    return command


def _screen_arguments(command):
    command.add_argument("shards", nargs="+", help="every shard's screening, of every source")
    return command


def _import_lm_eval_arguments(command):
    command.add_argument("results", nargs="+", help="folders that `lm_eval --output_path P --log_samples` wrote")
    command.add_argument("--cells", required=True, help="CSV: which model each cell is and what it cost")
    command.add_argument("--plan", default="{}", help="JSON of plan (gpu_hour_usd, gpu_peak_flops, mfu): dollars")
    return command


def _fit_arguments(command):
    command.add_argument("--target-flops", type=float, nargs="*", default=None)
    command.add_argument("--allocate-flops", type=float, nargs="*", help="FLOP budgets to split across sources")
    command.add_argument("--allocate-usd", type=float, nargs="*", help="dollar budgets to split across sources")
    command.add_argument("--max-tokens", action="append", default=[], metavar="SOURCE=TOKENS",
                         help="unique tokens a source can supply (default: the table's available_tokens)")
    return command


def _backtest_arguments(command):
    return command


def _suggest_arguments(command):
    command.add_argument("--budget", type=_above_zero(float), required=True,
                         help="the target compute (total FLOPs, acquisition included) of the decision")
    command.add_argument("--count", type=_above_zero(int), default=3, help="how many cells to propose")
    command.add_argument("--panel", action="append", default=[], metavar="TASK:METRIC",
                         help="decide on this panel only (repeatable; default: every panel but the tasks of an "
                              "lm-eval group of --groups, which its group's panel stands for)")
    command.add_argument("--out", help="also write the suggestions as CSV")
    return command


def _report_arguments(command):
    command.add_argument("--fit", required=True)
    command.add_argument("--backtest", help="the folder `annealscope backtest` wrote: its tables join the report")
    command.add_argument("--metrics", required=True)
    command.add_argument("--groups", help="task_groups.json: a group's tasks are summarised by its panel")
    command.add_argument("--screened", help="screened.json: the screened tasks' items left out, in a table")
    command.add_argument("--title", default="annealscope")
    return command


def _plan_arguments(command):
    command.add_argument("config", nargs="?", default="config/config.yaml")
    command.add_argument("--resources", default="resources")
    command.add_argument("--every-cell", action="store_true", help="one row per cell, however large the grid")
    return command


def _prune_branches_arguments(command):
    command.add_argument("run_dir", help="the run's results folder, results/<run>")
    command.add_argument("--dry-run", action="store_true", help="say what would be removed and remove nothing")
    return command


def _init_base(args) -> None:
    from annealscope.base.build import initialise_base

    settings = json.loads(args.settings)
    parameters = initialise_base(settings["corpus"], settings, args.out, args.cache_dir)
    print(f"built the base tokenizer and a {parameters:,}-parameter Llama in {args.out}")


def _fetch_dataset(args) -> None:
    from annealscope.core.settings import job_threads
    from annealscope.fetch.dataset import fetch_dataset

    fetch_dataset(args.reference, args.out, args.workers or job_threads())


def _fetch_model(args) -> None:
    from annealscope.fetch.hub import fetch_model

    fetch_model(args.name, args.revision or None, args.out)


def _fetch_tasks(args) -> None:
    from annealscope.fetch.hub import fetch_tasks

    fetch_tasks(args.tasks, args.out, args.include_path)


def _corpus(args) -> None:
    from annealscope.core.corpora import read_corpora
    from annealscope.core.io import write_jsonl
    from annealscope.core.tokens import token_counter

    count_tokens = token_counter(args.tokenizer) if args.tokenizer else None
    documents = read_corpora(args.references, args.cache_dir, count_tokens)
    count = write_jsonl(args.out, (document.as_record() for document in documents))
    print(f"wrote {count:,} documents of {', '.join(args.references)} to {args.out}")


def _source_settings(args) -> dict:
    """The source's settings from --settings, with this run's execution settings (batch sizes, …) added, or the
    schema's defaults where the command runs by hand."""
    from annealscope.core.config import definition_defaults
    from annealscope.core.settings import execution_settings

    settings = json.loads(args.settings)
    execution = execution_settings("sources", args.name)
    for block in ("generator", "classifier"):
        if settings.get(block):
            settings[block] = definition_defaults(block, settings[block]) | execution.get(block, {})
    return settings


def _train_classifier(args) -> None:
    from annealscope.core.corpora import read_corpus
    from annealscope.curate.classifiers import train_classifier

    classifier = _source_settings(args)["classifier"]
    description = train_classifier(classifier, list(read_corpus(classifier["seeds"], args.cache_dir)), args.out)
    print(f"trained the {args.name} classifier ({description['classifier']}) on {description['seed_documents']:,} "
          f"seeds: held-out AUC {description['held_out_auc']:.3f}; saved to {args.out}")


def _curate_shard(args) -> None:
    from annealscope.curate.pipeline import filter_shard

    filter_shard(args.name, _source_settings(args), args.shard, json.loads(args.pieces), args.tokenizer,
                 args.documents, args.tokens, args.signatures, args.stats, args.cache_dir, args.work_dir,
                 args.classifier)


def _dedup(args) -> None:
    from annealscope.curate.pipeline import dedup_source

    dedup_source(args.name, _source_settings(args), args.stats, args.signatures, args.out, args.out_stats)


def _finish_shard(args) -> None:
    from annealscope.curate.pipeline import finish_shard

    finish_shard(args.name, _source_settings(args), args.shard, args.filtered, args.filtered_tokens,
                 args.duplicates, args.tasks, args.documents, args.tokens, args.stats, args.diversity)


def _manifest(args) -> None:
    from annealscope.curate.pipeline import write_manifest

    write_manifest(args.name, _source_settings(args), args.filter_stats, args.dedup_stats, args.finish_stats,
                   args.diversity, args.tokens, args.tokenizer, args.manifest, args.index, args.cache_dir)


def _tokenize(args) -> None:
    from annealscope.curate.tokenize import tokenize_documents, tokenize_pieces

    meta = (tokenize_documents(args.documents, args.tokenizer, args.out, args.threads) if args.documents else
            tokenize_pieces(json.loads(args.pieces), args.tokenizer, args.out, args.cache_dir, args.threads))
    print(f"tokenized {meta['documents']:,} documents to {meta['tokens']:,} {meta['dtype']} tokens in {args.out}")


def _index_tokens_arguments(command):
    command.add_argument("tokens", nargs="+", help="the shards' .bin token arrays, in order")
    command.add_argument("--out", required=True, help="the index (.json) that training reads as one stream")
    return command


def _index_tokens(args) -> None:
    from annealscope.core.tokens import write_token_index

    index = write_token_index(args.out, args.tokens)
    print(f"indexed {len(index['shards']):,} token arrays, {index['documents']:,} documents and "
          f"{index['tokens']:,} tokens, in {args.out}")


def _train(args) -> None:
    from annealscope.anneal.launch import run_training
    from annealscope.anneal.spec import TrainSpec
    from annealscope.core.settings import execution_settings

    settings = json.loads(args.settings) | execution_settings("anneal")
    if args.job_threads:
        settings["threads"] = max(1, args.job_threads // settings.get("ranks", 1))
    spec = TrainSpec.from_settings(settings, init_model=args.init, out_dir=args.out,
                                   log_path=args.log, summary_path=args.summary, source_tokens=args.source,
                                   replay_tokens=args.replay)
    run_training(spec)


def _prepare_tasks(args) -> None:
    if args.cache_dir:  # lm-eval's own tasks read their datasets from where fetch-tasks put them
        os.environ["HF_HOME"] = str(Path(args.cache_dir, "hf").resolve())
    from annealscope.evaluate.tasks import prepare_tasks

    counts = prepare_tasks(args.tasks, args.resources, args.out, json.loads(args.heldout), args.heldout_documents,
                           args.cache_dir, args.include_path)
    print("prepared tasks: " + ", ".join(f"{task} ({count:,} items)" for task, count in counts.items()))


def _evaluate(args) -> None:
    from annealscope.evaluate.harness import EvalRequest, eval_options, evaluate_checkpoints

    tasks, limit, batch_size, backend, include_path = eval_options(json.loads(args.settings))
    requests = [EvalRequest(*job) for job in args.job]
    evaluate_checkpoints(requests, tasks, args.tasks_dir, limit, batch_size, args.trust_remote_code, backend,
                         include_path)


def _screen_shard(args) -> None:
    from annealscope.curate.screen import screen_shard

    screen_shard(args.name, _source_settings(args), args.documents, args.tasks, args.out)


def _screen(args) -> None:
    from annealscope.curate.screen import merge_screenings

    merge_screenings(args.shards, args.out)


def _collect(args) -> None:
    from annealscope.evaluate import collect as collecting

    excluded = collecting.excluded_items(args.screened) if args.screened else None
    table = collecting.collect(args.scores, args.run_dir, json.loads(args.plan), excluded)
    collecting.write_metrics(table, args.out)
    if args.items:
        collecting.write_items(collecting.collect_items(args.scores, args.run_dir, excluded), args.items)
    if args.groups:
        collecting.write_groups(args.scores, args.groups)
    cells = table[["source", "budget_tokens", "seed"]].drop_duplicates()
    missing = collecting.missing_tasks(args.scores)
    for hole in missing:
        print(f"MISSING: {hole['source']} budget {hole['budget_tokens']} seed {hole['seed']}, task {hole['task']}: "
              f"{hole['why']} (its curve has a hole here; fix the task and rerun `snakemake --forcerun evaluate`)",
              file=sys.stderr)
    print(f"collected {len(cells)} cells, {len(table)} rows into {args.out}"
          + (f"; {len(missing)} (cell, task) pairs MISSING, listed above" if missing else ""))


def _import_lm_eval(args) -> None:
    from annealscope.core.io import write_json
    from annealscope.evaluate.collect import write_items, write_metrics
    from annealscope.evaluate.imported import import_lm_eval, imported_groups

    metrics, items, missing = import_lm_eval(args.results, args.cells, json.loads(args.plan))
    out = Path(args.out)
    write_metrics(metrics, out / "metrics.csv")
    write_items(items, out / "items.parquet")
    write_json(out / "task_groups.json", imported_groups(args.results))
    for line in missing:
        print(line, file=sys.stderr)
    cells = metrics[["source", "budget_tokens", "seed"]].drop_duplicates()
    print(f"imported {len(cells)} cells, {len(metrics)} rows into {out / 'metrics.csv'}, {len(items)} item "
          f"scores into {out / 'items.parquet'} and its lm-eval groups into {out / 'task_groups.json'}"
          + (f"; {len(missing)} MISSING, listed above" if missing else ""))


def _fit(args) -> None:
    from annealscope.core.tables import read_fit_input
    from annealscope.fit.analysis import analyse, write_analysis

    settings = fit_settings(args)
    metrics, items = read_fit_input(args.metrics, args.items, args.seeds)
    analysis = analyse(metrics, settings, items)  # refuses a table it would answer wrongly from
    _warn_about_inputs(metrics, items)
    write_analysis(analysis, metrics, args.out)
    _log_results(sorted(path for path in Path(args.out).iterdir() if path.suffix in (".csv", ".png")))
    fits = analysis.result.fits
    usable = fits["form"].notna()
    flat = fits["status"].str.startswith("flat")
    print(f"fitted {int(usable.sum())} of {len(fits)} curves ({int(flat.sum())} flat, "
          f"{int((~usable).sum())} not fitted: see fits.csv status) with {settings.bootstrap} bootstrap replicates "
          f"over {'items and seeds' if items is not None else 'standard errors and seeds'}; "
          f"{len(analysis.crossovers)} crossover(s); outputs in {args.out}")


def _log_results(files: list[Path]) -> None:
    """Tables, figures or pages to the trackers, as the workflow's `anneal.monitor` asks."""
    from annealscope.core.settings import execution_settings
    from annealscope.core.tracking import log_results

    for where in log_results(files, execution_settings("anneal", job=False).get("monitor") or {}):
        print(f"logged {len(files)} file(s) of {files[0].parent} to {where}")


def _backtest(args) -> None:
    from annealscope.core.tables import read_fit_input
    from annealscope.fit.backtest import backtest, summary, write_backtest

    metrics, items = read_fit_input(args.metrics, args.items, args.seeds)
    values, decisions = backtest(metrics, fit_settings(args), items)
    write_backtest(values, decisions, args.out)
    print(f"backtest without each source's largest budget: {summary(values, decisions)}; outputs in {args.out}")


def _warn_about_inputs(metrics, items) -> None:
    """Say on the console what the fit leaves out or cannot see, not only in fits.csv."""
    import numpy as np

    from annealscope.core.tables import describe_rows
    from annealscope.fit.curves import zero_stderr_rows

    dropped = metrics[~np.isfinite(metrics["value"].to_numpy(float))]
    if len(dropped):
        print(f"warning: {len(dropped)} row(s) with a non-finite value are not fitted: "
              f"{describe_rows(dropped)}", file=sys.stderr)
    zero = zero_stderr_rows(metrics, items)
    if len(zero):
        every = " (every row: the intervals hold no evaluation noise)" if len(zero) == len(metrics) else ""
        print(f"warning: {len(zero)} row(s) have stderr 0 and no per-item results to resample{every}: "
              f"{describe_rows(zero)}; pass --items items.parquet or give their standard errors", file=sys.stderr)


def _suggest(args) -> None:
    from annealscope.core.io import atomic_path
    from annealscope.core.tables import read_fit_input
    from annealscope.fit.suggest import affordable, chosen_panels, decision, decision_curves, grid_snippet, suggest

    metrics, items = read_fit_input(args.metrics, args.items, args.seeds)
    settings = fit_settings(args)
    decisions = chosen_panels(decision_curves(metrics, settings, items), args.panel, settings.groups)
    smallest = metrics.loc[metrics["source"] != BASE_SOURCE, "total_flops"].min()
    if args.budget < smallest:
        print(f"Note: {args.budget:.3g} FLOPs is below the smallest compute any cell ran at ({smallest:.3g}), so every "
              "curve is extrapolated down to it; --budget is the total FLOPs of the run to decide on, not its tokens.")
    for (task, metric), curves in sorted(decisions.items()):
        buyable = affordable(curves, args.budget)
        unaffordable = [curve.source for curve in curves if curve not in buyable]
        note = f" ({', '.join(unaffordable)}: acquisition above it)" if unaffordable else ""
        if len(buyable) > 1:
            best, p_best = decision(buyable, args.budget)
            print(f"{task} · {metric}: best at {args.budget:.3g} FLOPs is {best} with P(best) = {p_best:.2f}{note}")
        elif len(curves) > 1:
            print(f"{task} · {metric}: at {args.budget:.3g} FLOPs only "
                  f"{buyable[0].source if buyable else 'no source'} can be bought{note}")
    suggestions = suggest(decisions, metrics, args.budget, args.count)
    if args.out:
        with atomic_path(args.out) as tmp:
            suggestions.to_csv(tmp, index=False)
    if suggestions.empty:
        print("No candidate is expected to reduce the uncertainty: the decision is as settled as one more seed or a "
              "2-4x larger budget can make it; suggested 0 cells.")
        return
    print(suggestions.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    if len(suggestions) < args.count:
        print(f"Only {len(suggestions)} of the {args.count} cells asked for are expected to reduce the uncertainty.")
    print("\nTo run them, add to the config (then `snakemake` runs only these cells, evaluates and refits):")
    print(grid_snippet(suggestions))
    print(f"suggested {len(suggestions)} cell(s) for the decision at {args.budget:.3g} FLOPs")


def fit_settings(args) -> FitSettings:
    """The fit settings: the schema's defaults, then the config's JSON (`--settings`), then the options given."""
    from annealscope.core.groups import read_groups
    from annealscope.fit.curves import FitSettings

    settings = schema_defaults("fit") | (json.loads(args.settings) if args.settings else {})
    for key in ("forms", "target_flops", "bootstrap", "micro_anneal_budget", "allocate_flops", "allocate_usd"):
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    if args.fit_metrics:
        settings["metrics"] = args.fit_metrics
    settings["higher_is_better"] = settings["higher_is_better"] | _assignments(
        getattr(args, "higher_is_better", []), "--higher-is-better", _flag)
    settings["max_tokens"] = settings["max_tokens"] | _assignments(getattr(args, "max_tokens", []), "--max-tokens",
                                                                   float)
    settings["suites"] = settings["suites"] | _assignments(args.suite, "--suite", _tasks)
    check_section("fit", {key: value for key, value in settings.items() if key != "micro_anneal_budget"})
    return FitSettings(**settings, groups=read_groups(args.groups) if args.groups else {})


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("write true or false")
    return text == "true"


def _tasks(text: str) -> list[str]:
    tasks = [task for task in text.split(",") if task]
    if not tasks:
        raise ValueError("list tasks or patterns of their names, separated by commas")
    return tasks


def _assignments(items: list[str], option: str, convert) -> dict:
    """NAME=VALUE options as a dict, with a clear error naming the option and the bad item."""
    parsed = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            parsed[name] = convert(value)
        except ValueError as error:
            raise ValueError(f"{option} {item}: expected NAME=VALUE ({error})") from None
    return parsed


def _report(args) -> None:
    from annealscope.report.html import render_report

    render_report(args.fit, args.metrics, args.out, args.title, args.backtest, args.groups, args.screened)
    print(f"wrote the report to {args.out}")
    _log_results([Path(args.out)])


def _plan(args) -> None:
    from annealscope.core.grid import print_plan
    from annealscope.validation import load_config

    print_plan(load_config(args.config, args.resources), every_cell=args.every_cell)


def _prune_branches(args) -> None:
    from rich.console import Console
    from rich.table import Table

    from annealscope.anneal.prune import prune_branches, stable_phases
    from annealscope.core.storage import format_bytes

    phases = stable_phases(args.run_dir)
    if not phases:
        raise ValueError(f"{args.run_dir}: no stable phase under {Path(args.run_dir) / 'stable'}; prune-branches is "
                         "for a run of grid.schedule: branched-wsd, given as results/<run>")
    verb = "would prune" if args.dry_run else "pruned"
    dry = " (dry run: nothing removed)" if args.dry_run else ""
    table = Table(title=f"branch checkpoints of {args.run_dir}{dry}")
    for column in ("source", "seed", f"{verb} (step)", "freed", "kept (step: why)"):
        table.add_column(column, justify="right" if column == "freed" else "left")
    for phase in phases:
        table.add_row(phase.source, str(phase.seed), ", ".join(map(str, phase.prunable)) or "-",
                      format_bytes(sum(phase.prunable.values())),
                      "; ".join(f"{step}: {why}" for step, why in phase.kept.items()) or "-")
    Console(width=160).print(table)
    if not args.dry_run:
        prune_branches(phases)
    freed = sum(sum(phase.prunable.values()) for phase in phases)
    print(f"{verb} {sum(len(phase.prunable) for phase in phases)} branch checkpoint(s) of {len(phases)} stable "
          f"phase(s), {format_bytes(freed)}; kept {sum(len(phase.kept) for phase in phases)}")


COMMANDS = {  # name: (argument builder, runner, help)
    "init-base": (_init_base_arguments, _init_base, "train the demo tokenizer and build the untrained base model"),
    "fetch-dataset": (_fetch_dataset_arguments, _fetch_dataset, "cache a hf: corpus reference for offline use"),
    "fetch-model": (_fetch_model_arguments, _fetch_model, "cache a hub model snapshot for offline use"),
    "fetch-tasks": (_fetch_tasks_arguments, _fetch_tasks, "cache the datasets of lm-eval tasks for offline use"),
    "corpus": (_corpus_arguments, _corpus, "write the documents of corpus references as JSONL"),
    "train-classifier": (_train_classifier_arguments, _train_classifier,
                         "train a source's classifier on its labelled seeds, once for all its shards"),
    "curate-shard": (_curate_shard_arguments, _curate_shard,
                     "acquire one shard of a source, apply its heuristics and classifier, sign it for dedup"),
    "dedup": (_dedup_arguments, _dedup, "decide which documents of a source repeat an earlier one"),
    "finish-shard": (_finish_shard_arguments, _finish_shard,
                     "drop a shard's duplicates, decontaminate, write its documents and tokens"),
    "manifest": (_manifest_arguments, _manifest, "add a source's shards up into its manifest and token index"),
    "tokenize": (_tokenize_arguments, _tokenize,
                 "tokenize documents, or one shard of a corpus, to a .bin token array and .json sidecar"),
    "index-tokens": (_index_tokens_arguments, _index_tokens, "index token arrays that training reads as one stream"),
    "train": (_train_arguments, _train, "launch one DeepSpeed training job (pre-training or anneal)"),
    "prepare-tasks": (_prepare_tasks_arguments, _prepare_tasks, "write the local evaluation tasks for lm-eval"),
    "evaluate": (_evaluate_arguments, _evaluate, "evaluate checkpoints with lm-evaluation-harness"),
    "screen-shard": (_screen_shard_arguments, _screen_shard,
                     "find the items of the screened tasks in a shard's curated documents"),
    "screen": (_screen_arguments, _screen, "merge every shard's screening: the items collect leaves out"),
    "collect": (_collect_arguments, _collect, "collect evaluated cells into metrics.csv"),
    "import-lm-eval": (_import_lm_eval_arguments, _import_lm_eval,
                       "metrics.csv and items.parquet of runs evaluated elsewhere with lm_eval --log_samples"),
    "fit": (_fit_arguments, _fit, "fit curves per source to a metrics table"),
    "backtest": (_backtest_arguments, _backtest,
                 "refit without each source's largest budget and check the decision there against the runs"),
    "suggest": (_suggest_arguments, _suggest, "the next cells that most reduce the decision's uncertainty"),
    "report": (_report_arguments, _report, "render the HTML report of a fit"),
    "plan": (_plan_arguments, _plan, "print the grid's cells, FLOPs and GPU-hours without Snakemake"),
    "prune-branches": (_prune_branches_arguments, _prune_branches,
                       "remove a branched grid's stable checkpoints whose cooldowns have finished, but the newest"),
}
PARENTS = {  # the options several commands share
    _init_base_arguments: [CACHE_DIR, OUT], _fetch_dataset_arguments: [OUT], _fetch_model_arguments: [OUT],
    _fetch_tasks_arguments: [OUT], _corpus_arguments: [CACHE_DIR, OUT],
    _train_classifier_arguments: [SOURCE, CACHE_DIR, OUT], _curate_shard_arguments: [SOURCE, CACHE_DIR],
    _dedup_arguments: [SOURCE, OUT], _finish_shard_arguments: [SOURCE], _manifest_arguments: [SOURCE, CACHE_DIR],
    _tokenize_arguments: [CACHE_DIR],
    _prepare_tasks_arguments: [CACHE_DIR, OUT], _screen_shard_arguments: [SOURCE, OUT], _screen_arguments: [OUT],
    _collect_arguments: [OUT], _import_lm_eval_arguments: [OUT],
    _fit_arguments: [FIT_INPUT, DECISION, OUT],
    _backtest_arguments: [FIT_INPUT, DECISION, OUT],
    _suggest_arguments: [FIT_INPUT], _report_arguments: [OUT],
}


if __name__ == "__main__":
    main()
