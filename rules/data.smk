# Data stage (nqp_resilience.data): each raw file -> results/interim/*.parquet with canonical names
# and units (one ingest job per yearbook year, so revising one year's file reruns one ingest job),
# plausibility checks with the corrections applied, then the city panel, the imputation audit
# and the sample log.


rule ingest_yearbook:
    input:
        raw=yearbook_input,
        codebook="resources/codebook.yaml",
        attributes=ATTRIBUTES,
        aliases="resources/cities/city_name_aliases.csv",
    output:
        table=f"{RESULTS}/interim/yearbook_{{year}}.parquet",
    log:
        f"{RESULTS}/logs/ingest_yearbook/{{year}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_yearbook/{{year}}.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            years=YEAR_RANGE,
        ),
        files=job_files,
    shell:
        script_job("data/ingest_yearbook.py")


rule ingest_source:
    input:
        raw=source_input,
        codebook="resources/codebook.yaml",
        attributes=ATTRIBUTES,
        aliases="resources/cities/city_name_aliases.csv",
    output:
        table=f"{RESULTS}/interim/{{source}}.parquet",
    log:
        f"{RESULTS}/logs/ingest_source/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_source/{{source}}.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            years=YEAR_RANGE,
        ),
        files=job_files,
    shell:
        script_job("data/ingest_source.py")


rule ingest_reports:
    input:
        reports=report_inputs,
        attributes=ATTRIBUTES,
    output:
        table=f"{RESULTS}/interim/reports.parquet",
    log:
        f"{RESULTS}/logs/ingest_reports/ingest_reports.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_reports/ingest_reports.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            years=YEAR_RANGE,
        ),
        files=job_files,
    shell:
        script_job("data/ingest_reports.py")


CHECKED = f"{RESULTS}/checked"


rule plausibility:
    input:
        yearbook=expand(rules.ingest_yearbook.output.table, year=YEARS),
        sources=expand(rules.ingest_source.output.table, source=list(RAW_FILES)),
        # the raw files, aligned with the tables above, to name the raw header of a finding
        raw_yearbook=[yearbook_path(RAW, y) for y in YEARS],
        raw_sources=[raw_source_path(RAW, s, CODEBOOK) for s in RAW_FILES],
        corrections=config["plausibility"]["corrections"],
        codebook="resources/codebook.yaml",
        attributes=ATTRIBUTES,
    output:
        yearbook=expand(f"{CHECKED}/yearbook_{{year}}.parquet", year=YEARS),
        sources=expand(f"{CHECKED}/{{source}}.parquet", source=list(RAW_FILES)),
        report=f"{RESULTS}/audit/plausibility.md",
        table=f"{RESULTS}/audit/plausibility.csv",
    log:
        f"{RESULTS}/logs/plausibility/plausibility.log",
    benchmark:
        f"{RESULTS}/benchmarks/plausibility/plausibility.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            action=config["plausibility"]["action"],
            thresholds=config["plausibility"]["thresholds"],
        ),
        files=job_files,
    shell:
        script_job("data/plausibility.py")


rule build_panel:
    input:
        yearbook=rules.plausibility.output.yearbook,
        # the checked sources by grain (resources/codebook.yaml: each source's keys)
        city_year=[f"{CHECKED}/{s}.parquet" for s in RAW_SOURCES["city_year"]],
        static=[f"{CHECKED}/{s}.parquet" for s in RAW_SOURCES["city"]],
        national=[f"{CHECKED}/{s}.parquet" for s in RAW_SOURCES["year"]],
        codebook="resources/codebook.yaml",
        attributes=ATTRIBUTES,
    output:
        panel=f"{RESULTS}/panel/panel.parquet",
        audit=f"{RESULTS}/audit/imputed_cells.parquet",
        sample_table=f"{RESULTS}/audit/sample.csv",
        sample_log=f"{RESULTS}/audit/sample.md",
    log:
        f"{RESULTS}/logs/build_panel/build_panel.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_panel/build_panel.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        job=job_params(
            years=YEAR_RANGE,
            sample=config["sample"],
            edge=config["interpolation"]["edge"],
        ),
        files=job_files,
    shell:
        script_job("data/build_panel.py")
