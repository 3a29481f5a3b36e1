"""Snakemake script of the batch rules of `estimation.batch_size` (several specs in one job);
the logic is nqp_resilience.estimation.jobs.estimate_batch_job."""

from nqp_resilience.estimation.jobs import estimate_batch_job
from nqp_resilience.runner import run

run(estimate_batch_job, snakemake)  # noqa: F821 (injected by Snakemake)
