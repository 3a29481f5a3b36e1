"""Runs one Snakemake job: logging into the rule's log file, user errors as messages.

Each ``scripts/<stage>/<rule>.py`` calls :func:`run` with the ``*_job`` function of its stage's
``jobs`` module. A user error (:class:`~nqp_resilience.errors.ProjectError`) is written to the
job's log and to stderr as a readable message and ends the job with exit status 1; any other
exception is a bug and its traceback is written to the log. :func:`stop_on_user_error` does the
same for the checks Snakemake runs while it reads the workflow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from nqp_resilience.errors import ProjectError

log = logging.getLogger("nqp_resilience")


def run(job, smk, *, own_process: bool = False) -> None:
    """Run ``job(smk)`` with logging routed to the rule's log file and to stderr.

    Levels: the package's own loggers (``nqp_resilience.*``) from INFO, every other logger from
    WARNING (matplotlib's PDF backend would otherwise add one fontTools INFO line per font it
    subsets). A user error (:class:`~nqp_resilience.errors.ProjectError`) is logged as its
    message and hint only; any other exception is a bug and is logged with its full traceback,
    so that it reaches the job's log and not only the console. Either ends the job with exit
    status 1.

    In the process of a Snakemake ``script:`` job (``smk`` is the object Snakemake injects) or of
    a shell job (``own_process``, :mod:`nqp_resilience.shell_job`), the job ends there: logs and
    standard streams are flushed and the process exits without the interpreter's teardown of its
    modules, which costs 0.04–0.1 s after numpy and pyarrow and more after matplotlib. Every
    output is complete by then (written atomically and closed).
    """
    handlers = [logging.StreamHandler(sys.stderr)]
    if smk is not None and len(smk.log):
        Path(smk.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(smk.log[0], mode="w", encoding="utf-8"))
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    log.setLevel(logging.INFO)
    try:
        job(smk)
    except ProjectError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        _exit(handlers)
    except Exception as exc:
        log.critical(
            "unexpected %s (a bug in the workflow, "
            "not a problem of the data or the configuration); "
            "traceback:",
            type(exc).__name__,
            exc_info=True,
        )
        _exit(handlers)
    if own_process or _injected_by_snakemake(smk):
        _end_process(0)


@contextlib.contextmanager
def stop_on_user_error():
    """Checks run while Snakemake reads the workflow (config, raw files, specs): a user error
    prints its message and hint and ends Snakemake with exit status 1, without the traceback
    Snakemake would otherwise append; a bug keeps its traceback."""
    try:
        yield
    except ProjectError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)


def _exit(handlers) -> None:
    for h in handlers:
        h.flush()
    sys.exit(1)


def _injected_by_snakemake(smk) -> bool:
    """True for the object of Snakemake's script preamble: the process is the job's own."""
    containers = sys.modules.get("snakemake.iocontainers")
    injected = getattr(containers, "Snakemake", None)
    return isinstance(injected, type) and isinstance(smk, injected)


def _end_process(code: int) -> None:
    """Flush and close the logs and the standard streams, then leave at once (``os._exit``)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _years(smk) -> tuple[int, int]:
    return int(smk.params.years[0]), int(smk.params.years[1])


def plain_params_check() -> bool:
    """Let Snakemake compare rule params without importing pandas.

    To decide whether a job must rerun because its params changed, Snakemake 9 serialises each
    param, and when pandas is installed it imports pandas first (about half a second, on every
    run, dry and no-op runs included) to see whether the value is a DataFrame. The params of
    this workflow are plain values (numbers, strings, lists and mappings of the config), which
    Snakemake's own serialiser for builtin types writes exactly as the pandas-aware one does, so
    the recorded params and the rerun decisions are the same. Returns False, and changes
    nothing, on a Snakemake without that serialiser.
    """
    try:
        from snakemake.persistence import PersistenceBase as persistence
    except ImportError:
        return False
    if not hasattr(persistence, "_serialize_param_builtin") or not isinstance(
        persistence.__dict__.get("_serialize_param"), property
    ):
        return False
    persistence._serialize_param = property(lambda self: self._serialize_param_builtin)
    return True
