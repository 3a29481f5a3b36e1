"""Job server: the workflow's Python jobs forked from one process that has already imported
the libraries, instead of each starting Python and importing numpy, pyarrow and pandas again.

A local run (``snakemake --cores N``, ``job_server: true`` in the config) sets the environment
variable :data:`ENV_VAR` before its first job (``onstart`` in the Snakefile). Each shell job
(:mod:`nqp_resilience.shell_job`) is then a small client:

1. It connects to the run's server (a Linux abstract socket named after the working directory
   and Snakemake's process id) and sends its arguments, working directory and environment, with
   its standard input, output and error as file descriptors.
2. The server forks a worker: a copy of the server with everything imported. The worker takes
   the client's streams, directory and environment and runs the job function exactly as the
   client would have (:func:`nqp_resilience.shell_job.run_function`), then exits.
3. The server sends the worker's exit status back; the client exits with it. Output, logs and
   exit status are those of a job run by the client itself.

Nothing depends on the server being there. The first client starts one in the background
(:func:`spawn`). In a run of :data:`WAIT_FROM_JOBS` jobs or more the server listens at once and
the first clients wait until it has imported what they need; in a shorter run a client that
finds no server ready runs its job itself. A client also runs the job itself when the server
declines it or ends, when it runs inside a SLURM job, and when :data:`ENV_VAR` is unset
(cluster jobs, tests, library calls). The server declines a job whose environment differs from
its own in anything but the working-directory and temporary-directory variables (for example a
job with more threads, whose thread variables differ: numpy reads them when it is imported),
and stops serving once a source file of the package has changed since it imported it. It ends
when Snakemake's process ends. A client that dies (a cancelled job) takes its worker, and the
worker's process group, with it.

Snakemake's benchmark files still time each job from the client's start to its end; their
memory columns cover the client only (the worker is the server's child). Set
``job_server: false`` to measure each job's own memory.
"""

from __future__ import annotations

import os
import sys

# The client side (:func:`submit`) runs at the start of every job, so this module imports only
# ``os`` and ``sys`` at the top and the client speaks through ``_socket`` with a plain byte
# format: ``json``, ``socket`` (enum), ``struct`` and ``hashlib`` would cost a job more than the
# rest of its client work. The server imports what it needs itself.

ENV_VAR = "NQP_JOB_SERVER"

# environment variables allowed to differ between the server and a job it serves
PER_JOB_VARIABLES = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "TMP", "TEMP", "TEMPDIR"})

# imported by the server before it serves: what the first jobs of a run (ingest, plausibility,
# the panel) need, so that it serves them soon after it starts ...
PRELOAD_FIRST = (
    "numpy",
    "pyarrow",
    "pyarrow.csv",
    "pyarrow.parquet",
    "nqp_resilience.data.jobs",
)
# ... then, one module between two jobs, the libraries of the later jobs and every module of the
# package (a job imports anything not yet there itself); pandas first, which the ingest jobs do
# not need but the plausibility checks and the panel do
PRELOAD = (
    "pandas",
    "pyarrow.dataset",
    "pyarrow.pandas_compat",
    "statistics",
    "scipy.sparse",
    "jinja2",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.style",
    "matplotlib.backends.backend_agg",
    "matplotlib.backends.backend_pdf",
    "fontTools.subset",
    "PIL.PngImagePlugin",
)

# A run of at least WAIT_FROM_JOBS jobs starts its server in "wait" mode: the server listens at
# once and imports afterwards, and a job that finds it starting waits for it (its connection is
# accepted once the imports are done, about as long as one job takes to import them itself)
# instead of running in its own process. The first jobs of a run then do not compete with the
# server's imports for the cores. A run of fewer jobs (one rule, ``--until``) does not wait: its
# jobs run in their own processes until the server is ready, as a single job would.
WAIT_FROM_JOBS = 4
WAIT_FOR_LISTENING = 5.0  # seconds a waiting job gives a server that is not yet listening

