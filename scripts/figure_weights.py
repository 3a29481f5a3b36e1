"""Snakemake script of rule `figure_weights`; the logic is nqp_resilience.figures.entropy_weights_job."""

from nqp_resilience.figures import entropy_weights_job
from nqp_resilience.workflow import run

run(entropy_weights_job, snakemake)  # noqa: F821 (injected by Snakemake)
