"""Snakemake script of rule `table_balance`; the logic is nqp_resilience.tables.balance_table_job."""

from nqp_resilience.tables import balance_table_job
from nqp_resilience.workflow import run

run(balance_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
