"""Snakemake script of rule `figure_trends`.

The logic is nqp_resilience.outputs.jobs.trends_job.
"""

from nqp_resilience.outputs.jobs import trends_job
from nqp_resilience.runner import run

run(trends_job, snakemake)  # noqa: F821 (injected by Snakemake)
