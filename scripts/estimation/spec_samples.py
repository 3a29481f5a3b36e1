"""Job of the rule `spec_samples`: the logic is nqp_resilience.estimation.jobs.spec_samples_job.

A shell job (nqp_resilience.shell_job):
``python scripts/estimation/spec_samples.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.estimation.jobs:spec_samples_job")
