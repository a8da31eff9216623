# lm-evaluation-harness on every checkpoint (the base model once, as budget 0), then the tidy table.


rule prepare_tasks:
    input:
        **task_inputs(DECONTAMINATED, TASKS_DIR),
    output:
        directory(TASKS_DIR),
    params:
        tasks=DECONTAMINATED_TASKS,
        resources=RESOURCES,
        heldout=as_json(DECONTAMINATED_HELDOUT),
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


if SCREENED:

    use rule prepare_tasks as prepare_screened_tasks with:
        input:
            **task_inputs(SCREENED, SCREENED_TASKS_DIR),
        output:
            directory(SCREENED_TASKS_DIR),
        params:
            tasks=SCREENED_EVAL_TASKS,
            resources=RESOURCES,
            heldout=as_json(SCREENED_HELDOUT),
            documents=config["eval"]["heldout_documents"],
            cache=CACHE,
            include=INCLUDE_OPTION,
        log:
            log_path("prepare_screened_tasks"),


rule evaluate:
    input:
        checkpoint=checkpoint_input,
        tasks=evaluation_tasks,
        fetched=evaluation_fetches,
        helpers=SCORING_HELPERS,  # those that build documents are inputs of the prepared tasks
    output:
        scores=path(layout.SCORES),
        per_item=path(layout.ITEMS),
    params:
        settings=SETTINGS.evaluation(EVALUATED_ORDER),
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
        screened=lambda wildcards, input: f"--screened {input.screened}" if SCREENED else "",
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
        " --items {output.item_table} --groups {output.groups} {params.screened} > {log} 2>&1"
