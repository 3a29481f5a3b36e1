"""Snakemake script of rule `table_replication`; the logic is nqp_resilience.tables.replication_table_job."""

from nqp_resilience.tables import replication_table_job
from nqp_resilience.workflow import run

run(replication_table_job, snakemake)  # noqa: F821 (injected by Snakemake)
