"""Job of the rule `table_indicators`: the logic is nqp_resilience.outputs.jobs.indicator_table_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/table_indicators.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:indicator_table_job")
