"""Job of the rule `nqp_text`: the logic is nqp_resilience.indices.jobs.nqp_text_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/nqp_text.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:nqp_text_job")
