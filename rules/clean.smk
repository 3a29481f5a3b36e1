# Cleaning and sample (SPEC §4): interim tables -> the city panel, the imputation audit and
# the sample log.


rule build_panel:
    input:
        yearbook=expand(rules.ingest_yearbook.output.table, year=YEARS),
        city_year=expand(rules.ingest_source.output.table, source=["patents", "innovation"]),
        static=expand(rules.ingest_source.output.table, source=["relief", "telephones_1984"]),
        national=expand(rules.ingest_source.output.table, source=["national"]),
        codebook="resources/codebook.yaml",
        attributes="resources/cities/city_attributes.csv",
    output:
        panel=f"{RESULTS}/panel/panel.parquet",
        audit=f"{RESULTS}/audit/imputed_cells.parquet",
        sample_table=f"{RESULTS}/audit/sample.csv",
        sample_log=f"{RESULTS}/audit/sample.md",
    params:
        years=YEAR_RANGE,
        sample=config["sample"],
        edge=config["interpolation"]["edge"],
    log:
        f"{RESULTS}/logs/build_panel/build_panel.log",
    benchmark:
        f"{RESULTS}/benchmarks/build_panel/build_panel.tsv"
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/build_panel.py"
