"""Snakemake script of rule `tables_document`.

The logic is nqp_resilience.outputs.jobs.document_job.
"""

from nqp_resilience.outputs.jobs import document_job
from nqp_resilience.runner import run

run(document_job, snakemake)  # noqa: F821 (injected by Snakemake)
