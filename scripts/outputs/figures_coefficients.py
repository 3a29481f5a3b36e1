"""Job of the rule `figures_coefficients`: the logic is
nqp_resilience.outputs.jobs.figures_job (it draws the figures the rule's outputs name).

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/figures_coefficients.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:figures_job")
