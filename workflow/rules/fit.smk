# Fits, decisions and the report: they depend on metrics.csv and fit settings only, never on training.


rule fit:
    input:
        metrics=path(layout.METRICS),
    output:
        fits=report(fit_outputs()[0], caption="../report/fits.rst", category="Fit"),
        predictions=fit_outputs()[1],
        decisions=report(fit_outputs()[2], caption="../report/decisions.rst", category="Fit"),
        figure=report(fit_outputs()[3], caption="../report/curves.rst", category="Fit"),
        pairwise=fit_outputs()[4],
        ranking=report(fit_outputs()[5], caption="../report/ranking.rst", category="Fit"),
    params:
        settings=fit_settings(),
        out=lambda wildcards, output: Path(output.fits).parent,
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("fit"),
    shell:
        "annealscope fit {input.metrics} --out {params.out} --settings {params.settings:q} > {log} 2>&1"


rule report:
    input:
        fits=rules.fit.output.fits,
        metrics=path(layout.METRICS),
    output:
        path(layout.REPORT),
    params:
        fit_dir=lambda wildcards, input: Path(input.fits).parent,
        title=f"annealscope run {RUN}",
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("report"),
    shell:
        "annealscope report --fit {params.fit_dir} --metrics {input.metrics} --out {output}"
        " --title {params.title:q} > {log} 2>&1"
