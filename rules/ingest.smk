# Ingest: each raw file -> results/interim/*.parquet with canonical names and units.
# One job per yearbook year, so revising one year's file reruns one ingest job.


rule ingest_yearbook:
    input:
        raw=yearbook_input,
        codebook="resources/codebook.yaml",
        attributes="resources/cities/city_attributes.csv",
        aliases="resources/cities/city_name_aliases.csv",
    output:
        table=f"{RESULTS}/interim/yearbook_{{year}}.parquet",
    params:
        years=YEAR_RANGE,
    log:
        f"{RESULTS}/logs/ingest_yearbook/{{year}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_yearbook/{{year}}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/ingest_yearbook.py"


rule ingest_source:
    input:
        raw=source_input,
        codebook="resources/codebook.yaml",
        attributes="resources/cities/city_attributes.csv",
        aliases="resources/cities/city_name_aliases.csv",
    output:
        table=f"{RESULTS}/interim/{{source}}.parquet",
    params:
        years=YEAR_RANGE,
    log:
        f"{RESULTS}/logs/ingest_source/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_source/{{source}}.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/ingest_source.py"


rule ingest_reports:
    input:
        reports=report_inputs,
        attributes="resources/cities/city_attributes.csv",
    output:
        table=f"{RESULTS}/interim/reports.parquet",
    params:
        years=YEAR_RANGE,
    log:
        f"{RESULTS}/logs/ingest_reports/ingest_reports.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest_reports/ingest_reports.tsv"
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/ingest_reports.py"
