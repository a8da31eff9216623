# Fits, decisions and the report: they depend on metrics.csv and fit settings only, never on training.


rule fit:
    input:
        metrics=path(layout.METRICS),
        item_table=path(layout.ITEMS_TABLE),
        groups=path(layout.TASK_GROUPS),
    output:
        fits=report(fit_output("fits.csv"), caption="../report/fits.rst", category="Fit"),
        predictions=fit_output("predictions.csv"),
        decisions=report(fit_output("decisions.csv"), caption="../report/decisions.rst", category="Fit"),
        pairwise=fit_output("pairwise.csv"),
        crossovers=report(fit_output("crossovers.csv"), caption="../report/crossovers.rst", category="Fit"),
        allocation=report(fit_output("allocation.csv"), caption="../report/allocation.rst", category="Fit"),
        curves=report(fit_output("curves.png"), caption="../report/curves.rst", category="Figures"),
        ranking=report(fit_output("ranking.png"), caption="../report/ranking.rst", category="Figures"),
        crossover_figure=report(fit_output("crossovers.png"), caption="../report/crossovers.rst",
                                category="Figures"),
        costs=report(fit_output("costs.png"), caption="../report/costs.rst", category="Figures"),
    params:
        code=code_of("annealscope.fit.analysis", "annealscope.core.tables"),
        settings=SETTINGS.fit(),
        out=lambda wildcards, output: Path(output.fits).parent,
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("fit"),
    shell:
        "annealscope fit {input.metrics} --items {input.item_table} --groups {input.groups} --out {params.out}"
        " --settings {params.settings:q}"
        " > {log} 2>&1"


rule backtest:
    input:
        metrics=path(layout.METRICS),
        item_table=path(layout.ITEMS_TABLE),
        groups=path(layout.TASK_GROUPS),
    output:
        values=report(backtest_output("backtest.csv"), caption="../report/backtest.rst", category="Fit"),
        decisions=report(backtest_output("backtest_decisions.csv"), caption="../report/backtest.rst",
                         category="Fit"),
    params:
        code=code_of("annealscope.fit.backtest", "annealscope.core.tables"),
        settings=SETTINGS.fit(),
        out=lambda wildcards, output: Path(output.values).parent,
    resources:
        **job_resources("default"),
    conda:
        "../../envs/annealscope.yaml"
    log:
        log_path("backtest"),
    shell:
        "annealscope backtest {input.metrics} --items {input.item_table} --groups {input.groups} --out {params.out}"
        " --settings {params.settings:q} > {log} 2>&1"
