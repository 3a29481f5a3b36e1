"""Checks of a run on a SLURM cluster (``snakemake --profile profiles/slurm``), made before the
first job is submitted, so that a missing account or partition is a message, not a queue of
jobs that sbatch refuses one by one, and a group job that could never start (it asks for more
CPUs than the partition's largest node has) is an error, not a job pending for ever.

``profiles/slurm`` takes the partition and the account from the environment variables
``NQP_SLURM_PARTITION`` and ``NQP_SLURM_ACCOUNT`` (the account is not needed with
``slurm-no-account``, as in ``profiles/slurm-noacct``).
"""

from __future__ import annotations

import logging
import os

from nqp_resilience.errors import ConfigError

log = logging.getLogger("nqp_resilience")

__all__ = [
    "ACCOUNT_VARIABLE",
    "PARTITION_VARIABLE",
    "check_cluster_environment",
    "check_group_fits",
    "partition_nodes",
]

PARTITION_VARIABLE = "NQP_SLURM_PARTITION"
ACCOUNT_VARIABLE = "NQP_SLURM_ACCOUNT"


def check_cluster_environment(workflow, environ=None, nodes=None) -> None:
    """Stop a run that submits to SLURM without the partition (and, unless the profile says
    ``slurm-no-account``, the account) set in the environment, or whose group jobs may ask for
    more CPUs (``cores``) than any node of the partition has (:func:`check_group_fits`).

    ``workflow`` is Snakemake's workflow object (only its executor plugin and settings are
    read); local runs and the jobs inside the cluster are not checked. ``nodes`` replaces
    :func:`partition_nodes` (for tests).
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
    resources = getattr(workflow, "resource_settings", None)
    cores = getattr(resources, "cores", None)
    if isinstance(cores, int):
        check_group_fits(environ[PARTITION_VARIABLE], cores, nodes or partition_nodes)


def partition_nodes(partition: str) -> list[tuple[int, int]] | None:
    """(CPUs, memory in MB) of every node of ``partition`` (``sinfo``); None where sinfo cannot
    answer (the check is then skipped: sbatch will tell)."""
    import subprocess

    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--Node", "--partition", partition, "--format", "%c %m"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    out = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit():
            mem = fields[1].rstrip("+")
            out.append((int(fields[0]), int(mem) if mem.isdigit() else 0))
    return out


def check_group_fits(partition: str, cores: int, nodes) -> None:
    """Raise ConfigError if ``cores`` (the most CPUs one group job asks for) exceeds the CPUs of
    every node of ``partition``, or the partition has no node. Such a job is accepted by many
    clusters and then waits in the queue for ever."""
    found = nodes(partition)
    if found is None:
        log.warning("sinfo did not answer: the CPUs of partition %s are not checked", partition)
        return
    if not found:
        raise ConfigError(
            "profiles/slurm",
            f"partition {partition!r} ({PARTITION_VARIABLE}) has no nodes",
            hint="`sinfo -s` lists the partitions; set NQP_SLURM_PARTITION to one of them",
        )
    most = max(cpus for cpus, _ in found)
    if cores > most:
        raise ConfigError(
            "profiles/slurm",
            f"cores: {cores} lets one group job ask for {cores} CPUs, but the largest node of "
            f"partition {partition!r} has {most}: that job could never start",
            hint=f"set cores: {most} (or less) in the profile, or pass --cores {most}",
        )