# the wire format: a request is its length (4 bytes, big-endian) and its fields separated by
# NUL bytes (no argument, path or environment entry can hold one); a reply is one byte, "X"
# (exited) or "D" (declined), and the exit status (4 bytes, big-endian, signed)
_DECLINED = b"D"
_EXITED = b"X"
_REPLY_SIZE = 5
_REQUEST_VERSION = b"nqp-job-1"


def _digest(workdir: str) -> str:
    import hashlib

    return hashlib.sha256(os.path.realpath(workdir).encode()).hexdigest()[:16]


def address(workdir: str, owner: int) -> str:
    """The abstract socket name of the server of Snakemake process ``owner`` in ``workdir``."""
    return _address(_digest(workdir), owner)


def _address(digest: str, owner: int) -> str:
    return f"\0nqp-resilience-job-server-{digest}-{owner}"


def setting(workdir: str, owner: int, wait: bool = False) -> str:
    """The value of :data:`ENV_VAR` for Snakemake process ``owner`` running in ``workdir``:
    ``OWNER:DIGEST:MODE:WORKDIR`` (the digest names the socket, so that a client needs no
    hashing; the mode is ``wait`` when the jobs wait for a starting server, ``-`` otherwise)."""
    return f"{owner}:{_digest(workdir)}:{'wait' if wait else '-'}:{os.path.realpath(workdir)}"


def available() -> bool:
    """Whether this platform can run the server (Linux: abstract sockets, pidfds, fd passing)."""
    import socket

    return (
        sys.platform.startswith("linux")
        and hasattr(socket, "send_fds")
        and hasattr(os, "pidfd_open")
    )


def encode_request(argv: list[str], cwd: str, environ, executable: str) -> bytes:
    """The request of a job: its arguments, working directory, environment and interpreter."""
    fields = [_REQUEST_VERSION, os.fsencode(executable), os.fsencode(cwd), b"%d" % len(argv)]
    fields += [os.fsencode(a) for a in argv]
    fields += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in environ.items()]
    body = b"\0".join(fields)
    return len(body).to_bytes(4, "big") + body


def decode_request(body: bytes) -> dict:
    """The request :func:`encode_request` made (without its length), as a dict; ValueError if it
    is not one."""
    fields = [os.fsdecode(f) for f in body.split(b"\0")]
    if len(fields) < 4 or fields[0] != _REQUEST_VERSION.decode() or not fields[3].isdigit():
        raise ValueError("not a job request")
    n = int(fields[3])
    argv, entries = fields[4 : 4 + n], fields[4 + n :]
    if len(argv) != n or not all("=" in e for e in entries):
        raise ValueError("not a job request")
    env = dict(e.split("=", 1) for e in entries)
    return {"argv": argv, "cwd": fields[2], "env": env, "executable": fields[1]}


#: the thread variables Snakemake sets for a job of one thread (snakemake.shell): a server
#: started before the jobs has them too, so that its environment is theirs
ONE_THREAD = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
_early = []  # the server this Snakemake started while it parsed the workflow


def start_early(workflow, cold_marker: str, environ=None) -> bool:
    """Start the server while Snakemake parses the workflow and builds the DAG, when the run
    looks cold (``cold_marker``, an early output, is missing): its first imports then overlap
    Snakemake's own start instead of delaying the first jobs (about 0.2 s of a default cold
    run). Snakemake's executor is not known yet: :func:`enable` stops this server again if the
    run submits its jobs elsewhere; a dry run or a lint ends it by ending (the server follows
    its Snakemake). A run that does not look cold starts its server with its first job."""
    environ = os.environ if environ is None else environ
    if (
        not available()
        or ENV_VAR in environ
        or environ.get("SLURM_JOB_ID")
        or not getattr(workflow, "is_main_process", False)
        or os.path.exists(cold_marker)
    ):
        return False
    environ[ENV_VAR] = setting(os.getcwd(), os.getpid(), wait=True)
    _remove_stale_locks(os.getcwd())
    server = spawn(_settings(environ), dict(environ, **dict.fromkeys(ONE_THREAD, "1")))
    if server is not None:
        _early.append(server)
    return server is not None


