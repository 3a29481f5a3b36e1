"""Snakemake script of rule `replication_check`; the logic is nqp_resilience.workflow.replication_check_job."""

from nqp_resilience.workflow import replication_check_job, run

run(replication_check_job, snakemake)  # noqa: F821 (injected by Snakemake)
