"""Snakemake script of rule `desc_stats`.

The logic is nqp_resilience.indices.jobs.desc_stats_job.
"""

from nqp_resilience.indices.jobs import desc_stats_job
from nqp_resilience.runner import run

run(desc_stats_job, snakemake)  # noqa: F821 (injected by Snakemake)
