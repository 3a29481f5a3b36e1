# Outputs stage (nqp_resilience.outputs): the replication check, the LaTeX tables and the
# document that collects them, and the figures.

import os


# Tables, figures, the replication check and the document take about a second each: on a
# cluster they run where Snakemake runs, not through the queue. The tables and the replication
# check have priority 1 (as bootstrap_reduce): each runs as soon as its inputs exist, so that the
# run ends soon after its last estimate.
localrules:
    replication_check,
    table_indicators,
    table_desc,
    table_estimates,
    table_bootstrap,
    table_balance,
    table_replication,
    tables_document,
    tables_pdf,
    figures_coefficients,
    figures_data,


rule replication_check:
    input:
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=PUBLISHED_SPECS),
        published="resources/published.yaml",
    output:
        report=f"{RESULTS}/tables/replication_check.md",
    log:
        f"{RESULTS}/logs/replication_check/replication_check.log",
    benchmark:
        f"{RESULTS}/benchmarks/replication_check/replication_check.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(),
        files=job_files,
    shell:
        script_job("outputs/replication_check.py")


rule table_indicators:
    input:
        weights=rules.nqp_index.output.weights,
        indicators="resources/indicators.yaml",
        labels=LABELS,
        template="resources/templates/table1.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/table1.tex",
            caption="../report/tables/table1.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_indicators/table_indicators.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_indicators/table_indicators.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            decimals=config["tables"]["decimals"],
            directions=config["entropy"]["directions"],
        ),
        files=job_files,
    shell:
        script_job("outputs/table_indicators.py")


rule table_desc:
    input:
        estimate=f"{RESULTS}/estimates/desc_stats.json",
        labels=LABELS,
        template="resources/templates/table2.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/table2.tex",
            caption="../report/tables/table2.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_desc/table_desc.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_desc/table_desc.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            decimals=config["tables"]["decimals"],
        ),
        files=job_files,
    shell:
        script_job("outputs/table_desc.py")


rule table_estimates:
    input:
        estimates=table_estimate_files,
        # the wild bootstrap results of the table's specs, only with tables.bootstrap_p
        bootstrap=table_bootstrap_files,
        labels=LABELS,
        template="resources/templates/table{number}.tex.j2",
        layout="resources/templates/_estimates.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/table{{number}}.tex",
            caption="../report/tables/table_estimates.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_estimates/{{number}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_estimates/{{number}}.tsv"
    wildcard_constraints:
        number="[3-7]",
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            table=lambda wildcards: int(wildcards.number),
            specs=table_specs,
            decimals=config["tables"]["decimals"],
            stars=config["tables"]["stars"],
            control_variables=config["control_variables"],
            bootstrap_p=config["tables"]["bootstrap_p"],
        ),
        files=job_files,
    shell:
        script_job("outputs/table_estimates.py")


# Table 8: the wild cluster bootstrap of every spec of bootstrap.specs (one row each)
rule table_bootstrap:
    input:
        bootstrap=[bootstrap_file(spec) for spec in BOOTSTRAP_SPECS],
        labels=LABELS,
        template="resources/templates/table8.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/table8.tex",
            caption="../report/tables/table8.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_bootstrap/table_bootstrap.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_bootstrap/table_bootstrap.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            decimals=config["tables"]["decimals"],
        ),
        files=job_files,
    shell:
        script_job("outputs/table_bootstrap.py")


rule table_balance:
    input:
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=PSM_SPECS),
        labels=LABELS,
        template="resources/templates/psm_balance.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/psm_balance.tex",
            caption="../report/tables/psm_balance.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_balance/table_balance.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_balance/table_balance.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            decimals=1,
        ),
        files=job_files,
    shell:
        script_job("outputs/table_balance.py")


rule table_replication:
    input:
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=PUBLISHED_SPECS),
        published="resources/published.yaml",
        labels=LABELS,
        template="resources/templates/replication.tex.j2",
    output:
        table=report(
            f"{RESULTS}/tables/replication.tex",
            caption="../report/tables/replication.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/table_replication/table_replication.log",
    benchmark:
        f"{RESULTS}/benchmarks/table_replication/table_replication.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            decimals=config["tables"]["decimals"],
        ),
        files=job_files,
    shell:
        script_job("outputs/table_replication.py")


