"""Snakemake script of rule `tables_pdf`; the logic is nqp_resilience.workflow.tables_pdf_job."""

from nqp_resilience.workflow import run, tables_pdf_job

run(tables_pdf_job, snakemake)  # noqa: F821 (injected by Snakemake)
