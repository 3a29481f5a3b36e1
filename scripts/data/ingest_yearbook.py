"""Job of the rule `ingest_yearbook`: the logic is nqp_resilience.data.jobs.ingest_yearbook_job.

A shell job (nqp_resilience.shell_job):
``python scripts/data/ingest_yearbook.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.data.jobs:ingest_yearbook_job")
