# One DeepSpeed annealing job per (source, budget, seed): LR to zero over the budget, replay mixed in.


rule anneal:
    input:
        base=base_input(),
        source=path(layout.TOKENS),
        replay=replay_input,
    output:
        model=directory(path(layout.ANNEAL_MODEL)),
        log=path(layout.ANNEAL_LOG),
        summary=path(layout.ANNEAL_SUMMARY),
    params:
        settings=anneal_settings,
        init=input_or_pretrained("base"),
        replay=replay_argument,
    threads: config["anneal"]["ranks"] * config["anneal"]["threads"]
    resources:
        **job_resources("anneal", nodes=config["anneal"]["nodes"]),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("anneal_{source}_{budget}_seed{seed}"),
    benchmark:
        benchmark_path("anneal_{source}_{budget}_seed{seed}")
    shell:
        "annealscope train --settings {params.settings:q} --init {params.init} --source {input.source}"
        " {params.replay} --out {output.model} --log {output.log} --summary {output.summary} > {log} 2>&1"
