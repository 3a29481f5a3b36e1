"""Snakemake script of rule `figure_coefficients`.

The logic is nqp_resilience.outputs.jobs.coefficients_job.
"""

from nqp_resilience.outputs.jobs import coefficients_job
from nqp_resilience.runner import run

run(coefficients_job, snakemake)  # noqa: F821 (injected by Snakemake)
