"""The workflow's SLURM support against a real single-node SLURM cluster (tests/slurm.py).

The cluster has no accounting database, so Snakemake's SLURM executor polls job states with
squeue (--slurm-status-command squeue; its default, sacct, would wait forever here). Each
Snakemake run is wrapped in `timeout -s INT`: the executor ignores SIGTERM while it waits.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from slurm import ClusterInfo

pytestmark = pytest.mark.slow

JOB_BOUND = 60  # seconds for one sbatch job to finish (it takes about 1-3 s)
RUN_BOUND = 180  # seconds for one Snakemake run (about 30-40 s here)
# the executor plugin's line for each submission, e.g.
# "Job 2 has been submitted with SLURM jobid 1 (log: .../.snakemake/slurm_logs/rule_make/1/1.log)."
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")


def _slurm(cluster: ClusterInfo, *args: str, timeout: int = 30) -> str:
    proc = subprocess.run(
        ["timeout", "-k", "5", str(timeout), *args],
        capture_output=True,
        text=True,
        env=cluster.env(),
        timeout=timeout + 15,
    )
    assert proc.returncode == 0, f"{args} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


def _wait_until(predicate, bound: float, what: str):
    deadline = time.monotonic() + bound
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {bound} s")
        time.sleep(0.5)


def _jobcomp_line(cluster: ClusterInfo, job_id: str) -> str | None:
    if not cluster.jobcomp_log.exists():
        return None
    lines = cluster.jobcomp_log.read_text(encoding="utf-8").splitlines()
    return next((ln for ln in lines if ln.startswith(f"JobId={job_id} ")), None)


def _snakemake(cluster: ClusterInfo, workdir: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the cluster virtualenv's snakemake with the SLURM executor in ``workdir``."""
    cmd = [
        *("timeout", "-s", "INT", "-k", "10", str(RUN_BOUND)),
        str(cluster.snakemake),
        *("--executor", "slurm", "--jobs", "2"),
        # no accounting database: poll with squeue (the cluster keeps finished jobs listed for
        # MinJobAge = 300 s, which must be at least 3 x the initial wait below)
        *("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2"),
        "--slurm-no-account",
        "--default-resources",
        *(f"slurm_partition={cluster.partition}", "runtime=5", "mem_mb=200"),
        *("--latency-wait", "10"),
    ]
    started = time.monotonic()
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_BOUND + 30,
    )
    return proc, time.monotonic() - started


def test_the_node_is_idle(slurm_cluster):
    out = _slurm(slurm_cluster, "sinfo", "--noheader", "--format=%P %a %T %N")
    assert f"{slurm_cluster.partition}* up idle {slurm_cluster.node}" in out.splitlines()


def test_a_batch_job_completes_and_is_logged(slurm_cluster, tmp_path):
    job_id = _slurm(
        slurm_cluster,
        *("sbatch", "--parsable", f"--chdir={tmp_path}", "--output=job-%j.out"),
        "--wrap=echo hello from $SLURM_JOB_ID",
    ).strip()
    assert job_id.isdigit(), job_id

    def state():
        out = _slurm(slurm_cluster, "squeue", "--noheader", "-t", "all", "-j", job_id, "-o", "%T")
        return out.strip() in ("COMPLETED", "FAILED", "CANCELLED") and out.strip()

    assert _wait_until(state, JOB_BOUND, f"job {job_id} finishing") == "COMPLETED"
    assert (tmp_path / f"job-{job_id}.out").read_text().strip() == f"hello from {job_id}"
    line = _wait_until(
        lambda: _jobcomp_line(slurm_cluster, job_id), 10, f"job {job_id} in the jobcomp log"
    )
    assert "JobState=COMPLETED" in line and f"Partition={slurm_cluster.partition}" in line


SNAKEFILE = """\
rule all:
    input:
        "total.txt",


rule part:
    output:
        "part_{i}.txt",
    shell:
        "echo $SLURM_JOB_ID > {output}"


rule total:
    input:
        expand("part_{i}.txt", i=[1, 2]),
    output:
        "total.txt",
    script:
        "total.py"
"""

TOTAL_PY = """\
import os
from pathlib import Path

ids = [Path(p).read_text().strip() for p in snakemake.input]
Path(snakemake.output[0]).write_text(" ".join([*ids, os.environ["SLURM_JOB_ID"]]) + "\\n")
"""


def test_snakemake_submits_each_job_through_sbatch(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "total.py").write_text(TOTAL_PY)
    proc, seconds = _snakemake(slurm_cluster, tmp_path)
    assert proc.returncode == 0, proc.stdout[-5000:]
    assert "SLURM run ID:" in proc.stdout
    submitted = SUBMITTED.findall(proc.stdout)
    slurm_ids = [slurm_id for _, slurm_id, _ in submitted]
    # part_1, part_2 and total went to SLURM; `all` has no action and runs locally
    assert len(slurm_ids) == 3 and len(set(slurm_ids)) == 3, proc.stdout[-5000:]
    # each job ran inside its own allocation and saw the id that sbatch gave it
    ids_in_outputs = (tmp_path / "total.txt").read_text().split()
    assert sorted(ids_in_outputs, key=int) == sorted(slurm_ids, key=int)
    assert ids_in_outputs[-1] == slurm_ids[-1]  # total.py ran in the last job
    # (the executor deletes the SLURM logs of successful jobs, so the jobcomp log is the record)
    for slurm_id in slurm_ids:
        line = _wait_until(
            lambda slurm_id=slurm_id: _jobcomp_line(slurm_cluster, slurm_id),
            10,
            f"job {slurm_id} in the jobcomp log",
        )
        assert "JobState=COMPLETED" in line and f"WorkDir={tmp_path}" in line
    assert seconds < RUN_BOUND


def test_a_failing_rule_ends_the_run_with_an_error(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(
        'rule fails:\n    output:\n        "never.txt",\n'
        "    shell:\n        \"echo 'rule fails: deliberate error' >&2; exit 3\"\n"
    )
    proc, seconds = _snakemake(slurm_cluster, tmp_path)
    # 124 would mean that `timeout` stopped a hanging run
    assert proc.returncode not in (0, 124, 137), proc.stdout[-5000:]
    assert seconds < RUN_BOUND
    assert "Error in rule fails" in proc.stdout
    (submitted,) = SUBMITTED.findall(proc.stdout)
    slurm_id, log = submitted[1], Path(submitted[2])
    # without sacct the executor only knows the state, not the reason
    assert f"SLURM-job '{slurm_id}' failed, SLURM status is: 'FAILED'" in proc.stdout
    assert "rule fails: deliberate error" in log.read_text()
    line = _wait_until(
        lambda: _jobcomp_line(slurm_cluster, slurm_id), 10, f"job {slurm_id} in the jobcomp log"
    )
    assert "JobState=FAILED" in line
    assert not (tmp_path / "never.txt").exists()
