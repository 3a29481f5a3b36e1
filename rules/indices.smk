# Indices and variables (docs/indices.md): the NQP entropy index, the Nqp1 text measure, the derived
# variables, the analysis panel and the Table 2 statistics.


# jieba's dictionary cache takes about a second, once: on a cluster it is built where Snakemake
# runs, not through the queue.
localrules:
    jieba_cache,


rule nqp_index:
    input:
        panel=rules.build_panel.output.panel,
        indicators="resources/indicators.yaml",
    output:
        index=f"{RESULTS}/indices/nqp.parquet",
        weights=f"{RESULTS}/indices/nqp_weights.csv",
    log:
        f"{RESULTS}/logs/nqp_index/nqp_index.log",
    benchmark:
        f"{RESULTS}/benchmarks/nqp_index/nqp_index.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            entropy=config["entropy"],
        ),
        files=job_files,
    shell:
        script_job("indices/nqp_index.py")


# jieba's base dictionary (without the keywords), read by nqp_text in milliseconds instead of
# being built from jieba's dict.txt in every job (nqp_resilience.indices.jieba_dict)
rule jieba_cache:
    output:
        cache=f"{RESULTS}/cache/jieba.cache",
    log:
        f"{RESULTS}/logs/jieba_cache/jieba_cache.log",
    benchmark:
        f"{RESULTS}/benchmarks/jieba_cache/jieba_cache.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(),
        files=job_files,
    shell:
        script_job("indices/jieba_cache.py")


rule nqp_text:
    input:
        panel=rules.build_panel.output.panel,
        reports=rules.ingest_reports.output.table,
        keywords="resources/nqp_keywords.txt",
        # the counts do not depend on the cache (checked against jieba's dictionary when read),
        # so a rebuilt cache does not make the Nqp1 table and everything after it run again
        jieba_cache=ancient(rules.jieba_cache.output.cache),
    output:
        table=f"{RESULTS}/indices/nqp1.parquet",
    log:
        f"{RESULTS}/logs/nqp_text/nqp_text.log",
    benchmark:
        f"{RESULTS}/benchmarks/nqp_text/nqp_text.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        job=job_params(
            include_central=config["nqp1"]["include_central"],
        ),
        files=job_files,
    shell:
        script_job("indices/nqp_text.py")


rule derived_variables:
    input:
        panel=rules.build_panel.output.panel,
        national=f"{CHECKED}/national.parquet",
        attributes=ATTRIBUTES,
        audit=rules.build_panel.output.audit,
    output:
        table=f"{RESULTS}/indices/variables.parquet",
    log:
        f"{RESULTS}/logs/derived_variables/derived_variables.log",
    benchmark:
        f"{RESULTS}/benchmarks/derived_variables/derived_variables.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            options=VARIABLE_OPTIONS,
        ),
        files=job_files,
    shell:
        script_job("indices/derived_variables.py")


rule analysis_panel:
    input:
        panel=rules.build_panel.output.panel,
        index=rules.nqp_index.output.index,
        nqp1=rules.nqp_text.output.table,
        derived=rules.derived_variables.output.table,
    output:
        panel=f"{RESULTS}/panel/analysis.parquet",
        codebook=f"{RESULTS}/panel/analysis_codebook.md",
    log:
        f"{RESULTS}/logs/analysis_panel/analysis_panel.log",
    benchmark:
        f"{RESULTS}/benchmarks/analysis_panel/analysis_panel.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            options=CODEBOOK_OPTIONS,
        ),
        files=job_files,
    shell:
        script_job("indices/analysis_panel.py")


rule desc_stats:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        table=f"{RESULTS}/tables/desc_stats.csv",
    log:
        f"{RESULTS}/logs/desc_stats/desc_stats.log",
    benchmark:
        f"{RESULTS}/benchmarks/desc_stats/desc_stats.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        job=job_params(
            options=CODEBOOK_OPTIONS,
        ),
        files=job_files,
    shell:
        script_job("indices/desc_stats.py")
