"""Snakemake script of rule `tables_pdf`.

The logic is nqp_resilience.outputs.jobs.tables_pdf_job.
"""

from nqp_resilience.outputs.jobs import tables_pdf_job
from nqp_resilience.runner import run

run(tables_pdf_job, snakemake)  # noqa: F821 (injected by Snakemake)
