"""Snakemake script of rule `nqp_index`; the logic is nqp_resilience.workflow.nqp_index_job."""

from nqp_resilience.workflow import nqp_index_job, run

run(nqp_index_job, snakemake)  # noqa: F821 (injected by Snakemake)
