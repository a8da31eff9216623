# Curation (synthesize, filter, given) and tokenization of every source and of the replay corpus.


rule curate:
    input:
        unpack(curate_inputs),
    output:
        documents=path(layout.DOCUMENTS),
        manifest=path(layout.MANIFEST),
    wildcard_constraints:
        source=SOURCE_NAMES,
    params:
        settings=source_settings,
        tokenizer=input_or_base("tokenizer"),
        cache=CACHE,
        work=lambda wildcards: path(layout.CURATE_WORK, source=wildcards.source),
    threads: 2
    resources:
        **job_resources("curate", threads=2),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("curate_{source}"),
    benchmark:
        benchmark_path("curate_{source}")
    shell:
        "annealscope curate --name {wildcards.source} --settings {params.settings:q}"
        " --tokenizer {params.tokenizer} --tasks {input.tasks} --documents {output.documents}"
        " --manifest {output.manifest} --cache-dir {params.cache} --work-dir {params.work} > {log} 2>&1"


rule tokenize:
    input:
        documents=path(layout.DOCUMENTS),
        tokenizer=tokenizer_input(),
    output:
        tokens=path(layout.TOKENS),
        meta=path(layout.TOKENS_META),
    params:
        tokenizer=input_or_base("tokenizer"),
    threads: 2
    resources:
        **job_resources("curate", threads=2),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("tokenize_{source}"),
    benchmark:
        benchmark_path("tokenize_{source}")
    shell:
        "annealscope tokenize --documents {input.documents} --tokenizer {params.tokenizer}"
        " --threads {threads} --out {output.tokens} > {log} 2>&1"
