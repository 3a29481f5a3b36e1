"""Snakemake script of rule `table_indicators`; the logic is nqp_resilience.tables.indicator_table_job."""

from nqp_resilience.tables import indicator_table_job
from nqp_resilience.workflow import run

run(indicator_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
