# The pre-stage: every hub dataset and model of the config, downloaded once into config `cache_dir`,
# so that curation, annealing and evaluation run offline on compute nodes. They run where Snakemake runs
# (a login node on a cluster, which reaches the hub), never as cluster jobs.

localrules:
    fetch_dataset,
    fetch_model,
    fetch_tasks,


rule fetch_dataset:
    output:
        directory(f"{CACHE}/datasets/{{slug}}"),
    wildcard_constraints:
        slug="|".join(HUB_DATASETS) or "(?!)",
    params:
        reference=lambda wildcards: HUB_DATASETS[wildcards.slug],
    threads: config["fetch_workers"]  # each streams one of the dataset's files (fetch/dataset.py)
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("fetch_dataset_{slug}"),
    shell:
        "annealscope fetch-dataset {params.reference:q} --out {output} > {log} 2>&1"


rule fetch_model:
    output:
        directory(f"{CACHE}/models/{{slug}}"),
    wildcard_constraints:
        slug="|".join(HUB_MODELS) or "(?!)",
    params:
        name=lambda wildcards: HUB_MODELS[wildcards.slug][0],
        revision=lambda wildcards: HUB_MODELS[wildcards.slug][1] or "",
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("fetch_model_{slug}"),
    shell:
        "annealscope fetch-model {params.name:q} --revision {params.revision:q} --out {output} > {log} 2>&1"


rule fetch_tasks:
    output:
        directory(f"{CACHE}/lm-eval/tasks-{{key}}"),
    wildcard_constraints:
        key="|".join(FETCHES) or "(?!)",
    params:
        tasks=lambda wildcards: FETCHES[wildcards.key],
        hf_home=f"{CACHE}/hf",
        include=INCLUDE_OPTION,
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("fetch_tasks_{key}"),
    shell:
        "annealscope fetch-tasks {params.tasks} --hf-home {params.hf_home} {params.include} --out {output} > {log} 2>&1"
