# Bootstrap stage (nqp_resilience.estimation.bootstrap_shards): the wild cluster bootstrap of the
# core coefficient of every spec of bootstrap.specs (WCR/WCU for ols_fe, WRE for iv_fe), split
# into bootstrap.shards jobs per spec and reduced to one result per spec. The draws are defined
# per draw index, so the result does not depend on the shard count.


# Options each rule depends on, passed as params: changing reps, seed, weights or the bootstrap
# cluster reruns the shards; changing the variant, the null, the level or the p-value type reruns
# only the reduce jobs.
BOOTSTRAP_DRAWS = {key: config["bootstrap"][key] for key in ("reps", "seed", "weights", "cluster")}
BOOTSTRAP_INFERENCE = {
    key: config["bootstrap"][key] for key in ("variant", "null_value", "level", "p_type")
}
BOOTSTRAP_SHARDS = config["bootstrap"]["shards"]


def bootstrap_shard_runtime(wildcards, attempt):
    """Minutes for one shard: the set-up (under a minute at 2,760 rows) plus the draws
    (about 0.1 s per 1,000 at 230 clusters; see benchmarks/bootstrap.py), with a wide margin
    that grows with every retry."""
    draws = config["bootstrap"]["reps"] / BOOTSTRAP_SHARDS
    return attempt * (5 + math.ceil(draws / 200_000))


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
        mem_mb=1000,
        runtime=bootstrap_shard_runtime,
        cpus_per_task=1,
    params:
        spec=spec_of,
        control_variables=config["control_variables"],
        singletons=config["estimation"]["singletons"],
        draws=BOOTSTRAP_DRAWS,
        shards=BOOTSTRAP_SHARDS,
    script:
        "../scripts/bootstrap/bootstrap_shard.py"


rule bootstrap_reduce:
    input:
        shards=expand(
            f"{RESULTS}/bootstrap/{{{{spec}}}}/shard_{{k}}.parquet", k=range(BOOTSTRAP_SHARDS)
        ),
    output:
        result=f"{RESULTS}/bootstrap/{{spec}}.json",
    log:
        f"{RESULTS}/logs/bootstrap_reduce/{{spec}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/bootstrap_reduce/{{spec}}.tsv"
    wildcard_constraints:
        spec="|".join(BOOTSTRAP_SPECS) or "(?!)",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
        cpus_per_task=1,
    params:
        spec=spec_of,
        inference=BOOTSTRAP_INFERENCE,
    script:
        "../scripts/bootstrap/bootstrap_reduce.py"
