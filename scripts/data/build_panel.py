"""Snakemake script of rule `build_panel`.

The logic is nqp_resilience.data.jobs.build_panel_job.
"""

from nqp_resilience.data.jobs import build_panel_job
from nqp_resilience.runner import run

run(build_panel_job, snakemake)  # noqa: F821 (injected by Snakemake)