def _stop_early() -> None:
    while _early:
        server = _early.pop()
        try:
            server.terminate()
        except OSError:
            pass


def enable(workflow, environ=None) -> bool:
    """Set :data:`ENV_VAR` for the jobs of a local run (Snakemake's ``onstart``); a run that
    submits its jobs elsewhere (SLURM), or a platform without the server, leaves it unset (and
    stops a server started early). A server started early (:func:`start_early`) keeps its
    setting."""
    environ = os.environ if environ is None else environ
    plugin = getattr(workflow, "executor_plugin", None)
    if getattr(plugin, "name", "local") not in ("local", "dryrun") or not available():
        environ.pop(ENV_VAR, None)
        _stop_early()
        return False
    if _early:
        return True
    try:  # the jobs this run executes (len(dag) also counts those whose outputs are complete)
        jobs = sum(1 for _ in workflow.dag.needrun_jobs())
    except (AttributeError, TypeError):
        jobs = 0
    environ[ENV_VAR] = setting(os.getcwd(), os.getpid(), wait=jobs >= WAIT_FROM_JOBS)
    _remove_stale_locks(os.getcwd())
    return True


def _remove_stale_locks(workdir: str) -> None:
    """Remove the start marks of servers of earlier runs whose Snakemake has ended."""
    folder = os.path.join(workdir, ".snakemake", "nqp_resilience")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        stem, _, pid = name.partition(".")
        pid = pid.removesuffix(".log")
        if stem != "job_server" or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass
        except OSError:
            pass


def _settings(environ) -> dict | None:
    raw = environ.get(ENV_VAR)
    if not raw or environ.get("SLURM_JOB_ID") or not sys.platform.startswith("linux"):
        return None
    fields = raw.split(":", 3)
    if len(fields) != 4:
        return None
    owner, digest, mode, workdir = fields
    if (
        not owner.isdigit()
        or len(digest) != 16
        or mode not in ("wait", "-")
        or not workdir.startswith("/")
    ):
        return None
    wait = mode == "wait"
    return {"workdir": workdir, "owner": int(owner), "digest": digest, "wait": wait, "raw": raw}


# ---------------------------------------------------------------------------------------------
# client


def submit(argv: list[str], environ=None) -> int | None:
    """Run the job ``argv`` (``[function, log, payload]``) on the run's server and return its
    exit status, or None when the caller must run it itself (no server, declined, or ended)."""
    environ = os.environ if environ is None else environ
    settings = _settings(environ)
    if settings is None:
        return None
    import _socket

    name = _address(settings["digest"], settings["owner"])
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(name)
    except OSError:
        sock.close()
        spawn(settings, environ)
        if not settings["wait"]:
            return None
        sock = _connect_when_listening(name)
        if sock is None:
            return None
    try:
        request = encode_request(argv, os.getcwd(), environ, sys.executable)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sent = sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sent < len(request):
            sock.sendall(request[sent:])
        reply = _recv_exactly(sock, _REPLY_SIZE)
    except OSError:
        reply = b""
    finally:
        sock.close()
    if reply[:1] == _DECLINED or len(reply) < _REPLY_SIZE:
        if reply[:1] != _DECLINED:
            print("note: the job server ended during this job; running it here", file=sys.stderr)
        return None
    return int.from_bytes(reply[1:], "big", signed=True)


def _connect_when_listening(name: str):
    """A socket connected to the starting server ``name`` once it listens (it does so before it
    imports anything), or None after :data:`WAIT_FOR_LISTENING` seconds."""
    import _socket
    import time

    deadline = time.monotonic() + WAIT_FOR_LISTENING
    while time.monotonic() < deadline:
        time.sleep(0.01)
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(name)
            return sock
        except OSError:
            sock.close()
    return None


