"""Job of the rule `monte_carlo_seed`: the logic is
nqp_resilience.sim.montecarlo.monte_carlo_seed_job.

A shell job (nqp_resilience.shell_job):
``python scripts/sim/monte_carlo_seed.py LOG PAYLOAD FILES``.
"""

from nqp_resilience.shell_job import main

main(function="nqp_resilience.sim.montecarlo:monte_carlo_seed_job")
