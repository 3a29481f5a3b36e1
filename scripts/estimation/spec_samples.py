"""Snakemake script of rule `spec_samples`.

The logic is nqp_resilience.estimation.jobs.spec_samples_job.
"""

from nqp_resilience.estimation.jobs import spec_samples_job
from nqp_resilience.runner import run

run(spec_samples_job, snakemake)  # noqa: F821 (injected by Snakemake)
