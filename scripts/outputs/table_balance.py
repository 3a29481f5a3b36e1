"""Snakemake script of rule `table_balance`.

The logic is nqp_resilience.outputs.jobs.balance_table_job.
"""

from nqp_resilience.outputs.jobs import balance_table_job
from nqp_resilience.runner import run

run(balance_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
