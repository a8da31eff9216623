# lm-evaluation-harness on every checkpoint (the base model once, as budget 0), then the tidy table.


rule prepare_tasks:
    input:
        datasets=cached_datasets([ref for refs in config["eval"]["heldout"].values() for ref in refs]),
        fetched=fetched_tasks,
        user_tasks=USER_TASK_FILES,
    output:
        directory(path(layout.TASKS)),
    params:
        tasks=config["eval"]["tasks"],
        resources=RESOURCES,
        heldout=as_json(config["eval"]["heldout"]),
        documents=config["eval"]["heldout_documents"],
        cache=CACHE,
        include=INCLUDE_OPTION,
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("prepare_tasks"),
    shell:
        "annealscope prepare-tasks {params.tasks} --resources {params.resources} --heldout {params.heldout:q}"
        " --heldout-documents {params.documents} --cache-dir {params.cache} {params.include} --out {output}"
        " > {log} 2>&1"


rule evaluate:
    input:
        checkpoint=checkpoint_input,
        tasks=path(layout.TASKS),
        fetched=fetched_tasks,
    output:
        scores=path(layout.SCORES),
        per_item=path(layout.ITEMS),
    params:
        settings=SETTINGS.evaluation(),
        checkpoint=input_or_base("checkpoint"),
        trust=config["base_model"]["trust_remote_code"],
        hf_home=HF_HOME,
    threads: config["eval"]["threads"]
    priority: 1  # scored as soon as its checkpoint exists, ahead of the anneals still waiting for a core
    resources:
        **job_resources("evaluate", threads=config["eval"]["threads"]),
        **{EVALUATOR: 1},
    log:
        log_path("evaluate_{source}_{budget}_seed{seed}"),
    benchmark:
        benchmark_path("evaluate_{source}_{budget}_seed{seed}")
    run:
        # In a thread of the main process locally (profiles/default: force-use-threads), sharing one evaluator.
        evaluate_in_process(params.checkpoint, output.scores, output.per_item, params.settings, input.tasks,
                            log[0], params.trust, params.hf_home)


rule collect:
    input:
        unpack(collect_inputs),
    output:
        metrics=report(path(layout.METRICS), caption="../report/metrics.rst", category="Results"),
        item_table=path(layout.ITEMS_TABLE),
        groups=path(layout.TASK_GROUPS),
    params:
        code=code_of("annealscope.evaluate.collect"),
        run_dir=lambda wildcards, output: Path(output.metrics).parent,
        plan=as_json(config["plan"]),
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("collect"),
    shell:
        "annealscope collect {input.scores} --run-dir {params.run_dir} --plan {params.plan:q} --out {output.metrics}"
        " --items {output.item_table} --groups {output.groups} > {log} 2>&1"
