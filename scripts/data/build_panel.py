"""Job of the rule `build_panel`: the logic is nqp_resilience.data.jobs.build_panel_job.

A shell job (nqp_resilience.shell_job):
``python scripts/data/build_panel.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.data.jobs:build_panel_job")
