"""Job of the rule `plausibility`: the logic is nqp_resilience.data.jobs.plausibility_job.

A shell job (nqp_resilience.shell_job):
``python scripts/data/plausibility.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.data.jobs:plausibility_job")
