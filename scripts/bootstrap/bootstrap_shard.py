"""Snakemake script of the rule `bootstrap_shard`; the logic is
nqp_resilience.estimation.jobs.bootstrap_shard_job."""

from nqp_resilience.estimation.jobs import bootstrap_shard_job
from nqp_resilience.runner import run

run(bootstrap_shard_job, snakemake)  # noqa: F821 (injected by Snakemake)
