"""Snakemake script of rule `ingest_reports`.

The logic is nqp_resilience.data.jobs.ingest_reports_job.
"""

from nqp_resilience.data.jobs import ingest_reports_job
from nqp_resilience.runner import run

run(ingest_reports_job, snakemake)  # noqa: F821 (injected by Snakemake)
