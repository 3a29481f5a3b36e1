"""Snakemake script of rule `tables_document`; the logic is nqp_resilience.tables.document_job."""

from nqp_resilience.tables import document_job
from nqp_resilience.workflow import run

run(document_job, snakemake)  # noqa: F821 (injected by Snakemake)
