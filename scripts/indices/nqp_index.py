"""Job of the rule `nqp_index`: the logic is nqp_resilience.indices.jobs.nqp_index_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/nqp_index.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:nqp_index_job")
