"""Snakemake script of rule `derived_variables`.

The logic is nqp_resilience.indices.jobs.derived_variables_job.
"""

from nqp_resilience.indices.jobs import derived_variables_job
from nqp_resilience.runner import run

run(derived_variables_job, snakemake)  # noqa: F821 (injected by Snakemake)
