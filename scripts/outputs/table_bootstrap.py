"""Snakemake script of rule `table_bootstrap`.

The logic is nqp_resilience.outputs.jobs.bootstrap_table_job.
"""

from nqp_resilience.outputs.jobs import bootstrap_table_job
from nqp_resilience.runner import run

run(bootstrap_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
