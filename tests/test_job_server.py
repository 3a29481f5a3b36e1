"""The job server (nqp_resilience.job_server): a shell job handed to it runs in a worker forked
from the server, with the client's streams, directory, environment and exit status; the client
runs the job itself whenever the server cannot (none yet, declined, other environment, SLURM);
a cancelled client takes its worker along, and the server ends with its Snakemake process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from nqp_resilience import job_server
from nqp_resilience.shell_job import job_payload

pytestmark = pytest.mark.skipif(not job_server.available(), reason="Linux only")

JOBS = """
import json, logging, os, sys, time
from pathlib import Path
from nqp_resilience.errors import DataError

def where(smk):
    logging.getLogger("nqp_resilience.test").info("job %s", smk.params.tag)
    print("to stdout", smk.params.tag)
    Path(smk.output[0]).write_text(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
        "tag": smk.params.tag, "tmpdir": os.environ.get("TMPDIR"),
    }))

def refuse(smk):
    raise DataError(smk.output[0], "a cell is not a number", row="line 3", hint="fix it")

def crash(smk):
    raise RuntimeError("a bug")

def linger(smk):
    Path(smk.output[0]).write_text(str(os.getpid()))
    time.sleep(60)
"""


class _Named(list):
    def __init__(self, items, names=None):
        super().__init__(items)
        self._n = dict(names or {})

    def items(self):
        return iter(self._n.items())


def _payload(out, **params):
    return job_payload(_Named([]), _Named([]), _Named([str(out)]), 1, params)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has ended
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def run(tmp_path):
    """A fake Snakemake process (the server's owner) and a function that runs a shell job as
    Snakemake would, in ``tmp_path`` with the job server's variable set."""
    (tmp_path / "demo_jobs.py").write_text(JOBS, encoding="utf-8")
    owner = subprocess.Popen(["sleep", "300"])
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        job_server.ENV_VAR: job_server.setting(str(tmp_path), owner.pid),
    }
    env.pop("SLURM_JOB_ID", None)

    def shell_job(function, out, extra_env=None, wait=True, **params):
        cmd = [sys.executable, "-m", "nqp_resilience.shell_job", f"demo_jobs:{function}"]
        cmd += [str(tmp_path / "logs" / f"{function}.log"), _payload(out, **params)]
        kwargs = dict(cwd=tmp_path, env={**env, **(extra_env or {})}, text=True)
        if not wait:
            return subprocess.Popen(cmd, **kwargs)
        return subprocess.run(cmd, capture_output=True, **kwargs)

    state = SimpleNamespace(tmp=tmp_path, owner=owner, env=env, job=shell_job)
    state.address = job_server.address(str(tmp_path), owner.pid)
    state.lock = tmp_path / ".snakemake" / "nqp_resilience" / f"job_server.{owner.pid}"
    yield state
    owner.kill()
    owner.wait()


def _listening(address) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def _server_pid(address) -> int:
    name = address[1:].encode()
    inodes = set()
    with open("/proc/net/unix") as fh:
        for line in fh:
            if line.rstrip().endswith("@" + name.decode()):
                inodes.add(line.split()[6])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
        except OSError:
            continue
    raise AssertionError("no process listens on the server's address")


def _start(run):
    """The first job runs in its own process and starts the server."""
    first = run.job("where", run.tmp / "first.json", tag="first")
    assert first.returncode == 0, first.stderr
    record = json.loads((run.tmp / "first.json").read_text())
    assert record["ppid"] == os.getpid() and run.lock.exists()  # run by the client itself
    assert _wait(lambda: _listening(run.address)), "the server did not start"
    return _server_pid(run.address)


def test_jobs_run_in_workers_of_the_server_with_the_clients_streams_and_status(run):
    server = _start(run)
    proc = run.job("where", run.tmp / "out.json", tag="b")
    assert proc.returncode == 0, proc.stderr
    record = json.loads((run.tmp / "out.json").read_text())
    assert record["ppid"] == server  # a worker forked by the server
    assert record["cwd"] == str(run.tmp) and record["tag"] == "b"
    assert "to stdout b" in proc.stdout and "job b" in proc.stderr
    assert "job b" in (run.tmp / "logs" / "where.log").read_text()

    refused = run.job("refuse", run.tmp / "x.json")
    assert refused.returncode == 1
    log = (run.tmp / "logs" / "refuse.log").read_text()
    for text in (log, refused.stderr):
        assert "DataError: file" in text and "row line 3" in text and "fix it" in text
        assert "Traceback" not in text

    crashed = run.job("crash", run.tmp / "y.json")
    assert crashed.returncode == 1
    assert "RuntimeError: a bug" in crashed.stderr and "Traceback" in crashed.stderr
    assert _server_pid(run.address) == server  # the server itself goes on


