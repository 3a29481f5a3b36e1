"""Job of the rule `bootstrap_shard`: the logic is
nqp_resilience.estimation.jobs.bootstrap_shard_job.

A shell job (nqp_resilience.shell_job):
``python scripts/bootstrap/bootstrap_shard.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.estimation.jobs:bootstrap_shard_job")
