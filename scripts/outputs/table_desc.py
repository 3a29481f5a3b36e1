"""Snakemake script of rule `table_desc`.

The logic is nqp_resilience.outputs.jobs.desc_table_job.
"""

from nqp_resilience.outputs.jobs import desc_table_job
from nqp_resilience.runner import run

run(desc_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