def test_in_wait_mode_even_the_first_job_is_served_by_the_server_it_starts(run):
    """A run of many jobs: the first client starts the server and waits for it instead of
    running its job itself, and so do the jobs that arrive while the server imports."""
    run.env[job_server.ENV_VAR] = job_server.setting(str(run.tmp), run.owner.pid, wait=True)
    clients = [run.job("where", run.tmp / f"w{i}.json", wait=False, tag=f"w{i}") for i in range(3)]
    for client in clients:
        assert client.wait(timeout=60) == 0
    server = _server_pid(run.address)
    parents = {json.loads((run.tmp / f"w{i}.json").read_text())["ppid"] for i in range(3)}
    assert parents == {server}
    assert run.lock.exists()
    # a server that never listens: a waiting client gives up and runs the job itself
    other = job_server.setting(str(run.tmp / "sub"), run.owner.pid, wait=True)
    lock = run.tmp / "sub" / ".snakemake" / "nqp_resilience" / f"job_server.{run.owner.pid}"
    lock.parent.mkdir(parents=True)
    lock.write_text("")  # the mark of a server that died before it listened
    started = time.monotonic()
    proc = run.job("where", run.tmp / "alone.json", extra_env={job_server.ENV_VAR: other}, tag="x")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run.tmp / "alone.json").read_text())["ppid"] != server
    assert time.monotonic() - started >= job_server.WAIT_FOR_LISTENING


def test_a_job_the_server_cannot_serve_runs_in_its_own_process(run):
    server = _start(run)
    # another thread count (numpy reads it when it is imported): declined, run by the client
    proc = run.job("where", run.tmp / "a.json", extra_env={"OPENBLAS_NUM_THREADS": "7"}, tag="a")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run.tmp / "a.json").read_text())["ppid"] != server
    # inside a SLURM job the client never asks
    proc = run.job("where", run.tmp / "b.json", extra_env={"SLURM_JOB_ID": "12"}, tag="b")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run.tmp / "b.json").read_text())["ppid"] != server
    # the temporary-directory variables may differ
    proc = run.job("where", run.tmp / "c.json", extra_env={"TMPDIR": str(run.tmp)}, tag="c")
    record = json.loads((run.tmp / "c.json").read_text())
    assert record["ppid"] == server and record["tmpdir"] == str(run.tmp)


def test_a_cancelled_client_takes_its_worker_along(run):
    _start(run)
    client = run.job("linger", run.tmp / "pid.txt", wait=False)
    assert _wait(lambda: (run.tmp / "pid.txt").exists() and (run.tmp / "pid.txt").read_text())
    worker = int((run.tmp / "pid.txt").read_text())
    assert worker != client.pid and _alive(worker)
    client.send_signal(signal.SIGKILL)
    client.wait()
    assert _wait(lambda: not _alive(worker), timeout=10), "the worker outlived its client"


def test_the_server_ends_with_its_snakemake_and_keeps_a_log(run):
    server = _start(run)
    assert run.job("where", run.tmp / "served.json", tag="s").returncode == 0
    assert run.job("refuse", run.tmp / "x.json").returncode == 1
    run.owner.kill()
    run.owner.wait()
    assert _wait(lambda: not _alive(server), timeout=10), "the server outlived Snakemake"
    assert not run.lock.exists()  # the start mark is now the server's log
    lines = run.lock.with_name(f"{run.lock.name}.log").read_text().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [
        ["demo_jobs:where", "exit 0"],
        ["demo_jobs:refuse", "exit 1"],
    ]
    assert all(line.split("\t")[3].startswith("peak RSS ") for line in lines)
    # with the owner gone the clients run their jobs themselves
    proc = run.job("where", run.tmp / "late.json", tag="late")
    assert proc.returncode == 0, proc.stderr


