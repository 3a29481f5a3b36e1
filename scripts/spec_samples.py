"""Snakemake script of rule `spec_samples`; the logic is nqp_resilience.workflow.spec_samples_job."""

from nqp_resilience.workflow import run, spec_samples_job

run(spec_samples_job, snakemake)  # noqa: F821 (injected by Snakemake)
