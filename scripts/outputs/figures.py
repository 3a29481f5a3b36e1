"""Snakemake script of rule `figures`.

The logic is nqp_resilience.outputs.jobs.figures_job.
"""

from nqp_resilience.outputs.jobs import figures_job
from nqp_resilience.runner import run

run(figures_job, snakemake)  # noqa: F821 (injected by Snakemake)
