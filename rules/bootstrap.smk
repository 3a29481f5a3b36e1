# Bootstrap stage (nqp_resilience.estimation.bootstrap_shards): the wild cluster bootstrap of the
# core coefficient of every spec of bootstrap.specs (WCR/WCU for ols_fe, WRE for iv_fe), split
# into bootstrap.shards jobs per spec and reduced to one result per spec. The draws are defined
# per draw index, so the result does not depend on the shard count. With one shard (the default)
# the reduce job draws every draw itself, from the analysis panel: one job per spec, not two.

ONE_BOOTSTRAP_JOB = BOOTSTRAP_SHARDS == 1
# what a job needs to set a spec's bootstrap problem up from the panel
BOOTSTRAP_SETUP = dict(
    spec=spec_of,
    control_variables=config["control_variables"],
    singletons=config["estimation"]["singletons"],
    draws=BOOTSTRAP_DRAWS,
)


rule bootstrap_shard:
    input:
        panel=rules.analysis_panel.output.panel,
    output:
        shard=f"{RESULTS}/bootstrap/{{spec}}/shard_{{k}}.parquet",
    log:
        f"{RESULTS}/logs/bootstrap_shard/{{spec}}_{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/bootstrap_shard/{{spec}}_{{k}}.tsv"
    wildcard_constraints:
        spec="|".join(BOOTSTRAP_SPECS) or "(?!)",
        k=r"\d+",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        # peak RSS about 160 MB at the default size; more on each retry
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=bootstrap_shard_runtime,
        cpus_per_task=1,
    params:
        job=job_params(
            **BOOTSTRAP_SETUP,
            shards=BOOTSTRAP_SHARDS,
            # the completed shard is also kept here (a hard link): a job of the same shard with the
            # same fingerprint links it back instead of computing it (a retried or requeued group)
            completed=lambda wildcards: (
                f"{RESULTS}/bootstrap/.completed/{wildcards.spec}/shard_{wildcards.k}.parquet"
            ),
        ),
        files=job_files,
    shell:
        script_job("bootstrap/bootstrap_shard.py")


# priority 1 here and on the tables: a job that is ready runs before the estimates and bootstrap
# shards still waiting, so that the tables and their document are done soon after the last shard
rule bootstrap_reduce:
    input:
        shards=(
            []
            if ONE_BOOTSTRAP_JOB
            else expand(
                f"{RESULTS}/bootstrap/{{{{spec}}}}/shard_{{k}}.parquet", k=range(BOOTSTRAP_SHARDS)
            )
        ),
        panel=rules.analysis_panel.output.panel if ONE_BOOTSTRAP_JOB else [],
    output:
        result=f"{RESULTS}/bootstrap/{{spec}}.json",
    log:
        f"{RESULTS}/logs/bootstrap_reduce/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/bootstrap_reduce/{{spec}}.tsv"
    wildcard_constraints:
        spec="|".join(BOOTSTRAP_SPECS) or "(?!)",
    priority: 1
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=(
            bootstrap_shard_runtime
            if ONE_BOOTSTRAP_JOB
            else lambda wildcards, attempt: 5 * attempt
        ),
        cpus_per_task=1,
    params:
        job=job_params(
            **(BOOTSTRAP_SETUP if ONE_BOOTSTRAP_JOB else {"spec": spec_of}),
            inference=BOOTSTRAP_INFERENCE,
        ),
        files=job_files,
    shell:
        script_job("bootstrap/bootstrap_reduce.py")
