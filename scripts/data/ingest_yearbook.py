"""Snakemake script of rule `ingest_yearbook`.

The logic is nqp_resilience.data.jobs.ingest_yearbook_job.
"""

from nqp_resilience.data.jobs import ingest_yearbook_job
from nqp_resilience.runner import run

run(ingest_yearbook_job, snakemake)  # noqa: F821 (injected by Snakemake)
