"""Snakemake script of rule `analysis_panel`.

The logic is nqp_resilience.indices.jobs.analysis_panel_job.
"""

from nqp_resilience.indices.jobs import analysis_panel_job
from nqp_resilience.runner import run

run(analysis_panel_job, snakemake)  # noqa: F821 (injected by Snakemake)
