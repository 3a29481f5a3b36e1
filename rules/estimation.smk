# Estimation stage (nqp_resilience.estimation): one job per spec of config.yaml: specs, one rule
# per estimator. Each job reads results/panel/analysis.parquet and writes
# results/estimates/{spec}.json; spec_samples audits the observations every spec uses.


rule describe:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        estimate=f"{RESULTS}/estimates/{{spec}}.json",
    wildcard_constraints:
        spec=spec_pattern("describe"),
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
    log:
        f"{RESULTS}/logs/describe/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/describe/{{spec}}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/estimation/describe.py"


rule ols_fe:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        estimate=f"{RESULTS}/estimates/{{spec}}.json",
    wildcard_constraints:
        spec=spec_pattern("ols_fe"),
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
    log:
        f"{RESULTS}/logs/ols_fe/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ols_fe/{{spec}}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/estimation/ols_fe.py"


rule iv_fe:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        estimate=f"{RESULTS}/estimates/{{spec}}.json",
    wildcard_constraints:
        spec=spec_pattern("iv_fe"),
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
    log:
        f"{RESULTS}/logs/iv_fe/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/iv_fe/{{spec}}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/estimation/iv_fe.py"


rule psm_fe:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        estimate=f"{RESULTS}/estimates/{{spec}}.json",
    wildcard_constraints:
        spec=spec_pattern("psm_fe"),
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
    log:
        f"{RESULTS}/logs/psm_fe/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/psm_fe/{{spec}}.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/estimation/psm_fe.py"



rule spec_samples:
    input:
        analysis=rules.analysis_panel.output.panel,
        panel=rules.build_panel.output.panel,
        codebook="resources/codebook.yaml",
    output:
        report=f"{RESULTS}/audit/spec_samples.md",
        table=f"{RESULTS}/audit/spec_samples.csv",
    params:
        specs=list(SPECS.values()),
        control_variables=config["control_variables"],
        static_files={source: f"{RAW}/{RAW_FILES[source]}" for source in ("relief", "telephones_1984")},
    log:
        f"{RESULTS}/logs/spec_samples/spec_samples.log",
    benchmark:
        f"{RESULTS}/benchmarks/spec_samples/spec_samples.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/estimation/spec_samples.py"
