"""Job of the rule `tables_document`: the logic is nqp_resilience.outputs.jobs.document_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/tables_document.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:document_job")
