"""The workflow on a real single-node SLURM cluster (tests/slurm.py) with the project's profiles,
``--profile profiles/slurm --profile profiles/slurm-noacct``: the bootstrap stage and the whole
workflow give the same bytes as the local run, the jobs really go through sbatch (packed into
groups), a shard that fails once is retried, and one that always fails ends the run with its
SLURM job id, rule, wildcards and log. Every run is bounded (`timeout -s INT`)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import copy_workflow
from slurm import ClusterInfo

pytestmark = pytest.mark.slow

# the executor plugin's line for each submission (a group job's id is a UUID)
SUBMITTED = re.compile(r"Job (\S+) has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")
# an OLS spec, an IV spec (WRE), city trends, an interaction on a subsample: 4 specs x 4 shards
# keep the cluster runs short on a 2-CPU node (a spec's draws do not depend on the other specs);
# the cluster runs split each spec's draws into 4 shards (the default is 1), which does not
# change a result, so they are compared with the local default run
BOOT_SPECS = ["baseline", "iv_relief", "rob_city_trends", "het_adm"]
SHARDS = 4
FOUR_SHARDS = f"bootstrap={{shards: {SHARDS}}}"
ONLY_THESE = "bootstrap={specs: [" + ", ".join(BOOT_SPECS) + f"], shards: {SHARDS}}}"


def _cluster_command(
    cluster: ClusterInfo, *args: str, env: dict | None = None
) -> tuple[list[str], dict]:
    """Snakemake with the SLURM profiles, and its environment; 4 shards per spec unless ``args``
    set the config themselves."""
    if "--config" not in args:
        args = (*args, "--config", FOUR_SHARDS)
    cmd = [
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
    return cmd, run_env


def cluster_snakemake(
    cluster: ClusterInfo, workdir: Path, *args: str, bound: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Snakemake with the SLURM profiles in ``workdir``, bounded by ``timeout -s INT``."""
    cmd, run_env = _cluster_command(cluster, *args, env=env)
    return subprocess.run(
        ["timeout", "-s", "INT", "-k", "20", str(bound), *cmd],
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


def _forget_bootstrap(work: Path, specs) -> None:
    """Delete the bootstrap of ``specs`` (shards, kept shards, result): it is computed again.
    A run with one shard per spec (the default config) has only the result."""
    boot = work / "results" / "bootstrap"
    for spec in specs:
        shutil.rmtree(boot / spec, ignore_errors=True)
        shutil.rmtree(boot / ".completed" / spec, ignore_errors=True)
        (boot / f"{spec}.json").unlink()


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
    _forget_bootstrap(work, ["baseline"])
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
    _forget_bootstrap(work, ["baseline"])
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


# --------------------------------------------------------------------------- interruptions
# The bootstrap of BOOT_SPECS (16 shards: one group job) is interrupted once a few shards are
# complete: by setting the node DOWN, or by Ctrl-C on the submitting Snakemake. Every wait has a
# bound, and the node is brought back whatever happens.


def _wait(predicate, bound: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    pytest.fail(f"waited {bound:.0f} s for {what}", pytrace=False)


def _scontrol(cluster: ClusterInfo, *args: str) -> None:
    subprocess.run(["scontrol", *args], env=cluster.env(), check=True, timeout=30)


def _node_state(cluster: ClusterInfo) -> str:
    proc = subprocess.run(
        ["sinfo", "--noheader", "--nodes", cluster.node, "--format", "%T"],
        env=cluster.env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    return proc.stdout.strip()


def _resume_node(cluster: ClusterInfo) -> None:
    """Bring the node back (if it is down) and wait until it takes jobs again. A node that is
    still finishing a job ("completing") or running one takes jobs: only a node that is down,
    drained or not responding is waited for."""
    if _node_state(cluster).startswith(("down", "drain")):
        _scontrol(cluster, "update", f"nodename={cluster.node}", "state=resume")
    _wait(
        lambda: _node_state(cluster).rstrip("*~#$@+")
        in ("idle", "mixed", "allocated", "completing"),
        120,
        "the node to take jobs again",
        0.5,
    )


def _kill_job_processes(work: Path) -> int:
    """What a dead node does to the jobs it ran: kill every process of a SLURM job (it has
    SLURM_JOB_ID in its environment) still running in ``work``. The private cluster's node is
    this machine, so the processes of a job whose node was set DOWN can outlive it (Snakemake
    inside a group job waits for its steps on SIGTERM). The submitting Snakemake is spared."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        in_job = any(item.startswith(b"SLURM_JOB_ID=") for item in environ)
        if in_job and (cwd == work or work in cwd.parents):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def _done_shards(work: Path) -> dict[str, tuple[int, int]]:
    """Completed shard outputs -> (inode, mtime): a shard computed again gets a new inode."""
    out = {}
    for spec in BOOT_SPECS:
        for path in (work / "results" / "bootstrap" / spec).glob("shard_*.parquet"):
            st = path.stat()
            out[f"{spec}/{path.name}"] = (st.st_ino, st.st_mtime_ns)
    return out


def _job_counts(output: str) -> dict[str, int]:
    """Snakemake's "Job stats" table: rule -> number of jobs the run had to do."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _default_sigint() -> None:
    """SIGINT back to its default action in the Snakemake process. A test suite started in the
    background by a non-interactive shell (``cmd &``) ignores SIGINT, its children inherit that,
    and a Python that starts with SIGINT ignored never raises KeyboardInterrupt: the Ctrl-C test
    would then see the run go on to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Run:
    """A bounded background Snakemake run through SLURM, its output in a file."""

    def __init__(self, cluster: ClusterInfo, work: Path, log: Path, *args: str, env=None):
        cmd, run_env = _cluster_command(cluster, *args, env=env)
        self.log = log
        with open(log, "w", encoding="utf-8") as fh:
            self.proc = subprocess.Popen(
                cmd,
                cwd=work,
                env=run_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_default_sigint,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def interrupt(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, bound: float) -> int:
        try:
            return self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"Snakemake did not end within {bound:.0f} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def _interrupted_after_some_shards(cluster, work, tmp_path, how: str, *args) -> tuple[_Run, dict]:
    """Start the bootstrap of BOOT_SPECS, interrupt it (``how``: node-down or ctrl-c) once two
    shards are complete; the shards complete at that moment, with their inodes and mtimes."""
    targets = [f"results/bootstrap/{s}.json" for s in BOOT_SPECS]
    run = _Run(cluster, work, tmp_path / f"{how}.log", *targets, *args)
    try:
        _wait(
            lambda: len(_done_shards(work)) >= 2 or run.proc.poll() is not None,
            300,
            "two completed shards",
        )
        before = _done_shards(work)
        assert run.proc.poll() is None, run.output()[-4000:]
        if how == "node-down":
            _scontrol(
                cluster, "update", f"nodename={cluster.node}", "state=down", "reason=nqp-test"
            )
        else:
            run.interrupt()
    except BaseException:
        run.kill()
        raise
    return run, before


@pytest.mark.parametrize("how", ["node-down", "ctrl-c"])
def test_after_an_interruption_the_rerun_does_only_the_missing_jobs(
    completed_workflow, slurm_cluster, tmp_path, how
):
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    _forget_bootstrap(work, BOOT_SPECS)
    try:
        # no retry: the node failure ends the run (Ctrl-C ends it anyway)
        first, before = _interrupted_after_some_shards(
            slurm_cluster, work, tmp_path, how, "--retries", "0"
        )
        code = first.wait(300)
        out = first.output()
        assert code != 0, out[-4000:]
        if how == "node-down":
            _kill_job_processes(work)
        if how == "node-down":
            # the group's SLURM log, printed with the error, names the cause
            assert "DUE TO NODE FAILURE" in out, out[-4000:]
    finally:
        _resume_node(slurm_cluster)
    kept = _done_shards(work)
    # the shards that had completed are still there, and the interruption hit mid-run
    assert set(before) <= set(kept) and len(kept) < 4 * len(BOOT_SPECS), (before, kept)

    proc = cluster_snakemake(
        slurm_cluster, work, *[f"results/bootstrap/{s}.json" for s in BOOT_SPECS]
    )
    assert proc.returncode == 0, proc.stdout[-6000:]
    counts = _job_counts(proc.stdout)
    assert counts.get("bootstrap_shard") == 4 * len(BOOT_SPECS) - len(kept), counts
    assert counts.get("bootstrap_reduce") == len(BOOT_SPECS), counts
    after = _done_shards(work)
    assert {k: after[k] for k in kept} == kept  # never computed again, not even touched
    assert _same_files(work / "results", completed_workflow / "results", "bootstrap/*.json") == []


def test_a_group_retried_after_a_node_failure_links_its_completed_shards_back(
    completed_workflow, slurm_cluster, tmp_path
):
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    _forget_bootstrap(work, BOOT_SPECS)
    try:
        run, before = _interrupted_after_some_shards(slurm_cluster, work, tmp_path, "node-down")
        try:  # the profile's retries: Snakemake submits the group again, which waits for the node
            _wait(
                lambda: "Trying to restart job" in run.output() or run.proc.poll() is not None,
                300,
                "Snakemake to submit the failed group again",
                0.5,
            )
            _kill_job_processes(work)
        finally:
            _resume_node(slurm_cluster)
        code = run.wait(600)
    finally:
        _resume_node(slurm_cluster)
    out = run.output()
    assert code == 0, out[-6000:]
    assert "DUE TO NODE FAILURE" in out, out[-4000:]
    after = _done_shards(work)
    assert len(after) == 4 * len(BOOT_SPECS)
    for name, (inode, _) in before.items():
        # the retried group job ran these shards again, and they linked the completed file back
        assert after[name][0] == inode, name
        spec, shard = name.split("/")
        log = work / "results" / "logs" / "bootstrap_shard" / f"{spec}_{shard[6:-8]}.log"
        assert "not recomputed" in log.read_text(encoding="utf-8"), name
    assert _same_files(work / "results", completed_workflow / "results", "bootstrap/*.json") == []


def test_a_group_larger_than_the_node_is_an_error_not_a_wait(
    completed_workflow, slurm_cluster, tmp_path
):
    # --cores 64: the group of baseline's 4 shards asks for 4 CPUs, the node has 2
    work = _copy_completed(completed_workflow, tmp_path / "wf")
    _forget_bootstrap(work, ["baseline"])
    t0 = time.monotonic()
    proc = cluster_snakemake(
        slurm_cluster, work, "results/bootstrap/baseline.json", "--cores", "64", bound=300
    )
    # the cluster would accept that job and keep it pending: the check before the first
    # submission stops the run instead
    assert proc.returncode != 0 and time.monotonic() - t0 < 120, proc.stdout[-4000:]
    assert "the largest node of partition 'debug' has 2" in proc.stdout, proc.stdout[-4000:]
    assert not submissions(proc.stdout)


def _small_study(work: Path, seeds: int) -> None:
    """Make the copy's Monte Carlo study small: ``seeds`` seeds of the default set, the
    bootstrap of one spec."""
    import yaml

    path = work / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    mc = config["monte_carlo"]
    mc["seeds"] = {"first": 1, "count": seeds}
    mc["params"] = {"default": mc["params"]["default"]}
    mc["bootstrap"]["specs"] = ["baseline"]
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), "utf-8")


def test_monte_carlo_stage_on_slurm_equals_the_local_run(slurm_cluster, tmp_path):
    """The Monte Carlo target runs unchanged with the cluster profile: its seed jobs go through
    sbatch packed into one group, and every seed record and the summary are the same bytes as
    a local run's."""
    local = copy_workflow(tmp_path / "local")
    remote = copy_workflow(tmp_path / "remote")
    for work in (local, remote):
        _small_study(work, 3)
    subprocess.run(
        [str(slurm_cluster.snakemake), "--cores", "2", "monte_carlo"],
        cwd=local,
        check=True,
        capture_output=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    proc = cluster_snakemake(slurm_cluster, remote, "monte_carlo", bound=900)
    assert proc.returncode == 0, proc.stdout[-6000:]
    jobs = submissions(proc.stdout)
    # three seed jobs in one group job, and the summary
    assert 1 <= len(jobs) <= 2, (len(jobs), proc.stdout[-3000:])
    counts = _job_counts(proc.stdout)
    assert counts.get("monte_carlo_seed") == 3, counts
    a, b = remote / "results/monte_carlo", local / "results/monte_carlo"
    assert _same_files(a, b, "default/seed_*.json") == []
    assert _same_files(a, b, "summary.csv") == []
