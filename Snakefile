# NQP -> urban economic resilience: raw extracts to the paper's tables.
#
#   snakemake --cores 8                                  # embedded (simulated) default data
#   snakemake --cores 8 --config raw_dir=/path/to/raw    # your own extracts (layout: README)
#
# The config is validated against schemas/config.schema.yaml (rules/common.smk) before any
# rule runs.


configfile: "config.yaml"


include: "rules/common.smk"


# the Python of the shell jobs, named in $NQP_PYTHON (rules/common.smk: script_job)
set_job_python()
# a cold local run starts its job server now, while Snakemake builds the DAG (docs/job_server.md)
start_job_server_early()


wildcard_constraints:
    year="|".join(str(y) for y in YEARS),
    source="|".join(RAW_FILES),


include: "rules/data.smk"
include: "rules/indices.smk"
include: "rules/estimation.smk"
include: "rules/bootstrap.smk"
include: "rules/outputs.smk"
include: "rules/monte_carlo.smk"


# a run that submits to SLURM (profiles/slurm) needs the partition and account in the
# environment: checked once, before the first job is submitted (nqp_resilience.cluster)
#
# a local run forks its Python jobs from one job server (job_server: true; nqp_resilience.job_server)
onstart:
    from nqp_resilience.cluster import check_cluster_environment
    from nqp_resilience import job_server

    with stop_on_user_error():
        check_cluster_environment(workflow)
    if config["job_server"]:
        job_server.enable(workflow)


# the scheduler is done: its pending timers would only delay the exit (nqp_resilience.run_end)
onsuccess:
    from nqp_resilience.run_end import cancel_scheduler_timers

    cancel_scheduler_timers()


onerror:
    from nqp_resilience.run_end import cancel_scheduler_timers

    cancel_scheduler_timers()


rule all:
    default_target: True
    input:
        panel=rules.build_panel.output.panel,
        audit=rules.build_panel.output.audit,
        sample_log=rules.build_panel.output.sample_log,
        analysis=rules.analysis_panel.output.panel,
        codebook=rules.analysis_panel.output.codebook,
        weights=rules.nqp_index.output.weights,
        desc_stats=rules.desc_stats.output.table,
        estimates=expand(f"{RESULTS}/estimates/{{spec}}.json", spec=SPECS),
        bootstrap=[bootstrap_file(spec) for spec in BOOTSTRAP_SPECS],
        replication=rules.replication_check.output.report,
        spec_samples=rules.spec_samples.output.report,
        tables=TABLE_FILES,
        document=rules.tables_document.output.document,
        pdf=[rules.tables_pdf.output.pdf] if HAVE_TEX else [],
        figures=[
            rules.figures_coefficients.output.coefficients_png,
            rules.figures_data.output.trends_png,
            rules.figures_data.output.weights_png,
            *(rules.figures_pscore.output.pscore_png if PSM_SPECS else []),
        ],


# the Monte Carlo study (rules/monte_carlo.smk, docs/monte_carlo.md): a separate target
rule monte_carlo:
    input:
        rules.monte_carlo_summary.output,
