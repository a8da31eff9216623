# The base model: for the demo, a tokenizer and a tiny Llama built and pre-trained on a local corpus.


rule base_init:
    input:
        datasets=cached_datasets(config["base_model"].get("build", {}).get("corpus", [])),
    output:
        directory(path(layout.BASE_INIT)),
    params:
        settings=lambda wildcards: as_json(config["base_model"]["build"]),
        cache=CACHE,
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("base_init"),
    shell:
        "annealscope init-base --settings {params.settings:q} --cache-dir {params.cache} --out {output} > {log} 2>&1"


rule corpus_documents:
    input:
        unpack(corpus_inputs),
    output:
        path(layout.DOCUMENTS),
    wildcard_constraints:
        source=WHOLE_CORPORA,
    params:
        references=corpus_references,
        tokenizer=tokenizer_argument,
        cache=CACHE,
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("corpus_{source}"),
    shell:
        "annealscope corpus {params.references:q} {params.tokenizer} --cache-dir {params.cache} --out {output}"
        " > {log} 2>&1"


rule pretrain_base:
    input:
        init=path(layout.BASE_INIT),
        tokens=path(layout.TOKENS, source="pretrain"),
    output:
        model=directory(path(layout.BASE_MODEL)),
        log=path(layout.BASE_LOG),
        summary=path(layout.BASE_SUMMARY),
    params:
        settings=lambda wildcards: SETTINGS.pretrain(),
    threads: config["anneal"]["ranks"] * BASE_THREADS
    resources:
        **job_resources("anneal", threads=config["anneal"]["ranks"] * BASE_THREADS),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("pretrain_base"),
    benchmark:
        benchmark_path("pretrain_base")
    shell:
        "annealscope train --settings {params.settings:q} --init {input.init} --source {input.tokens}"
        " --out {output.model} --log {output.log} --summary {output.summary} --job-threads {threads}"
        " > {log} 2>&1"
