"""Job of the rule `analysis_panel`: the logic is nqp_resilience.indices.jobs.analysis_panel_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/analysis_panel.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:analysis_panel_job")
