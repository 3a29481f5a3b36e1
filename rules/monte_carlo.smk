# Monte Carlo stage (nqp_resilience.sim.montecarlo), a separate target: `snakemake --cores N
# monte_carlo`. One job per seed and parameter set simulates the raw extracts and runs the
# workflow's own job functions on them in one process (results/monte_carlo/{set}/seed_{seed}.json);
# the summary reduces every seed record. Seeds are independent: a rerun does only the missing ones.


rule monte_carlo_seed:
    input:
        params=lambda wildcards: MC["params"][wildcards.param_set]["file"],
        codebook="resources/codebook.yaml",
        attributes="resources/cities/city_attributes.csv",
        indicators="resources/indicators.yaml",
        corrections=config["plausibility"]["corrections"],
    output:
        record=f"{MC_DIR}/{{param_set}}/seed_{{seed}}.json",
    log:
        f"{RESULTS}/logs/monte_carlo_seed/{{param_set}}_{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/monte_carlo_seed/{{param_set}}_{{seed}}.tsv"
    wildcard_constraints:
        param_set="|".join(MC["params"]),
        seed=r"\d+",
    conda:
        "../envs/workflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1500 * attempt,
        runtime=lambda wildcards, attempt: 15 * attempt,
        cpus_per_task=1,
    params:
        job=job_params(
            # the settings a seed depends on (not the tables' or the workflow's own bootstrap specs),
            # so that editing an unrelated option does not rerun the study
            config=MONTE_CARLO_CONFIG,
        ),
        files=job_files,
    shell:
        script_job("sim/monte_carlo_seed.py")


rule monte_carlo_summary:
    input:
        records=monte_carlo_records(),
    output:
        summary=f"{MC_DIR}/summary.csv",
        seeds=f"{MC_DIR}/seeds.csv",
        report=f"{MC_DIR}/summary.md",
        pdf=f"{MC_DIR}/summary.pdf",
        png=f"{MC_DIR}/summary.png",
    log:
        f"{RESULTS}/logs/monte_carlo_summary/monte_carlo_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/monte_carlo_summary/monte_carlo_summary.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        job=job_params(),
        files=job_files,
    shell:
        script_job("sim/monte_carlo_summary.py")
