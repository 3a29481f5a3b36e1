"""Job of the rule `table_estimates`: the logic is nqp_resilience.outputs.jobs.estimates_table_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/table_estimates.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:estimates_table_job")
