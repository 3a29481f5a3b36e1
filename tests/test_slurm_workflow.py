"""The workflow on a real single-node SLURM cluster (tests/slurm.py) with the project's profiles,
``--profile profiles/slurm --profile profiles/slurm-noacct``: the bootstrap stage and the whole
workflow give the same bytes as the local run, the jobs really go through sbatch (packed into
groups), a shard that fails once is retried, and one that always fails ends the run with its
SLURM job id, rule, wildcards and log. Every run is bounded (`timeout -s INT`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import copy_workflow
from slurm import ClusterInfo

pytestmark = pytest.mark.slow

# the executor plugin's line for each submission (a group job's id is a UUID)
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")
# an OLS spec, an IV spec (WRE), city trends, an interaction on a subsample: 4 specs x 4 shards
# keep the cluster runs short on a 2-CPU node (a spec's draws do not depend on the other specs)
BOOT_SPECS = ["baseline", "iv_relief", "rob_city_trends", "het_adm"]
ONLY_THESE = "bootstrap={specs: [" + ", ".join(BOOT_SPECS) + "]}"


def cluster_snakemake(
    cluster: ClusterInfo, workdir: Path, *args: str, bound: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Snakemake with the SLURM profiles in ``workdir``, bounded by ``timeout -s INT``."""
    cmd = [
        "timeout",
        "-s",
        "INT",
        "-k",
        "20",
        str(bound),
        str(cluster.snakemake),
        "--profile",
        "profiles/slurm",
        "--profile",
        "profiles/slurm-noacct",
        "--cores",
        "2",  # the node's CPUs: a group never asks for more
        "--jobs",
        "4",
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
    ]
    run_env = {
        **cluster.env(),
        "NQP_SLURM_PARTITION": cluster.partition,
        "OPENBLAS_NUM_THREADS": "1",
        **(env or {}),
    }
    return subprocess.run(
        cmd,
        cwd=workdir,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=bound + 60,
    )


def submissions(output: str) -> dict[str, str]:
    """SLURM job id -> the plugin's log of that submission."""
    return {m.group(2): m.group(3) for m in SUBMITTED.finditer(output)}


def _copy_completed(completed_workflow: Path, dest: Path) -> Path:
    shutil.copytree(completed_workflow, dest, copy_function=shutil.copy2, symlinks=True)
    return dest


def _same_files(a: Path, b: Path, pattern: str) -> list[str]:
    names = sorted(p.relative_to(a).as_posix() for p in a.glob(pattern))
    assert names, pattern
    return [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]


def test_bootstrap_stage_on_slurm_equals_the_local_run(completed_workflow, slurm_cluster, tmp_path):
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    shutil.rmtree(work / "results" / "bootstrap")
    targets = [f"results/bootstrap/{s}.json" for s in BOOT_SPECS]
    proc = cluster_snakemake(slurm_cluster, work, *targets)
    assert proc.returncode == 0, proc.stdout[-6000:]
    jobs = submissions(proc.stdout)
    # 16 shard and 4 reduce jobs went to SLURM packed into groups of 16: a few submissions
    assert 2 <= len(jobs) <= 5, (len(jobs), proc.stdout[-3000:])
    done = slurm_cluster.jobcomp_log.read_text(encoding="utf-8")
    for job_id in jobs:
        assert re.search(rf"JobId={job_id} .*JobState=COMPLETED", done), job_id
    assert _same_files(work / "results", completed_workflow / "results", "bootstrap/*.json") == []


def test_whole_workflow_on_slurm_equals_the_local_run(completed_workflow, slurm_cluster, tmp_path):
    work = copy_workflow(tmp_path / "wf")
    proc = cluster_snakemake(slurm_cluster, work, "--config", ONLY_THESE, bound=1500)
    assert proc.returncode == 0, proc.stdout[-6000:]
    jobs = submissions(proc.stdout)
    assert jobs, "no job went through sbatch"
    local, remote = completed_workflow / "results", work / "results"
    for pattern in ("estimates/*.json", "bootstrap/*.json", "table[1-7].tex", "panel/*.parquet"):
        pattern = pattern if "/" in pattern else f"tables/{pattern}"
        assert _same_files(remote, local, pattern) == [], pattern
    # Table 8 shows the bootstrapped specs only; the tables, figures and the document ran
    # locally (localrules), everything else through sbatch
    assert (remote / "tables" / "tables.tex").exists()


def test_a_shard_that_fails_once_is_retried(completed_workflow, slurm_cluster, tmp_path):
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    shutil.rmtree(work / "results" / "bootstrap" / "baseline")
    (work / "results" / "bootstrap" / "baseline.json").unlink()
    marker = tmp_path / "failed_once"
    env = {"NQP_TEST_FAIL_SHARD": f"baseline/1:once:{marker}"}
    proc = cluster_snakemake(slurm_cluster, work, "results/bootstrap/baseline.json", env=env)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert marker.exists()  # the first attempt failed ...
    assert len(submissions(proc.stdout)) >= 2  # ... and was submitted again
    assert _same_files(completed_workflow / "results", work / "results", "bootstrap/*.json") == []


def test_a_shard_that_always_fails_ends_the_run_with_job_id_rule_and_log(
    completed_workflow, slurm_cluster, tmp_path
):
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    shutil.rmtree(work / "results" / "bootstrap" / "baseline")
    (work / "results" / "bootstrap" / "baseline.json").unlink()
    env = {"NQP_TEST_FAIL_SHARD": "baseline/2:always"}
    proc = cluster_snakemake(
        slurm_cluster, work, "results/bootstrap/baseline.json", "--retries", "0", env=env
    )
    assert proc.returncode != 0
    out = proc.stdout
    jobs = submissions(out)
    assert jobs, out[-4000:]
    assert "bootstrap_shard" in out and "spec=baseline, k=2" in out, out[-4000:]
    assert any(f"SLURM jobid {j}" in out or f"SLURM-jobid {j}" in out for j in jobs), out[-4000:]
    log = work / "results" / "logs" / "bootstrap_shard" / "baseline_2.log"
    assert "results/logs/bootstrap_shard/baseline_2.log" in out
    assert "injected failure" in log.read_text(encoding="utf-8")
    # the shards that succeeded are kept for the rerun
    kept = sorted(p.name for p in (work / "results" / "bootstrap" / "baseline").glob("*.parquet"))
    assert "shard_2.parquet" not in kept
