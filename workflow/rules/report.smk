# The HTML report of a fit: every table and figure on one page with captions.


rule report:
    input:
        fits=rules.fit.output.fits,
        backtest=rules.backtest.output.values,
        metrics=path(layout.METRICS),
        groups=path(layout.TASK_GROUPS),
        captions=REPORT_CAPTIONS,  # read into the page: an edited caption remakes it
        screened=[path(layout.SCREENED)] if SCREENED else [],
    output:
        path(layout.REPORT),
    params:
        code=code_of("annealscope.report.html"),
        fit_dir=lambda wildcards, input: Path(input.fits).parent,
        backtest_dir=lambda wildcards, input: Path(input.backtest).parent,
        title=f"annealscope run {RUN}",
        screened=lambda wildcards, input: f"--screened {input.screened}" if SCREENED else "",
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("report"),
    shell:
        "annealscope report --fit {params.fit_dir} --backtest {params.backtest_dir} --metrics {input.metrics}"
        " --groups {input.groups} {params.screened} --out {output}"
        " --title {params.title:q} > {log} 2>&1"
