"""Snakemake script of rule `figure_trends`; the logic is nqp_resilience.figures.trends_job."""

from nqp_resilience.figures import trends_job
from nqp_resilience.workflow import run

run(trends_job, snakemake)  # noqa: F821 (injected by Snakemake)
