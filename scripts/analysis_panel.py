"""Snakemake script of rule `analysis_panel`; the logic is nqp_resilience.workflow.analysis_panel_job."""

from nqp_resilience.workflow import analysis_panel_job, run

run(analysis_panel_job, snakemake)  # noqa: F821 (injected by Snakemake)
