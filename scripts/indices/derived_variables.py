"""Job of the rule `derived_variables`: the logic is
nqp_resilience.indices.jobs.derived_variables_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/derived_variables.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:derived_variables_job")
