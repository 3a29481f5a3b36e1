"""Run one job function from a ``shell:`` rule, without Snakemake's script preamble.

A ``script:`` job starts by unpickling the ``snakemake`` object, which imports Snakemake itself in
the job (about 0.04 s, a third of a specification job). Every Python rule of the workflow runs
its thin script instead, as a shell command::

    python scripts/<stage>/<rule>.py LOG PAYLOAD FILES      # main(function="module:name")
    python -m nqp_resilience.shell_job MODULE:FUNCTION LOG PAYLOAD FILES

where ``PAYLOAD`` is the rule's ``params.job``, the JSON text :func:`settings_payload` makes of
the job's params and wildcards, and ``FILES`` its ``params.files``, the JSON text
:func:`files_payload` makes of its input, output and threads (two params, since Snakemake
compares a param function's value only when it does not take the input, output or threads).
The function receives an object with the attributes it would get from Snakemake
(``smk.input.panel``, ``smk.output[0]``, ``smk.output.estimates``, ``smk.params.spec``,
``smk.log``), and runs under :func:`nqp_resilience.runner.run` as a script job does (log file,
user errors as messages, exit status). The params are config values, so a JSON round trip
keeps them (lists for tuples). In a local run the job goes to the run's job server
(:mod:`nqp_resilience.job_server`), which runs the same function in a process forked with the
libraries already imported.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself takes longer to import than the rest of a job's client
if TYPE_CHECKING:
    from types import SimpleNamespace

# the top imports stay minimal: a job that its run's job server takes (most) imports this module
# only to hand its arguments over; json and types are imported where they are used


class Files(list):
    """The paths of a job, in order, with the named ones also as attributes (a named entry is a
    path or a list of paths), as Snakemake's input and output lists. A name wins over a list
    method of the same name (``smk.output.index``), as in Snakemake's lists."""

    def __init__(self, items=(), names=None):
        super().__init__(items)
        self.__dict__.update(names or {})


def _files(named) -> dict:
    return {"items": [str(p) for p in named], "names": dict(named.items())}


def _settings(wildcards, params: dict) -> dict:
    return {"wildcards": dict(wildcards.items()), "params": params}


def _file_lists(input, output, threads) -> dict:
    return {"input": _files(input), "output": _files(output), "threads": threads}


def settings_payload(wildcards, params: dict) -> str:
    """The ``params.job`` of a shell job: its wildcards and ``params`` (JSON-able values) as
    JSON text. A param of the wildcards only, so that Snakemake records it and reruns the job
    when it changes (a param function that takes the input, output or threads is one Snakemake
    does not compare)."""
    import json

    return json.dumps(_settings(wildcards, params), ensure_ascii=False)


def files_payload(input, output, threads) -> str:
    """The ``params.files`` of a shell job: its input and output paths and its threads as JSON
    text, from Snakemake's ``input``, ``output`` and ``threads``."""
    import json

    return json.dumps(_file_lists(input, output, threads), ensure_ascii=False)


def job_payload(wildcards, input, output, threads, params: dict) -> str:
    """Both payloads in one JSON text (:func:`job_object` takes either form)."""
    import json

    data = _settings(wildcards, params) | _file_lists(input, output, threads)
    return json.dumps(data, ensure_ascii=False)


def job_object(log: str, payload: str, files: str | None = None) -> SimpleNamespace:
    """What the job function receives: ``input``, ``output``, ``log``, ``params``, ``wildcards``
    and ``threads``, from a payload of :func:`settings_payload` and one of :func:`files_payload`
    (or one of :func:`job_payload`)."""
    import json
    from types import SimpleNamespace

    data = json.loads(payload)
    if files is not None:
        data.update(json.loads(files))
    return SimpleNamespace(
        input=Files(data["input"]["items"], data["input"]["names"]),
        output=Files(data["output"]["items"], data["output"]["names"]),
        log=Files([log] if log else []),
        params=SimpleNamespace(**data["params"]),
        wildcards=SimpleNamespace(**data["wildcards"]),
        threads=data["threads"],
    )


#: the environment variable that names the Python of the shell jobs (``python`` if unset)
PYTHON_VARIABLE = "NQP_PYTHON"


def set_shell_job_python(uses_conda: bool, environ=None) -> None:
    """Name the Python of the workflow's shell jobs in :data:`PYTHON_VARIABLE`: the one running
    Snakemake, as for script jobs, or none with ``--use-conda`` (``python`` on the activated
    environment's PATH). An environment variable rather than a path in the command, so that the
    command text, which Snakemake compares to decide on reruns, is the same wherever Python is
    installed (another virtual environment, a cluster's nodes)."""
    environ = os.environ if environ is None else environ
    if uses_conda:
        environ.pop(PYTHON_VARIABLE, None)
    else:
        environ[PYTHON_VARIABLE] = sys.executable


def run_function(function: str, log: str, payload: str, files: str | None = None) -> None:
    """Run the job function ``function`` ("module:name") on the payloads of a shell job under
    :func:`nqp_resilience.runner.run`; the process ends there."""
    import importlib

    from nqp_resilience.runner import run

    module, _, name = function.partition(":")
    job = getattr(importlib.import_module(module), name)
    run(job, job_object(log, payload, files), own_process=True)


def main(argv=None, function: str | None = None) -> None:
    """The shell job ``[FUNCTION] LOG PAYLOAD [FILES]`` (a rule's script gives ``function``): on
    the run's job server when there is one (:mod:`nqp_resilience.job_server`), otherwise in this
    process."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if function is not None:
        argv.insert(0, function)
    if len(argv) not in (3, 4):
        raise SystemExit(
            "usage: python -m nqp_resilience.shell_job MODULE:FUNCTION LOG PAYLOAD [FILES]"
        )
    from nqp_resilience import job_server

    code = job_server.submit(argv)
    if code is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    run_function(*argv)


if __name__ == "__main__":
    main()
