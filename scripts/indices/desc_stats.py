"""Job of the rule `desc_stats`: the logic is nqp_resilience.indices.jobs.desc_stats_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/desc_stats.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:desc_stats_job")
