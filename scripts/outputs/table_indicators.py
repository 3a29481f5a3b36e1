"""Snakemake script of rule `table_indicators`.

The logic is nqp_resilience.outputs.jobs.indicator_table_job.
"""

from nqp_resilience.outputs.jobs import indicator_table_job
from nqp_resilience.runner import run

run(indicator_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
