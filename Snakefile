# annealscope: data source utility as scaling curves (see README.md and config/README.md).
from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; `--configfile X` replaces it rather than being merged into it.
if not config:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/fetch.smk"
include: "workflow/rules/base.smk"
include: "workflow/rules/curate.smk"
include: "workflow/rules/anneal.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/fit.smk"
include: "workflow/rules/report.smk"


localrules:
    all,


rule all:
    input:
        final_outputs(),
    default_target: True
