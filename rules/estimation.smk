# Estimation stage (nqp_resilience.estimation): one job per spec of config.yaml: specs, one rule
# per estimator (generated below from one definition). Each job reads results/panel/analysis.parquet and writes
# results/estimates/{spec}.json; spec_samples audits the observations every spec uses.


# Memory (MB) and run time (min) of one job of each estimator; matching holds the distances
# between treated and control cities in memory.
ESTIMATOR_RESOURCES = {
    "describe": dict(mem_mb=1000, runtime=5),
    "ols_fe": dict(mem_mb=1000, runtime=5),
    "iv_fe": dict(mem_mb=1000, runtime=5),
    "psm_fe": dict(mem_mb=1000, runtime=10),
}

# One rule per estimator, generated from this one definition: each is named after its estimator
# (describe, ols_fe, iv_fe, psm_fe), matches only the ids of that estimator's specs, and runs the
# same script.
for _estimator in ESTIMATORS:

    rule:
        name:
            _estimator
        input:
            panel=rules.analysis_panel.output.panel,
        output:
            estimate=f"{RESULTS}/estimates/{{spec}}.json",
        log:
            f"{RESULTS}/logs/{_estimator}/{{spec}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{_estimator}/{{spec}}.tsv"
        wildcard_constraints:
            spec=spec_pattern(_estimator, batched=False),
        conda:
            "../envs/workflow.yaml"
        resources:
            mem_mb=ESTIMATOR_RESOURCES[_estimator]["mem_mb"],
            runtime=ESTIMATOR_RESOURCES[_estimator]["runtime"],
        params:
            job=estimation_params(spec=spec_of),
            files=job_files,
        shell:
            script_job("estimation/estimate_spec.py")


# estimation.batch_size > 1: one job per batch of specs of one estimator (SPEC_BATCHES), each
# writing the same estimate files as the one-spec jobs above, which then leave those specs out.
for _batch, _ids in SPEC_BATCHES.items():
    _estimator = SPECS[_ids[0]]["estimator"]

    rule:
        name:
            f"estimate_{_batch}"
        input:
            panel=rules.analysis_panel.output.panel,
        output:
            estimates=[f"{RESULTS}/estimates/{sid}.json" for sid in _ids],
        log:
            f"{RESULTS}/logs/estimate_batch/{_batch}.log",
        benchmark:
            f"{RESULTS}/benchmarks/estimate_batch/{_batch}.tsv"
        conda:
            "../envs/workflow.yaml"
        resources:
            mem_mb=ESTIMATOR_RESOURCES[_estimator]["mem_mb"],
            runtime=ESTIMATOR_RESOURCES[_estimator]["runtime"] * len(_ids),
        params:
            job=estimation_params(specs=[SPECS[sid] for sid in _ids]),
            files=job_files,
        shell:
            script_job("estimation/estimate_batch.py")


rule spec_samples:
    input:
        analysis=rules.analysis_panel.output.panel,
        panel=rules.build_panel.output.panel,
        codebook="resources/codebook.yaml",
    output:
        report=f"{RESULTS}/audit/spec_samples.md",
        table=f"{RESULTS}/audit/spec_samples.csv",
    log:
        f"{RESULTS}/logs/spec_samples/spec_samples.log",
    benchmark:
        f"{RESULTS}/benchmarks/spec_samples/spec_samples.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            specs=list(SPECS.values()),
            control_variables=config["control_variables"],
            static_files={source: f"{RAW}/{RAW_FILES[source]}" for source in RAW_SOURCES["city"]},
        ),
        files=job_files,
    shell:
        script_job("estimation/spec_samples.py")
