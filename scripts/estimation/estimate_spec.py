"""Job of the rules `describe`, `ols_fe`, `iv_fe` and `psm_fe` (one spec each): the logic is
nqp_resilience.estimation.jobs.estimate_spec_job.

A shell job (nqp_resilience.shell_job):
``python scripts/estimation/estimate_spec.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.estimation.jobs:estimate_spec_job")
