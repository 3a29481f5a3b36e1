"""Job of the rule `tables_pdf`: the logic is nqp_resilience.outputs.jobs.tables_pdf_job.

A shell job (nqp_resilience.shell_job):
``python scripts/outputs/tables_pdf.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.outputs.jobs:tables_pdf_job")
