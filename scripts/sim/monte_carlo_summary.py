"""Snakemake script of rule `monte_carlo_summary`; the logic is
nqp_resilience.sim.montecarlo.monte_carlo_summary_job."""

from nqp_resilience.runner import run
from nqp_resilience.sim.montecarlo import monte_carlo_summary_job

run(monte_carlo_summary_job, snakemake)  # noqa: F821 (injected by Snakemake)