def _recv_exactly(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _lock_path(settings: dict) -> str:
    return os.path.join(
        settings["workdir"], ".snakemake", "nqp_resilience", f"job_server.{settings['owner']}"
    )


def spawn(settings: dict, environ):
    """Start the run's server in the background unless another job already has; the server
    inherits this job's environment, which is what it then serves. Returns its process (None
    if another job started it)."""
    lock = _lock_path(settings)
    try:
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except OSError:
        return None
    import subprocess

    with open(lock, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "nqp_resilience.job_server", settings["raw"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=dict(environ),
            cwd="/",
            start_new_session=True,
            close_fds=True,
        )


# ---------------------------------------------------------------------------------------------
# server


def _package_files() -> dict[str, int]:
    """{source file: mtime_ns} of every module of the package imported so far."""
    stamps = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "nqp_resilience" or name.startswith("nqp_resilience.")):
            try:
                stamps[path] = os.stat(path).st_mtime_ns
            except OSError:
                stamps[path] = -1
    return stamps


def _unchanged(stamps: dict[str, int]) -> bool:
    for path, mtime in stamps.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def preload_order() -> list[str]:
    """What the server imports after :data:`PRELOAD_FIRST`, in order: :data:`PRELOAD`, every
    module of the package, and the compiled kernels (``module:function`` calls the function)."""
    import pkgutil

    import nqp_resilience

    package = [
        info.name
        for info in pkgutil.walk_packages(nqp_resilience.__path__, "nqp_resilience.")
        if info.name not in ("nqp_resilience.job_server", "nqp_resilience.debug")
    ]
    return [*PRELOAD, *package, "nqp_resilience.scipy_kernels:special"]


def preload(name: str) -> None:
    """Import the module ``name`` (``module:function``: and call the function), if it can be."""
    import importlib

    module, _, function = name.partition(":")
    try:
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()
    except ImportError:
        pass


def _compatible(request: dict, environ: dict) -> bool:
    if request.get("executable") != sys.executable:
        return False
    env = request.get("env") or {}
    keys = (set(env) | set(environ)) - PER_JOB_VARIABLES
    return all(env.get(k) == environ.get(k) for k in keys)


class Server:
    """The server loop: accepts jobs, forks a worker per job, reports each exit status."""

    def __init__(self, settings: dict, environ: dict, listener=None):
        import selectors

        self.settings = settings
        self.environ = environ
        self.stamps = _package_files()
        self.listener = listener if listener is not None else listen(settings)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, ("accept", None))
        # Snakemake's end wakes the loop at once (else the loop notices it within 0.5 s)
        try:
            self.owner_fd = os.pidfd_open(settings["owner"])
            self.selector.register(self.owner_fd, selectors.EVENT_READ, ("owner", None))
        except OSError:
            self.owner_fd = None
        self.workers = {}  # pid -> (pidfd, conn, function, start time)
        self.serving = True
        self.pending = []  # modules still to import: one after each round of events

    def owner_alive(self) -> bool:
        """Whether Snakemake still runs: its process exists and is not a zombie (a Snakemake
        that has ended but whose parent has not collected it yet)."""
        owner = self.settings["owner"]
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:
            with open(f"/proc/{owner}/stat", "rb") as fh:
                state = fh.read().rpartition(b")")[2].split()[:1]
        except OSError:
            return True
        return state != [b"Z"]

    def run(self) -> None:
        import gc

        gc.freeze()
        while self.serving or self.workers:
            for key, _ in self.selector.select(timeout=0 if self.pending else 0.5):
                kind, pid = key.data
                if kind == "accept":
                    self.accept()
                elif kind == "owner":
                    self.selector.unregister(self.owner_fd)
                    os.close(self.owner_fd)
                    self.owner_fd = None
                elif pid not in self.workers:
                    continue  # reaped earlier in this round (its client also closed)
                elif kind == "exit":
                    self.reap(pid)
                else:  # the client of a running worker closed its end: it was cancelled
                    self.cancel(pid)
            if self.pending and self.serving:
                self.preload_next()
            if self.serving and not self.owner_alive():
                self.stop()
            if not self.serving and not self.owner_alive():
                for pid in list(self.workers):
                    self.cancel(pid)
        self.selector.close()

    def preload_next(self) -> None:
        """Import the next pending module; the package files it brings are stamped as they are
        now (a file changed since it was first imported keeps its first stamp: a change shows)."""
        import gc

        preload(self.pending.pop(0))
        for path, mtime in _package_files().items():
            self.stamps.setdefault(path, mtime)
        gc.freeze()  # the new objects too: the workers share their pages

    def stop(self) -> None:
        if self.serving:
            self.serving = False
            self.selector.unregister(self.listener)
            self.listener.close()
            # the start mark (this server's output) becomes its log: a next server may start
            lock = _lock_path(self.settings)
            try:
                os.replace(lock, lock + ".log")
            except OSError:
                pass

    def accept(self) -> None:
        import socket

        conn, _ = self.listener.accept()
        fds = []
        try:
            conn.settimeout(10)
            data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
            while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
                chunk = conn.recv(1 << 16)
                if not chunk:
                    raise OSError("short request")
                data += chunk
            request = decode_request(data[4:])
            if len(fds) != 3 or not _compatible(request, self.environ):
                conn.sendall(_DECLINED + bytes(_REPLY_SIZE - 1))
                raise OSError("declined")
            if not _unchanged(self.stamps):
                conn.sendall(_DECLINED + bytes(_REPLY_SIZE - 1))
                self.stop()
                raise OSError("the package changed")
        except (OSError, ValueError):
            for fd in fds:
                os.close(fd)
            conn.close()
            return
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._worker(request, fds, conn)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        import selectors
        import time

        pidfd = os.pidfd_open(pid)
        self.workers[pid] = (pidfd, conn, request["argv"][0], time.monotonic())
        self.selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
        self.selector.register(conn, selectors.EVENT_READ, ("client", pid))

    def _worker(self, request: dict, fds: list[int], conn) -> None:
        code = 1
        try:
            import signal

            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            self.selector.close()
            self.listener.close()
            for pidfd, other, *_ in self.workers.values():
                os.close(pidfd)
                other.close()
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
                os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            from nqp_resilience.shell_job import run_function

            sys.argv = ["nqp_resilience.shell_job", *request["argv"]]
            run_function(*request["argv"])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def reap(self, pid: int) -> None:
        """Report the exit status of the worker ``pid`` to its client, and log the job."""
        import time

        pidfd, conn, function, start = self.workers.pop(pid)
        self.selector.unregister(pidfd)
        if conn.fileno() in self.selector.get_map():
            self.selector.unregister(conn)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        print(
            f"{function}\texit {code}\t{time.monotonic() - start:.3f} s\t"
            f"peak RSS {usage.ru_maxrss / 1024:.0f} MB",
            flush=True,
        )
        try:
            conn.sendall(_EXITED + code.to_bytes(4, "big", signed=True))
        except OSError:
            pass
        conn.close()

    def cancel(self, pid: int) -> None:
        """Kill the worker ``pid`` and its process group (its client is gone)."""
        import signal

        conn = self.workers[pid][1]
        if conn.fileno() in self.selector.get_map():
            self.selector.unregister(conn)
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass


def listen(settings: dict):
    """The server's listening socket (OSError if another server of the run has it)."""
    import socket

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(_address(settings["digest"], settings["owner"]))
        listener.listen(128)
    except OSError:
        listener.close()
        raise
    return listener


def main(argv=None) -> None:
    settings = _settings({ENV_VAR: (sys.argv[1:] if argv is None else argv)[0]})
    if settings is None:
        raise SystemExit("usage: python -m nqp_resilience.job_server SETTINGS")
    environ = dict(os.environ)
    listener = None
    try:
        if settings["wait"]:  # jobs wait in the backlog while it imports
            listener = listen(settings)
        for name in PRELOAD_FIRST:
            preload(name)
        server = Server(settings, environ, listener)
    except OSError:  # another server of this run is already listening
        return
    server.pending = preload_order()
    server.run()


if __name__ == "__main__":
    main()
