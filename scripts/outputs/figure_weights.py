"""Snakemake script of rule `figure_weights`.

The logic is nqp_resilience.outputs.jobs.entropy_weights_job.
"""

from nqp_resilience.outputs.jobs import entropy_weights_job
from nqp_resilience.runner import run

run(entropy_weights_job, snakemake)  # noqa: F821 (injected by Snakemake)
