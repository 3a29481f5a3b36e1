"""Job of the rule `ingest_reports`: the logic is nqp_resilience.data.jobs.ingest_reports_job.

A shell job (nqp_resilience.shell_job):
``python scripts/data/ingest_reports.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.data.jobs:ingest_reports_job")
