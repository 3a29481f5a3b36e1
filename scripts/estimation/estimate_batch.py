"""Job of the batch rules `estimate_<batch>` (estimation.batch_size > 1): the logic is
nqp_resilience.estimation.jobs.estimate_batch_job.

A shell job (nqp_resilience.shell_job):
``python scripts/estimation/estimate_batch.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.estimation.jobs:estimate_batch_job")
