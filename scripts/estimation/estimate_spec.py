"""Snakemake script of the rules `describe`, `ols_fe`, `iv_fe` and `psm_fe` (one per estimator);
the logic is nqp_resilience.estimation.jobs.estimate_spec_job."""

from nqp_resilience.estimation.jobs import estimate_spec_job
from nqp_resilience.runner import run

run(estimate_spec_job, snakemake)  # noqa: F821 (injected by Snakemake)
