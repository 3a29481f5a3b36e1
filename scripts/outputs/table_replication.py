"""Snakemake script of rule `table_replication`.

The logic is nqp_resilience.outputs.jobs.replication_table_job.
"""

from nqp_resilience.outputs.jobs import replication_table_job
from nqp_resilience.runner import run

run(replication_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
