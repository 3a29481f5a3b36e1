"""Snakemake script of rule `desc_stats`; the logic is nqp_resilience.workflow.desc_stats_job."""

from nqp_resilience.workflow import desc_stats_job, run

run(desc_stats_job, snakemake)  # noqa: F821 (injected by Snakemake)
