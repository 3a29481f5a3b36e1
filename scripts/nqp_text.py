"""Snakemake script of rule `nqp_text`; the logic is nqp_resilience.workflow.nqp_text_job."""

from nqp_resilience.workflow import nqp_text_job, run

run(nqp_text_job, snakemake)  # noqa: F821 (injected by Snakemake)