def test_a_server_whose_snakemake_has_ended_but_is_not_collected_stops(run):
    """An owner that has exited but was not waited for (a zombie) counts as ended."""
    zombie = subprocess.Popen(["true"])
    assert _wait(lambda: not _alive(zombie.pid))  # exited, not collected
    env = {job_server.ENV_VAR: job_server.setting(str(run.tmp), zombie.pid)}
    try:
        proc = run.job("where", run.tmp / "z.json", extra_env=env, tag="z")
        assert proc.returncode == 0, proc.stderr
        lock = run.tmp / ".snakemake" / "nqp_resilience" / f"job_server.{zombie.pid}"
        assert _wait(lambda: lock.with_name(lock.name + ".log").exists(), timeout=20)
        address = job_server.address(str(run.tmp), zombie.pid)
        assert _wait(lambda: not _listening(address), timeout=20)
    finally:
        zombie.wait()


def test_the_client_asks_only_with_the_variable_and_outside_slurm(tmp_path):
    setting = job_server.setting(str(tmp_path), os.getpid())
    assert job_server.submit(["m:f", "", "{}"], environ={}) is None
    env = {job_server.ENV_VAR: setting, "SLURM_JOB_ID": "3"}
    assert job_server.submit(["m:f", "", "{}"], environ=env) is None
    digest = "0" * 16
    for bad in ("{bad", "12:short:-:/x", f"x:{digest}:-:/x", f"12:{digest}:-:relative"):
        assert job_server.submit(["m:f", "", "{}"], environ={job_server.ENV_VAR: bad}) is None
    assert job_server._settings({job_server.ENV_VAR: f"12:{digest}:later:/x"}) is None
    assert job_server._settings({job_server.ENV_VAR: f"12:{digest}:wait:/x:y"})["workdir"] == "/x:y"
    # no server listening and the start mark already taken: nothing is started, None
    lock = tmp_path / ".snakemake" / "nqp_resilience" / f"job_server.{os.getpid()}"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    assert job_server.submit(["m:f", "", "{}"], environ={job_server.ENV_VAR: setting}) is None


def test_only_a_local_run_enables_the_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / ".snakemake" / "nqp_resilience"
    stale.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (stale / f"job_server.{dead.pid}").write_text("")
    (stale / f"job_server.{dead.pid}.log").write_text("")
    (stale / f"job_server.{os.getpid()}").write_text("")
    env = {}

    def dag(jobs, complete):  # counted: the jobs to run, not those with complete outputs
        return SimpleNamespace(
            needrun_jobs=lambda: iter(range(jobs)), jobs=list(range(jobs + complete))
        )

    plugin = SimpleNamespace(name="local")
    local = SimpleNamespace(executor_plugin=plugin, dag=dag(3, 90))
    assert job_server.enable(local, env)
    assert not job_server._settings(env)["wait"]  # a few jobs do not wait for a starting server
    many = SimpleNamespace(executor_plugin=plugin, dag=dag(4, 0))
    assert job_server.enable(many, env) and job_server._settings(env)["wait"]
    settings = job_server._settings(env)
    assert (settings["workdir"], settings["owner"]) == (str(tmp_path), os.getpid())
    assert job_server._address(settings["digest"], os.getpid()) == job_server.address(
        str(tmp_path), os.getpid()
    )
    # an ended run's mark and log are removed
    assert not list(stale.glob(f"job_server.{dead.pid}*"))
    assert (stale / f"job_server.{os.getpid()}").exists()
    slurm = SimpleNamespace(executor_plugin=SimpleNamespace(name="slurm"))
    assert not job_server.enable(slurm, env) and job_server.ENV_VAR not in env


