"""The SLURM profiles (profiles/slurm, profiles/slurm-noacct) and the check made before a run
submits its first job. The real cluster runs are in tests/test_slurm_cluster.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from nqp_resilience.cluster import check_cluster_environment
from nqp_resilience.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _workflow(executor: str | None, no_account: bool = False, cores=None):
    plugin = None if executor is None else SimpleNamespace(name=executor)
    return SimpleNamespace(
        executor_plugin=plugin,
        executor_settings=SimpleNamespace(no_account=no_account),
        resource_settings=SimpleNamespace(cores=cores),
    )


def test_the_check_stops_a_slurm_run_without_partition_or_account():
    env = {"NQP_SLURM_PARTITION": "debug", "NQP_SLURM_ACCOUNT": "proj"}
    check_cluster_environment(_workflow("slurm"), env)
    check_cluster_environment(_workflow("slurm", no_account=True), {"NQP_SLURM_PARTITION": "x"})
    for executor in (None, "local", "slurm-jobstep"):  # local runs and the jobs inside SLURM
        check_cluster_environment(_workflow(executor), {})
    with pytest.raises(ConfigError, match="NQP_SLURM_PARTITION, NQP_SLURM_ACCOUNT") as info:
        check_cluster_environment(_workflow("slurm"), {})
    assert "export NQP_SLURM_PARTITION" in info.value.hint and "slurm-noacct" in info.value.hint
    with pytest.raises(ConfigError, match="NQP_SLURM_ACCOUNT"):
        check_cluster_environment(_workflow("slurm"), {"NQP_SLURM_PARTITION": "debug"})


def test_the_check_stops_a_group_larger_than_any_node():
    env = {"NQP_SLURM_PARTITION": "debug", "NQP_SLURM_ACCOUNT": "proj"}
    nodes = {"debug": [(2, 7000), (8, 64000)], "empty": []}.get
    check_cluster_environment(_workflow("slurm", cores=8), env, nodes)
    with pytest.raises(ConfigError, match="largest node of partition 'debug' has 8") as info:
        check_cluster_environment(_workflow("slurm", cores=16), env, nodes)
    assert "cores: 8" in info.value.hint
    with pytest.raises(ConfigError, match="has no nodes"):
        check_cluster_environment(
            _workflow("slurm", cores=2), {**env, "NQP_SLURM_PARTITION": "empty"}, nodes
        )
    # sinfo did not answer: skipped (sbatch reports what it refuses)
    check_cluster_environment(_workflow("slurm", cores=64), env, lambda p: None)


def _profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text(encoding="utf-8"))


def test_the_slurm_profile_packs_jobs_and_retries():
    p = _profile("slurm")
    assert p["executor"] == "slurm" and p["retries"] >= 1 and p["rerun-incomplete"] is True
    assert "$NQP_SLURM_ACCOUNT" in p["default-resources"]["slurm_account"]
    assert "$NQP_SLURM_PARTITION" in p["default-resources"]["slurm_partition"]
    # every spec job and every bootstrap shard is packed into a group of the profile
    assert {p["groups"][r] for r in ("describe", "ols_fe", "iv_fe", "psm_fe")} == {"specs"}
    assert set(p["groups"].values()) <= set(p["group-components"])
    assert isinstance(p["cores"], int)  # caps the CPUs one group asks for
    # the completed members of a failed group are kept, and a lost node's job is not requeued
    # by SLURM behind Snakemake's retries
    assert p["keep-incomplete"] is True and p["slurm-no-requeue"] is True
    noacct = _profile("slurm-noacct")
    assert noacct["slurm-status-command"] == "squeue" and noacct["slurm-no-account"] is True
    assert "slurm_account" not in noacct["default-resources"]
    # the local workflow profile is read after --profile: it must not override cluster settings
    # (a key both set must have the same value)
    local = _profile("default")
    assert {k: local[k] for k in set(local) & set(p)} == {k: p[k] for k in set(local) & set(p)}