rule tables_document:
    input:
        tables=TABLE_FILES,
    output:
        document=f"{RESULTS}/tables/tables.tex",
    log:
        f"{RESULTS}/logs/tables_document/tables_document.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables_document/tables_document.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        job=job_params(
            language=config["tables"]["language"],
        ),
        files=job_files,
    shell:
        script_job("outputs/tables_document.py")


rule tables_pdf:
    input:
        document=rules.tables_document.output.document,
        tables=TABLE_FILES,
    output:
        pdf=report(
            f"{RESULTS}/tables/tables.pdf",
            caption="../report/tables/tables_pdf.rst",
            category="Tables",
        ),
        table3_png=f"{RESULTS}/tables/table3.png",
    log:
        f"{RESULTS}/logs/tables_pdf/tables_pdf.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables_pdf/tables_pdf.tsv"
    priority: 1
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        job=job_params(
            engine=TEX_ENGINE,
        ),
        files=job_files,
    shell:
        script_job("outputs/tables_pdf.py")


# The figures, in three jobs of one job function (nqp_resilience.outputs.jobs.figures_job, which
# draws the figures its outputs name), so that each starts as soon as its inputs exist: the
# data figures after the index, the score figures after the panel, the coefficient plot after
# the last estimate and bootstrap (docs/figures.md).
rule figures_coefficients:
    input:
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=REGRESSION_SPECS),
        # the bootstrap CI of every spec that has one, drawn next to its CR1 CI
        bootstrap=[bootstrap_file(spec) for spec in BOOTSTRAP_SPECS],
        panel=rules.analysis_panel.output.panel,
    output:
        coefficients_pdf=f"{RESULTS}/figures/coefficients.pdf",
        coefficients_png=report(
            f"{RESULTS}/figures/coefficients.png",
            caption="../report/figures/coefficients.rst",
            category="Figures",
            subcategory="Estimates",
        ),
    log:
        f"{RESULTS}/logs/figures_coefficients/figures_coefficients.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures_coefficients/figures_coefficients.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(control_variables=config["control_variables"]),
        files=job_files,
    shell:
        script_job("outputs/figures_coefficients.py")


rule figures_data:
    input:
        panel=rules.analysis_panel.output.panel,
        weights=rules.nqp_index.output.weights,
    output:
        trends_pdf=f"{RESULTS}/figures/trends_by_region.pdf",
        trends_png=report(
            f"{RESULTS}/figures/trends_by_region.png",
            caption="../report/figures/trends_by_region.rst",
            category="Figures",
            subcategory="Data",
        ),
        weights_pdf=f"{RESULTS}/figures/entropy_weights.pdf",
        weights_png=report(
            f"{RESULTS}/figures/entropy_weights.png",
            caption="../report/figures/entropy_weights.rst",
            category="Figures",
            subcategory="Data",
        ),
    log:
        f"{RESULTS}/logs/figures_data/figures_data.log",
    benchmark:
        f"{RESULTS}/benchmarks/figures_data/figures_data.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(control_variables=config["control_variables"]),
        files=job_files,
    shell:
        script_job("outputs/figures_data.py")


# one score figure per PSM spec, each with its own caption: one job has no {spec} wildcard for a
# caption template, so the job writes each spec's caption (pscore_caption below) from
# report/figures/pscore_overlap.rst; the path is absolute, since report() reads a caption path
# relative to this folder
if PSM_SPECS:

    rule figures_pscore:
        input:
            panel=rules.analysis_panel.output.panel,
            pscore_caption="report/figures/pscore_overlap.rst",
        output:
            pscore_pdf=[f"{RESULTS}/figures/pscore_{spec}.pdf" for spec in PSM_SPECS],
            pscore_png=[
                report(
                    f"{RESULTS}/figures/pscore_{spec}.png",
                    caption=os.path.abspath(f"{RESULTS}/report/pscore_{spec}.rst"),
                    category="Figures",
                    subcategory="Matching",
                )
                for spec in PSM_SPECS
            ],
            pscore_caption=[f"{RESULTS}/report/pscore_{spec}.rst" for spec in PSM_SPECS],
        log:
            f"{RESULTS}/logs/figures_pscore/figures_pscore.log",
        benchmark:
            f"{RESULTS}/benchmarks/figures_pscore/figures_pscore.tsv"
        localrule: True
        conda:
            "../envs/workflow.yaml"
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            job=job_params(
                pscore_specs={spec: SPECS[spec] for spec in PSM_SPECS},
                control_variables=config["control_variables"],
            ),
            files=job_files,
        shell:
            script_job("outputs/figures_pscore.py")
