"""Snakemake script of rule `plausibility`.

The logic is nqp_resilience.data.jobs.plausibility_job.
"""

from nqp_resilience.data.jobs import plausibility_job
from nqp_resilience.runner import run

run(plausibility_job, snakemake)  # noqa: F821 (injected by Snakemake)
