"""Snakemake script of rule `figure_pscore`; the logic is nqp_resilience.figures.pscore_overlap_job."""

from nqp_resilience.figures import pscore_overlap_job
from nqp_resilience.workflow import run

run(pscore_overlap_job, snakemake)  # noqa: F821 (injected by Snakemake)
