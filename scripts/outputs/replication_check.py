"""Snakemake script of rule `replication_check`.

The logic is nqp_resilience.outputs.jobs.replication_check_job.
"""

from nqp_resilience.outputs.jobs import replication_check_job
from nqp_resilience.runner import run

run(replication_check_job, snakemake)  # noqa: F821 (injected by Snakemake)
