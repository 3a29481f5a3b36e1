"""Snakemake script of rule `figure_coefficients`; the logic is nqp_resilience.figures.coefficients_job."""

from nqp_resilience.figures import coefficients_job
from nqp_resilience.workflow import run

run(coefficients_job, snakemake)  # noqa: F821 (injected by Snakemake)
