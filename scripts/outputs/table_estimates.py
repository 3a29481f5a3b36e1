"""Snakemake script of rule `table_estimates`.

The logic is nqp_resilience.outputs.jobs.estimates_table_job.
"""

from nqp_resilience.outputs.jobs import estimates_table_job
from nqp_resilience.runner import run

run(estimates_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
