"""Job of the rule `bootstrap_reduce`: the logic is
nqp_resilience.estimation.jobs.bootstrap_reduce_job.

A shell job (nqp_resilience.shell_job):
``python scripts/bootstrap/bootstrap_reduce.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.estimation.jobs:bootstrap_reduce_job")
