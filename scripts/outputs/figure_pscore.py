"""Snakemake script of rule `figure_pscore`.

The logic is nqp_resilience.outputs.jobs.pscore_overlap_job.
"""

from nqp_resilience.outputs.jobs import pscore_overlap_job
from nqp_resilience.runner import run

run(pscore_overlap_job, snakemake)  # noqa: F821 (injected by Snakemake)
