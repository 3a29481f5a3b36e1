"""A real single-node SLURM cluster for tests (cluster/start_slurm.sh and cluster/stop_slurm.sh).

The session fixture ``slurm_cluster`` (import ``slurm_cluster_fixture`` into the test module to
use it) starts the cluster in a temporary state folder, yields a :class:`ClusterInfo` and always
stops it at the end. Where SLURM (``apt-get install slurmctld slurmd slurm-client munge``), root
or the cluster virtualenv (``make cluster-env``) is missing, the tests are skipped locally but
fail when ``CI`` is set: CI must run them. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_SCRIPT = ROOT / "cluster" / "start_slurm.sh"
STOP_SCRIPT = ROOT / "cluster" / "stop_slurm.sh"
# The SLURM executor plugin lives in its own virtualenv (make cluster-env), not in .venv.
CLUSTER_SNAKEMAKE = ROOT / ".venv-cluster" / "bin" / "snakemake"
BINARIES = ("slurmctld", "slurmd", "munged", "sbatch")
PARTITION = "debug"
# start_slurm.sh waits at most 60 s for the node to become idle; stop_slurm.sh at most 20 s for
# cancelled jobs and 20 s for each of its three daemons.
START_TIMEOUT = 90
STOP_TIMEOUT = 120


@dataclass(frozen=True)
class ClusterInfo:
    state_dir: Path
    partition: str
    node: str
    conf: Path
    jobcomp_log: Path  # one line per finished job (jobcomp/filetxt)
    snakemake: Path  # the cluster virtualenv's snakemake, with the SLURM executor plugin

    def env(self) -> dict[str, str]:
        """The environment for SLURM commands: this cluster's configuration, no inherited job."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        return env


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def slurm_available() -> str | None:
    """Why the SLURM tests cannot run here, or None if they can."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return (
            f"SLURM is not installed ({', '.join(missing)} not found); "
            "apt-get install slurmctld slurmd slurm-client munge"
        )
    if os.geteuid() != 0:
        return "the private SLURM cluster must be started as root"
    if not CLUSTER_SNAKEMAKE.exists():
        return f"{CLUSTER_SNAKEMAKE.relative_to(ROOT)} is missing; run `make cluster-env`"
    return None


def _run_script(script: Path, state_dir: Path, timeout: int) -> subprocess.CompletedProcess:
    # `timeout` bounds the script; the Python timeout is only a backstop behind it
    return subprocess.run(
        ["timeout", "-k", "10", str(timeout), str(script), str(state_dir)],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
    )


def start_cluster(state_dir: Path) -> ClusterInfo:
    """Start (or confirm) the cluster in ``state_dir``; RuntimeError if it does not come up."""
    proc = _run_script(START_SCRIPT, state_dir, START_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{START_SCRIPT.name} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    # the last line reads: node=NAME partition=NAME conf=PATH jobcomp=PATH
    fields = dict(item.split("=", 1) for item in proc.stdout.strip().splitlines()[-1].split())
    return ClusterInfo(
        state_dir=Path(state_dir),
        partition=fields["partition"],
        node=fields["node"],
        conf=Path(fields["conf"]),
        jobcomp_log=Path(fields["jobcomp"]),
        snakemake=CLUSTER_SNAKEMAKE,
    )


def stop_cluster(state_dir: Path) -> None:
    """Stop the cluster of ``state_dir`` (cancel its jobs, stop the daemons, remove the link)."""
    proc = _run_script(STOP_SCRIPT, state_dir, STOP_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{STOP_SCRIPT.name} failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )


def require_slurm() -> None:
    """Skip the calling test (fail it in CI) when the cluster cannot run here."""
    reason = slurm_available()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI must run the SLURM tests, but {reason}", pytrace=False)
    pytest.skip(reason)


# registered under the name `slurm_cluster`; the function has another name so that the test
# module's import of it is not shadowed by the tests' `slurm_cluster` parameters (ruff F811)
@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture(tmp_path_factory):
    """A running single-node cluster for the whole session; stopped at the end even on errors."""
    require_slurm()
    state_dir = tmp_path_factory.mktemp("slurm")
    try:
        yield start_cluster(state_dir)
    finally:
        stop_cluster(state_dir)
