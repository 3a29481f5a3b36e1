"""Snakemake script of the rule `bootstrap_reduce`; the logic is
nqp_resilience.estimation.jobs.bootstrap_reduce_job."""

from nqp_resilience.estimation.jobs import bootstrap_reduce_job
from nqp_resilience.runner import run

run(bootstrap_reduce_job, snakemake)  # noqa: F821 (injected by Snakemake)
