# Figures (SPEC §7): results/figures/*.pdf and *.png, each declared for the Snakemake report.


rule figure_coefficients:
    input:
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=REGRESSION_SPECS),
        panel=rules.analysis_panel.output.panel,
    output:
        pdf=f"{RESULTS}/figures/coefficients.pdf",
        png=report(f"{RESULTS}/figures/coefficients.png", caption="../report/figures/coefficients.rst",
                   category="Figures", subcategory="Estimates"),
    log:
        f"{RESULTS}/logs/figure_coefficients/figure_coefficients.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure_coefficients/figure_coefficients.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/figure_coefficients.py"


rule figure_trends:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        pdf=f"{RESULTS}/figures/trends_by_region.pdf",
        png=report(f"{RESULTS}/figures/trends_by_region.png", caption="../report/figures/trends_by_region.rst",
                   category="Figures", subcategory="Data"),
    log:
        f"{RESULTS}/logs/figure_trends/figure_trends.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure_trends/figure_trends.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/figure_trends.py"


rule figure_weights:
    input:
        weights=rules.nqp_index.output.weights,
    output:
        pdf=f"{RESULTS}/figures/entropy_weights.pdf",
        png=report(f"{RESULTS}/figures/entropy_weights.png", caption="../report/figures/entropy_weights.rst",
                   category="Figures", subcategory="Data"),
    log:
        f"{RESULTS}/logs/figure_weights/figure_weights.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure_weights/figure_weights.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/figure_weights.py"


rule figure_pscore:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        pdf=f"{RESULTS}/figures/pscore_{{spec}}.pdf",
        png=report(f"{RESULTS}/figures/pscore_{{spec}}.png", caption="../report/figures/pscore_overlap.rst",
                   category="Figures", subcategory="Matching"),
    wildcard_constraints:
        spec=spec_pattern("psm_fe"),
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
    log:
        f"{RESULTS}/logs/figure_pscore/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure_pscore/{{spec}}.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/figure_pscore.py"
