"""Snakemake script of rule `ingest_source`.

The logic is nqp_resilience.data.jobs.ingest_source_job.
"""

from nqp_resilience.data.jobs import ingest_source_job
from nqp_resilience.runner import run

run(ingest_source_job, snakemake)  # noqa: F821 (injected by Snakemake)
