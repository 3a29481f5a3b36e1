"""Snakemake script of rule `nqp_index`.

The logic is nqp_resilience.indices.jobs.nqp_index_job.
"""

from nqp_resilience.indices.jobs import nqp_index_job
from nqp_resilience.runner import run

run(nqp_index_job, snakemake)  # noqa: F821 (injected by Snakemake)
