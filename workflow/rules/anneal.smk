# One DeepSpeed annealing job per (source, budget, seed): LR to zero over the budget, replay mixed in.
# Under grid.schedule branched-wsd, one stable phase per (source, seed) and one cooldown per budget instead.

if not BRANCHED_GRID:

    rule anneal:
        input:
            base=base_input(),
            source=path(layout.TOKENS_META),
            replay=replay_input,
        output:
            model=directory(path(layout.ANNEAL_MODEL)),
            log=path(layout.ANNEAL_LOG),
            summary=path(layout.ANNEAL_SUMMARY),
        params:
            settings=anneal_settings,
            init=input_or_base("base"),
            replay=replay_argument,
        threads: TRAIN_THREADS
        resources:
            **job_resources("anneal", nodes=config["anneal"]["nodes"], threads=TRAIN_THREADS),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("anneal_{source}_{budget}_seed{seed}"),
        benchmark:
            benchmark_path("anneal_{source}_{budget}_seed{seed}")
        shell:
            "annealscope train --settings {params.settings:q} --init {params.init} --source {input.source}"
            " {params.replay} --out {output.model} --log {output.log} --summary {output.summary} > {log} 2>&1"

else:
    # Snakemake masks jobs downstream of a job that must run and then skips ancient inputs that exist, so
    # the stable job, rerun for a new budget, reruns no finished cooldown. What should rerun a cooldown
    # (settings, base model, tokens) reaches it through the start stamp, which is never ancient.

    localrules:
        stable_start,

    rule stable_start:
        input:
            base=base_input(),
            source=path(layout.TOKENS_META),
            replay=replay_input,
        output:
            path(layout.STABLE_START),
        params:
            settings=start_settings,
        log:
            log_path("stable_start_{source}_seed{seed}"),
        run:
            stamp_start(output[0], params.settings, input, log[0])

    rule stable:
        # Checkpoints live in a folder that is no output, so a rerun for new budgets trains only the branch
        # points it lacks.
        input:
            start=path(layout.STABLE_START),
            base=base_input(),
            source=path(layout.TOKENS_META),
            replay=replay_input,
        output:
            summary=path(layout.STABLE_SUMMARY),
            branches=branch_markers(),
        params:
            settings=stable_settings,
            init=input_or_base("base"),
            replay=replay_argument,
            checkpoints=path(layout.STABLE_CHECKPOINTS),
        threads: TRAIN_THREADS
        resources:
            **job_resources("anneal", nodes=config["anneal"]["nodes"], threads=TRAIN_THREADS),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("stable_{source}_seed{seed}"),
        benchmark:
            benchmark_path("stable_{source}_seed{seed}")
        shell:
            "annealscope train --settings {params.settings:q} --init {params.init} --source {input.source}"
            " {params.replay} --out {params.checkpoints} --summary {output.summary} > {log} 2>&1"

    rule cooldown:
        input:
            start=path(layout.STABLE_START),
            branch=ancient(path(layout.STABLE_BRANCH)),
            base=base_input(),
            source=path(layout.TOKENS_META),
            replay=replay_input,
        output:
            model=directory(path(layout.ANNEAL_MODEL)),
            log=path(layout.ANNEAL_LOG),
            summary=path(layout.ANNEAL_SUMMARY),
        params:
            settings=cooldown_settings,
            init=input_or_base("base"),
            replay=replay_argument,
        threads: TRAIN_THREADS
        resources:
            **job_resources("anneal", nodes=config["anneal"]["nodes"], threads=TRAIN_THREADS),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("cooldown_{source}_{budget}_seed{seed}"),
        benchmark:
            benchmark_path("cooldown_{source}_{budget}_seed{seed}")
        shell:
            "annealscope train --settings {params.settings:q} --init {params.init} --source {input.source}"
            " {params.replay} --out {output.model} --log {output.log} --summary {output.summary} > {log} 2>&1"
