"""Snakemake script of rule `psm_fe`; the logic is nqp_resilience.workflow.estimate_spec_job."""

from nqp_resilience.workflow import estimate_spec_job, run

run(estimate_spec_job, snakemake)  # noqa: F821 (injected by Snakemake)
