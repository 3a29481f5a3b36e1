"""Snakemake script of rule `ingest_source`; the logic is nqp_resilience.workflow.ingest_source_job."""

from nqp_resilience.workflow import ingest_source_job, run

run(ingest_source_job, snakemake)  # noqa: F821 (injected by Snakemake)
