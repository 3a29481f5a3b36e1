"""Job of the rule `figures`: the logic is nqp_resilience.outputs.jobs.figures_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/figures.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:figures_job")
