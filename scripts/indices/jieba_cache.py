"""Snakemake script of rule `jieba_cache`.

The logic is nqp_resilience.indices.jobs.jieba_cache_job.
"""

from nqp_resilience.indices.jobs import jieba_cache_job
from nqp_resilience.runner import run

run(jieba_cache_job, snakemake)  # noqa: F821 (injected by Snakemake)
