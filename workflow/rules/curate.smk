# Curation of every source in shard jobs (docs/design.md, "Curation at scale"): a classifier trained once per
# source; per shard, acquisition, heuristics and the classifier (curate_shard, or generate_shard for a teacher's
# GPU jobs); deduplication across the source's shards; per shard, decontamination and tokens (finish_shard);
# the manifest and the token index. The replay corpus is tokenized in shard jobs, the pre-training corpus whole.
# With screened tasks (eval.decontaminate), each shard's documents are searched for their items, then merged.


rule train_classifier:
    input:
        datasets=lambda wildcards: cached_datasets([config["sources"][wildcards.source]["classifier"]["seeds"]]),
    output:
        directory(path(layout.CLASSIFIER)),
    wildcard_constraints:
        source="|".join(TRAINED_CLASSIFIERS) or "(?!)",
    params:
        settings=source_settings,
        cache=CACHE,
    resources:
        **job_resources("curate"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("train_classifier_{source}"),
    benchmark:
        benchmark_path("train_classifier_{source}")
    shell:
        "annealscope train-classifier --name {wildcards.source} --settings {params.settings:q}"
        " --cache-dir {params.cache} --out {output} > {log} 2>&1"


rule curate_shard:
    input:
        unpack(curate_shard_inputs),
    output:
        documents=path(layout.SHARD_FILTERED),
        tokens=path(layout.SHARD_FILTERED_TOKENS),
        tokens_meta=path(layout.SHARD_FILTERED_TOKENS_META),
        signatures=path(layout.SHARD_SIGNATURES),
        stats=path(layout.SHARD_FILTERED_STATS),
    wildcard_constraints:
        source="|".join(name for name, family in SHARD_FAMILIES.items() if family == "curate") or "(?!)",
        shard="[0-9]{5}",
    params:
        settings=source_settings,
        pieces=shard_pieces,
        tokenizer=input_or_base("tokenizer"),
        classifier=classifier_argument,
        cache=CACHE,
        work=lambda wildcards: path(layout.CURATE_WORK, source=wildcards.source),
    threads: family_cpus("curate")
    resources:
        **job_resources("curate"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("curate_{source}_shard{shard}"),
    benchmark:
        benchmark_path("curate_{source}_shard{shard}")
    shell:
        "annealscope curate-shard --name {wildcards.source} --settings {params.settings:q} --shard {wildcards.shard}"
        " --pieces {params.pieces:q} --tokenizer {params.tokenizer} {params.classifier} --cache-dir {params.cache}"
        " --work-dir {params.work} --documents {output.documents} --tokens {output.tokens}"
        " --signatures {output.signatures}"
        " --stats {output.stats} > {log} 2>&1"


use rule curate_shard as generate_shard with:
    wildcard_constraints:
        source="|".join(name for name, family in SHARD_FAMILIES.items() if family == "generate") or "(?!)",
        shard="[0-9]{5}",
    threads: family_cpus("generate", least=2)
    resources:
        **job_resources("generate", threads=2),


use rule curate_shard as classify_shard with:
    wildcard_constraints:
        source="|".join(name for name, family in SHARD_FAMILIES.items() if family == "classify") or "(?!)",
        shard="[0-9]{5}",
    threads: family_cpus("classify")
    resources:
        **job_resources("classify"),


rule dedup:
    input:
        stats=lambda wildcards: shard_files(layout.SHARD_FILTERED_STATS, wildcards),
        signatures=lambda wildcards: shard_files(layout.SHARD_SIGNATURES, wildcards),
    output:
        duplicates=path(layout.DUPLICATES),
        stats=path(layout.DUPLICATES_STATS),
    wildcard_constraints:
        source=SOURCE_NAMES,
    params:
        settings=source_settings,
    resources:
        **job_resources("curate"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("dedup_{source}"),
    benchmark:
        benchmark_path("dedup_{source}")
    shell:
        "annealscope dedup --name {wildcards.source} --settings {params.settings:q} --stats {input.stats}"
        " --signatures {input.signatures} --out {output.duplicates} --out-stats {output.stats} > {log} 2>&1"


rule finish_shard:
    input:
        filtered=path(layout.SHARD_FILTERED),
        filtered_tokens=path(layout.SHARD_FILTERED_TOKENS),
        filtered_tokens_meta=path(layout.SHARD_FILTERED_TOKENS_META),
        duplicates=path(layout.DUPLICATES),
        tasks=path(layout.TASKS),
    output:
        documents=path(layout.SHARD_DOCUMENTS),
        tokens=path(layout.SHARD_TOKENS),
        meta=path(layout.SHARD_TOKENS_META),
        stats=path(layout.SHARD_STATS),
        diversity=path(layout.SHARD_DIVERSITY),
    wildcard_constraints:
        source=SOURCE_NAMES,
        shard="[0-9]{5}",
    params:
        settings=source_settings,
    resources:
        **job_resources("curate"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("finish_{source}_shard{shard}"),
    benchmark:
        benchmark_path("finish_{source}_shard{shard}")
    shell:
        "annealscope finish-shard --name {wildcards.source} --settings {params.settings:q} --shard {wildcards.shard}"
        " --filtered {input.filtered} --filtered-tokens {input.filtered_tokens} --duplicates {input.duplicates}"
        " --tasks {input.tasks} --documents {output.documents} --tokens {output.tokens}"
        " --stats {output.stats} --diversity {output.diversity} > {log} 2>&1"


rule manifest:
    input:
        filtered=lambda wildcards: shard_files(layout.SHARD_FILTERED_STATS, wildcards),
        duplicates=path(layout.DUPLICATES_STATS),
        finished=lambda wildcards: shard_files(layout.SHARD_STATS, wildcards),
        diversity=lambda wildcards: shard_files(layout.SHARD_DIVERSITY, wildcards),
        tokens=lambda wildcards: shard_files(layout.SHARD_TOKENS, wildcards),
        tokenizer=tokenizer_input(),
    output:
        manifest=path(layout.MANIFEST),
        index=path(layout.TOKENS_META),
    wildcard_constraints:
        source=SOURCE_NAMES,
    params:
        settings=source_settings,
        tokenizer=input_or_base("tokenizer"),
        cache=CACHE,
    resources:
        **job_resources("curate"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("manifest_{source}"),
    benchmark:
        benchmark_path("manifest_{source}")
    shell:
        "annealscope manifest --name {wildcards.source} --settings {params.settings:q}"
        " --filter-stats {input.filtered} --dedup-stats {input.duplicates} --finish-stats {input.finished}"
        " --diversity {input.diversity} --tokens {input.tokens} --tokenizer {params.tokenizer}"
        " --cache-dir {params.cache} --manifest {output.manifest} --index {output.index} > {log} 2>&1"


if SCREENED:  # the evaluated tasks not decontaminated against (core.decontamination): found, not removed

    rule screen_shard:
        input:
            documents=path(layout.SHARD_DOCUMENTS),
            tasks=path(layout.SCREENED_TASKS),
        output:
            path(layout.SHARD_SCREENED),
        wildcard_constraints:
            source=SOURCE_NAMES,
            shard="[0-9]{5}",
        params:
            settings=source_settings,
        resources:
            **job_resources("curate"),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("screen_{source}_shard{shard}"),
        benchmark:
            benchmark_path("screen_{source}_shard{shard}")
        shell:
            "annealscope screen-shard --name {wildcards.source} --settings {params.settings:q}"
            " --documents {input.documents} --tasks {input.tasks} --out {output} > {log} 2>&1"

    rule screen:
        input:
            screened_shards,
        output:
            path(layout.SCREENED),
        params:
            code=code_of("annealscope.curate.screen"),
        resources:
            **job_resources("default"),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("screen"),
        shell:
            "annealscope screen {input} --out {output} > {log} 2>&1"


rule tokenize:
    input:
        documents=path(layout.DOCUMENTS),
        tokenizer=tokenizer_input(),
    output:
        tokens=path(layout.TOKENS),
        meta=path(layout.TOKENS_META),
    wildcard_constraints:
        source=WHOLE_CORPORA,
    params:
        tokenizer=input_or_base("tokenizer"),
    threads: family_cpus("curate", least=2)
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


if not WHOLE_REPLAY:

    rule tokenize_replay_shard:
        input:
            tokenizer=tokenizer_input(),
            datasets=cached_datasets(config["replay"]["corpus"]),
        output:
            tokens=path(layout.SHARD_TOKENS, source="replay"),
            meta=path(layout.SHARD_TOKENS_META, source="replay"),
        wildcard_constraints:
            shard="[0-9]{5}",
        params:
            pieces=replay_pieces,
            tokenizer=input_or_base("tokenizer"),
            cache=CACHE,
        threads: family_cpus("curate", least=2)
        resources:
            **job_resources("curate", threads=2),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("tokenize_replay_shard{shard}"),
        benchmark:
            benchmark_path("tokenize_replay_shard{shard}")
        shell:
            "annealscope tokenize --pieces {params.pieces:q} --tokenizer {params.tokenizer} --cache-dir {params.cache}"
            " --threads {threads} --out {output.tokens} > {log} 2>&1"

    rule index_replay:
        input:
            replay_shard_files(),
        output:
            path(layout.TOKENS_META, source="replay"),
        resources:
            **job_resources("default"),
        conda:
            "../../envs/annealscope.yaml"
        log:
            log_path("index_replay"),
        shell:
            "annealscope index-tokens {input} --out {output} > {log} 2>&1"
