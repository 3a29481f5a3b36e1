"""Checks of a run on a SLURM cluster (``snakemake --profile profiles/slurm``), made before the
first job is submitted, so that a missing account or partition is a message, not a queue of
jobs that sbatch refuses one by one.

``profiles/slurm`` takes the partition and the account from the environment variables
``NQP_SLURM_PARTITION`` and ``NQP_SLURM_ACCOUNT`` (the account is not needed with
``slurm-no-account``, as in ``profiles/slurm-noacct``).
"""

from __future__ import annotations

import os

from nqp_resilience.errors import ConfigError

__all__ = ["check_cluster_environment", "PARTITION_VARIABLE", "ACCOUNT_VARIABLE"]

PARTITION_VARIABLE = "NQP_SLURM_PARTITION"
ACCOUNT_VARIABLE = "NQP_SLURM_ACCOUNT"


def check_cluster_environment(workflow, environ=None) -> None:
    """Stop a run that submits to SLURM without the partition (and, unless the profile says
    ``slurm-no-account``, the account) set in the environment.

    ``workflow`` is Snakemake's workflow object (only its executor plugin and settings are
    read); local runs and the jobs inside the cluster are not checked.
    """
    environ = os.environ if environ is None else environ
    plugin = getattr(workflow, "executor_plugin", None)
    if plugin is None or getattr(plugin, "name", None) != "slurm":
        return
    settings = getattr(workflow, "executor_settings", None)
    needed = [PARTITION_VARIABLE]
    if not getattr(settings, "no_account", False):
        needed.append(ACCOUNT_VARIABLE)
    missing = [v for v in needed if not environ.get(v)]
    if missing:
        raise ConfigError(
            "profiles/slurm",
            f"the SLURM profile needs the environment variable(s) {', '.join(missing)}",
            hint="e.g. export NQP_SLURM_PARTITION=standard NQP_SLURM_ACCOUNT=my_project "
            "(`sinfo -s` lists the partitions, `sacctmgr show assoc user=$USER` your accounts); "
            "on a cluster without accounting add --profile profiles/slurm-noacct",
        )
