"""Snakemake script of rule `build_panel`; the logic is nqp_resilience.workflow.build_panel_job."""

from nqp_resilience.workflow import build_panel_job, run

run(build_panel_job, snakemake)  # noqa: F821 (injected by Snakemake)
