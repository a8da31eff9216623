"""The `annealscope` command: one subcommand per stage; the Snakemake rules call these."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ONLINE_COMMANDS = {"fetch-dataset", "fetch-model", "fetch-tasks"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="annealscope", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("init-base", help="train the demo tokenizer and build the untrained base model")
    command.add_argument("--settings", required=True, help="JSON of base_model.build")
    command.add_argument("--cache-dir", help="where the fetch rule caches hf: references")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_init_base)

    command = commands.add_parser("fetch-dataset", help="cache a hf: corpus reference for offline use")
    command.add_argument("reference")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_fetch_dataset)

    command = commands.add_parser("fetch-model", help="cache a hub model snapshot for offline use")
    command.add_argument("name")
    command.add_argument("--revision", default="")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_fetch_model)

    command = commands.add_parser("fetch-tasks", help="cache the datasets of lm-eval tasks for offline use")
    command.add_argument("tasks", nargs="+")
    command.add_argument("--hf-home", required=True, help="the Hugging Face cache evaluation jobs read")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_fetch_tasks)

    command = commands.add_parser("corpus", help="write the documents of corpus references as JSONL")
    command.add_argument("references", nargs="+")
    command.add_argument("--cache-dir", help="where the fetch rule caches hf: references")
    command.add_argument("--tokenizer", help="the base tokenizer, to apply max_tokens caps")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_corpus)

    command = commands.add_parser("curate", help="curate one source: documents and manifest")
    command.add_argument("--name", required=True)
    command.add_argument("--settings", required=True, help="JSON of sources.<name>")
    command.add_argument("--tokenizer", required=True)
    command.add_argument("--tasks", required=True, help="prepared evaluation tasks, for decontamination")
    command.add_argument("--cache-dir", help="where the fetch rule caches hf: references")
    command.add_argument("--work-dir", required=True, help="resumable intermediate files (generation shards)")
    command.add_argument("--documents", required=True)
    command.add_argument("--manifest", required=True)
    command.set_defaults(run=_curate)

    command = commands.add_parser("tokenize", help="tokenize documents to a .bin token array and .json sidecar")
    command.add_argument("--documents", required=True)
    command.add_argument("--tokenizer", required=True)
    command.add_argument("--out", required=True, help="the .bin path; the sidecar is the same name with .json")
    command.add_argument("--threads", type=int, help="cores for the tokenizer (default: all)")
    command.set_defaults(run=_tokenize)

    command = commands.add_parser("train", help="launch one DeepSpeed training job (pre-training or anneal)")
    command.add_argument("--settings", required=True, help="JSON of the training settings")
    command.add_argument("--init", required=True, help="checkpoint to start from")
    command.add_argument("--source", required=True, help="token array of the data to train on")
    command.add_argument("--replay", help="token array of replay data")
    command.add_argument("--out", required=True, help="the model export, or a stable phase's checkpoint folder")
    command.add_argument("--log", help="the per-step log (not written by a stable phase)")
    command.add_argument("--summary", required=True)
    command.set_defaults(run=_train)

    command = commands.add_parser("prepare-tasks", help="write the local evaluation tasks for lm-eval")
    command.add_argument("tasks", nargs="*")
    command.add_argument("--resources", default="resources")
    command.add_argument("--heldout", default="{}", help="JSON of eval.heldout: {domain: [corpus references]}")
    command.add_argument("--heldout-documents", type=int, default=200)
    command.add_argument("--cache-dir", help="where the fetch rule caches hf: references")
    command.add_argument("--out", required=True)
    command.set_defaults(run=_prepare_tasks)

    command = commands.add_parser("evaluate", help="evaluate checkpoints with lm-evaluation-harness")
    command.add_argument("--tasks-dir", required=True)
    command.add_argument("--settings", required=True, help="JSON of eval")
    command.add_argument("--job", nargs=3, action="append", required=True, metavar=("CHECKPOINT", "SCORES", "ITEMS"))
    command.add_argument("--trust-remote-code", action="store_true")
    command.add_argument("--hf-home", help="the Hugging Face cache fetch-tasks filled")
    command.set_defaults(run=_evaluate)

    command = commands.add_parser("collect", help="collect evaluated cells into metrics.csv")
    command.add_argument("scores", nargs="+")
    command.add_argument("--run-dir", required=True)
    command.add_argument("--plan", default="{}", help="JSON of plan (gpu_hour_usd, gpu_peak_flops, mfu): dollars")
    command.add_argument("--out", required=True)
    command.add_argument("--items", help="where to write every cell's per-item scores (parquet)")
    command.set_defaults(run=_collect)

    command = commands.add_parser("fit", help="fit curves per source to a metrics table")
    command.add_argument("metrics")
    command.add_argument("--out", required=True)
    command.add_argument("--target-flops", type=float, nargs="*", default=None)
    command.add_argument("--forms", nargs="+")
    command.add_argument("--fit-metrics", nargs="+", help="metrics to fit (default: fit.metrics, else all)")
    command.add_argument("--bootstrap", type=int)
    command.add_argument("--micro-anneal-budget", type=int)
    command.add_argument("--higher-is-better", action="append", default=[], metavar="METRIC=true|false")
    command.add_argument("--items", help="per-item results (items.parquet from collect): bootstrap over items")
    command.add_argument("--allocate-flops", type=float, nargs="*", help="FLOP budgets to split across sources")
    command.add_argument("--allocate-usd", type=float, nargs="*", help="dollar budgets to split across sources")
    command.add_argument("--max-tokens", action="append", default=[], metavar="SOURCE=TOKENS",
                         help="unique tokens a source can supply (default: the table's available_tokens)")
    command.add_argument("--settings", help="JSON of fit (command-line options take precedence)")
    command.set_defaults(run=_fit)

    command = commands.add_parser("suggest", help="the next cells that most reduce the decision's uncertainty")
    command.add_argument("metrics")
    command.add_argument("--budget", type=float, required=True, help="the target compute (FLOPs) of the decision")
    command.add_argument("--count", type=int, default=3, help="how many cells to propose")
    command.add_argument("--items", help="per-item results (items.parquet from collect)")
    command.add_argument("--out", help="also write the suggestions as CSV")
    command.add_argument("--forms", nargs="+", help="the forms to mix (default: fit.forms, else all defaults)")
    command.add_argument("--fit-metrics", nargs="+", help="metrics whose decisions count (default: all)")
    command.add_argument("--bootstrap", type=int)
    command.add_argument("--settings", help="JSON of fit (metrics, forms, bootstrap, directions)")
    command.set_defaults(run=_suggest, target_flops=None, micro_anneal_budget=None, allocate_flops=None,
                         allocate_usd=None, higher_is_better=[], max_tokens=[])

    command = commands.add_parser("report", help="render the HTML report of a fit")
    command.add_argument("--fit", required=True)
    command.add_argument("--metrics", required=True)
    command.add_argument("--out", required=True)
    command.add_argument("--title", default="annealscope")
    command.set_defaults(run=_report)

    command = commands.add_parser("plan", help="print the grid's cells, FLOPs and GPU-hours without Snakemake")
    command.add_argument("config", nargs="?", default="config/config.yaml")
    command.add_argument("--resources", default="resources")
    command.set_defaults(run=_plan)

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


def _init_base(args) -> None:
    from annealscope.base.build import initialise_base

    settings = json.loads(args.settings)
    parameters = initialise_base(settings["corpus"], settings, args.out, args.cache_dir)
    print(f"built the base tokenizer and a {parameters:,}-parameter Llama in {args.out}")


def _fetch_dataset(args) -> None:
    from annealscope.fetch.hub import fetch_dataset

    fetch_dataset(args.reference, args.out)


def _fetch_model(args) -> None:
    from annealscope.fetch.hub import fetch_model

    fetch_model(args.name, args.revision or None, args.out)


def _fetch_tasks(args) -> None:
    from annealscope.fetch.hub import fetch_tasks

    fetch_tasks(args.tasks, args.out)


def _corpus(args) -> None:
    from annealscope.core.corpora import read_corpora
    from annealscope.core.io import write_jsonl
    from annealscope.core.tokens import token_counter

    count_tokens = token_counter(args.tokenizer) if args.tokenizer else None
    documents = read_corpora(args.references, args.cache_dir, count_tokens)
    count = write_jsonl(args.out, (document.as_record() for document in documents))
    print(f"wrote {count:,} documents of {', '.join(args.references)} to {args.out}")


def _curate(args) -> None:
    from annealscope.curate.pipeline import curate_source

    curate_source(args.name, json.loads(args.settings), args.tokenizer, args.tasks, args.documents, args.manifest,
                  cache_dir=args.cache_dir, work_dir=args.work_dir)


def _tokenize(args) -> None:
    from annealscope.curate.tokenize import tokenize_documents

    meta = tokenize_documents(args.documents, args.tokenizer, args.out, Path(args.out).with_suffix(".json"),
                              args.threads)
    print(f"tokenized {meta['documents']:,} documents to {meta['tokens']:,} {meta['dtype']} tokens in {args.out}")


def _train(args) -> None:
    from annealscope.anneal.launch import run_training
    from annealscope.anneal.spec import TrainSpec

    spec = TrainSpec.from_settings(json.loads(args.settings), init_model=args.init, out_dir=args.out,
                                   log_path=args.log, summary_path=args.summary, source_tokens=args.source,
                                   replay_tokens=args.replay)
    run_training(spec)


def _prepare_tasks(args) -> None:
    from annealscope.evaluate.tasks import prepare_tasks

    counts = prepare_tasks(args.tasks, args.resources, args.out, json.loads(args.heldout), args.heldout_documents,
                           args.cache_dir)
    print("prepared tasks: " + ", ".join(f"{task} ({count:,} items)" for task, count in counts.items()))


def _evaluate(args) -> None:
    from annealscope.evaluate.harness import EvalRequest, evaluate_checkpoints

    settings = json.loads(args.settings)
    requests = [EvalRequest(*job) for job in args.job]
    evaluate_checkpoints(requests, settings["tasks"], args.tasks_dir, settings.get("limit"),
                         settings.get("batch_size", 32), args.trust_remote_code, settings.get("backend", "hf"))


def _collect(args) -> None:
    from annealscope.evaluate.collect import collect, collect_items, missing_tasks, write_items, write_metrics

    table = collect(args.scores, args.run_dir, json.loads(args.plan))
    write_metrics(table, args.out)
    if args.items:
        write_items(collect_items(args.scores, args.run_dir), args.items)
    cells = table[["source", "budget_tokens", "seed"]].drop_duplicates()
    missing = missing_tasks(args.scores)
    for hole in missing:
        print(f"MISSING: {hole['source']} budget {hole['budget_tokens']} seed {hole['seed']}, task {hole['task']}: "
              f"{hole['why']} (its curve has a hole here; fix the task and rerun `snakemake --forcerun evaluate`)",
              file=sys.stderr)
    print(f"collected {len(cells)} cells, {len(table)} rows into {args.out}"
          + (f"; {len(missing)} (cell, task) pairs MISSING, listed above" if missing else ""))


def _fit(args) -> None:
    import pandas as pd

    from annealscope.fit.analysis import analyse, write_analysis

    settings = fit_settings(args)
    metrics = pd.read_csv(args.metrics)
    items = pd.read_parquet(args.items) if args.items else None
    analysis = analyse(metrics, settings, items)
    write_analysis(analysis, metrics, args.out)
    fits = analysis.result.fits
    usable = fits["form"].notna()
    flat = fits["status"].str.startswith("flat")
    print(f"fitted {int(usable.sum())} of {len(fits)} curves ({int(flat.sum())} flat, "
          f"{int((~usable).sum())} not fitted: see fits.csv status) with {settings.bootstrap} bootstrap replicates "
          f"over {'items and seeds' if items is not None else 'standard errors and seeds'}; "
          f"{len(analysis.crossovers)} crossover(s); outputs in {args.out}")


def _suggest(args) -> None:
    import pandas as pd

    from annealscope.core.io import atomic_path
    from annealscope.fit.suggest import decision, grid_snippet, mixed_curves, suggest

    metrics = pd.read_csv(args.metrics)
    items = pd.read_parquet(args.items) if args.items else None
    decisions = mixed_curves(metrics, fit_settings(args), items)
    for (task, metric), curves in sorted(decisions.items()):
        if len(curves) > 1:
            best, p_best = decision(curves, args.budget)
            print(f"{task} · {metric}: best at {args.budget:.3g} FLOPs is {best} with P(best) = {p_best:.2f}")
    suggestions = suggest(decisions, metrics, args.budget, args.count)
    print(suggestions.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    if not (suggestions["reduction_per_1e18_flops"] > 0).any():
        print("No candidate is expected to reduce the uncertainty: the decision is as settled as one more seed or a "
              "2-4x larger budget can make it.")
    print("\nTo run them, add to the config (then `snakemake` runs only these cells, evaluates and refits):")
    print(grid_snippet(suggestions))
    if args.out:
        with atomic_path(args.out) as tmp:
            suggestions.to_csv(tmp, index=False)
    print(f"suggested {len(suggestions)} cell(s) for the decision at {args.budget:.3g} FLOPs")


def fit_settings(args):
    """FitSettings from the config's JSON (`--settings`) with command-line options taking precedence."""
    from annealscope.fit.curves import FitSettings

    settings = json.loads(args.settings) if args.settings else {}
    directions = dict(settings.get("higher_is_better", {})) | _assignments(args.higher_is_better,
                                                                          "--higher-is-better", _flag)
    defaults = FitSettings()
    keys = ("forms", "target_flops", "bootstrap", "micro_anneal_budget", "allocate_flops", "allocate_usd")
    chosen = {key: getattr(args, key) if getattr(args, key) is not None else settings.get(key, getattr(defaults, key))
              for key in keys}
    return FitSettings(**chosen, higher_is_better=directions, metrics=args.fit_metrics or settings.get("metrics"),
                       max_tokens=settings.get("max_tokens", {}) | _assignments(args.max_tokens, "--max-tokens", float))


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("write true or false")
    return text == "true"


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

    render_report(args.fit, args.metrics, args.out, args.title)
    print(f"wrote the report to {args.out}")


def _plan(args) -> None:
    from annealscope.core.grid import print_plan
    from annealscope.validation import load_config

    print_plan(load_config(args.config, args.resources))


if __name__ == "__main__":
    main()
