"""Snakemake script of rule `plausibility`; the logic is nqp_resilience.workflow.plausibility_job."""

from nqp_resilience.workflow import plausibility_job, run

run(plausibility_job, snakemake)  # noqa: F821 (injected by Snakemake)
