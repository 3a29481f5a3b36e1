"""Snakemake script of rule `nqp_text`.

The logic is nqp_resilience.indices.jobs.nqp_text_job.
"""

from nqp_resilience.indices.jobs import nqp_text_job
from nqp_resilience.runner import run

run(nqp_text_job, snakemake)  # noqa: F821 (injected by Snakemake)
