"""Snakemake script of rule `ingest_yearbook`; the logic is nqp_resilience.workflow.ingest_yearbook_job."""

from nqp_resilience.workflow import ingest_yearbook_job, run

run(ingest_yearbook_job, snakemake)  # noqa: F821 (injected by Snakemake)
