"""Snakemake script of rule `ingest_reports`; the logic is nqp_resilience.workflow.ingest_reports_job."""

from nqp_resilience.workflow import ingest_reports_job, run

run(ingest_reports_job, snakemake)  # noqa: F821 (injected by Snakemake)
