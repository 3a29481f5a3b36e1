"""Job of the rule `replication_check`: the logic is
nqp_resilience.outputs.jobs.replication_check_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/replication_check.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:replication_check_job")
