"""Job of the rule `jieba_cache`: the logic is nqp_resilience.indices.jobs.jieba_cache_job.

A shell job (nqp_resilience.shell_job):
``python scripts/indices/jieba_cache.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.indices.jobs:jieba_cache_job")
