"""Snakemake script of rule `table_estimates`; the logic is nqp_resilience.tables.estimates_table_job."""

from nqp_resilience.tables import estimates_table_job
from nqp_resilience.workflow import run

run(estimates_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