def test_a_cold_local_run_starts_its_server_while_snakemake_builds_the_dag(tmp_path, monkeypatch):
    """start_early: only a main Snakemake process outside SLURM whose early output is missing
    starts a server at parse time (in wait mode); onstart keeps it for a local run and stops it
    for a run that submits elsewhere."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "results" / "panel" / "analysis.parquet"
    main = SimpleNamespace(is_main_process=True)
    assert not job_server.start_early(SimpleNamespace(is_main_process=False), str(marker), {})
    assert not job_server.start_early(main, str(marker), {"SLURM_JOB_ID": "7"})
    marker.parent.mkdir(parents=True)
    marker.write_bytes(b"")
    assert not job_server.start_early(main, str(marker), {})  # not cold: the first job starts it
    marker.unlink()
    env = dict(os.environ)
    env.pop(job_server.ENV_VAR, None)
    assert job_server.start_early(main, str(marker), env)
    try:
        settings = job_server._settings(env)
        assert settings["wait"] and settings["owner"] == os.getpid()
        (server,) = job_server._early
        plugin = SimpleNamespace(name="local")
        # a local run keeps the early server and its setting (no job count needed)
        assert job_server.enable(SimpleNamespace(executor_plugin=plugin), env)
        assert job_server._settings(env) == settings and job_server._early == [server]
        assert not job_server.start_early(main, str(marker), env)  # one server per run
        # a SLURM run stops it and leaves the jobs without the variable
        slurm = SimpleNamespace(executor_plugin=SimpleNamespace(name="slurm"))
        assert not job_server.enable(slurm, env) and job_server.ENV_VAR not in env
        assert server.wait(timeout=10) is not None and job_server._early == []
    finally:
        job_server._stop_early()


def test_a_changed_source_file_is_noticed(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("x = 1\n")
    stamps = {str(source): source.stat().st_mtime_ns}
    assert job_server._unchanged(stamps)
    os.utime(source, ns=(0, source.stat().st_mtime_ns + 1_000_000))
    assert not job_server._unchanged(stamps)
    assert not job_server._unchanged({str(tmp_path / "gone.py"): 1})
    stamps = job_server._package_files()
    assert any(path.endswith("job_server.py") for path in stamps) and all(
        mtime > 0 for mtime in stamps.values()
    )


def test_a_request_round_trips_and_a_foreign_one_is_refused():
    env = {"A": "1", "EMPTY": "", "EQ": "a=b", "UNICODE": "城市"}
    argv = ["m:f", "log file.log", '{"params": {"x": "é"}}', ""]
    data = job_server.encode_request(argv, "/work dir", env, "/usr/bin/python3")
    assert int.from_bytes(data[:4], "big") == len(data) - 4
    request = job_server.decode_request(data[4:])
    assert request == {
        "argv": argv,
        "cwd": "/work dir",
        "env": env,
        "executable": "/usr/bin/python3",
    }
    for foreign in (b"", b'{"argv": []}', data[4:].replace(b"nqp-job-1", b"nqp-job-0")):
        with pytest.raises(ValueError):
            job_server.decode_request(foreign)


def test_the_environment_check(tmp_path):
    env = {"A": "1", "PWD": "/x", "TMPDIR": "/t"}
    request = {"env": {"A": "1", "PWD": "/y"}, "executable": sys.executable}
    assert job_server._compatible(request, env)
    assert not job_server._compatible({**request, "executable": "/usr/bin/python9"}, env)
    assert not job_server._compatible({**request, "env": {"A": "2"}}, env)
    assert not job_server._compatible({**request, "env": {"A": "1", "B": ""}}, env)


@pytest.mark.slow
def test_the_workflow_gives_the_same_bytes_with_and_without_the_server(
    completed_workflow, tmp_path
):
    """The whole default run through the job server (the default) against the session's run
    with every job in its own process: every result file is byte for byte the same."""
    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    snakemake(work, "--cores", "2")
    skip = ("logs", "benchmarks")

    def results(root):
        return {
            p.relative_to(root): p
            for p in sorted(root.rglob("*"))
            if p.is_file()
            and p.relative_to(root).parts[0] not in skip
            and ".completed" not in p.parts
        }

    ours, reference = results(work / "results"), results(completed_workflow / "results")
    assert sorted(ours) == sorted(reference) and len(ours) > 100
    differ = [str(k) for k in ours if ours[k].read_bytes() != reference[k].read_bytes()]
    assert differ == []
    # the server served most jobs (the first ones run while it starts), then ended
    folder = work / ".snakemake" / "nqp_resilience"
    assert _wait(lambda: not [p for p in folder.glob("job_server.*") if p.suffix != ".log"])
    (log,) = folder.glob("job_server.*.log")
    served = [line.split("\t") for line in log.read_text().splitlines()]
    assert len(served) > 60 and all(fields[1] == "exit 0" for fields in served)
