"""Snakemake script of rule `table_desc`; the logic is nqp_resilience.tables.desc_table_job."""

from nqp_resilience.tables import desc_table_job
from nqp_resilience.workflow import run

run(desc_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
