"""Snakemake script of rule `derived_variables`; the logic is nqp_resilience.workflow.derived_variables_job."""

from nqp_resilience.workflow import derived_variables_job, run

run(derived_variables_job, snakemake)  # noqa: F821 (injected by Snakemake)
