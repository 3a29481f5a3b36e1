"""Run one job function from a ``shell:`` rule, without Snakemake's script preamble.

A ``script:`` job starts by unpickling the ``snakemake`` object, which imports Snakemake itself in
the job (about 0.04 s, a third of a specification job). The rules with many short jobs (one per
spec) run instead::

    python -m nqp_resilience.shell_job MODULE:FUNCTION LOG PAYLOAD

where ``PAYLOAD`` is the rule's ``params.job``, the JSON text :func:`job_payload` makes of the
job's input, output, params, wildcards and threads. The function receives an object with the
attributes it would get from Snakemake (``smk.input.panel``, ``smk.output[0]``,
``smk.output.estimates``, ``smk.params.spec``, ``smk.log``), and runs under
:func:`nqp_resilience.runner.run` as a script job does (log file, user errors as messages, exit
status). The params are config values, so a JSON round trip keeps them (lists for tuples).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace


class Files(list):
    """The paths of a job, in order, with the named ones also as attributes (a named entry is a
    path or a list of paths), as Snakemake's input and output lists."""

    def __init__(self, items=(), names=None):
        super().__init__(items)
        self._names = dict(names or {})

    def __getattr__(self, name):
        try:
            return self.__dict__["_names"][name]
        except KeyError:
            raise AttributeError(name) from None


def _files(named) -> dict:
    return {"items": [str(p) for p in named], "names": dict(named.items())}


def job_payload(wildcards, input, output, threads, params: dict) -> str:
    """The ``params.job`` of a shell job: its input, output, wildcards, threads and ``params``
    (JSON-able values) as JSON text. Called by a rule's param function with Snakemake's
    ``wildcards``, ``input``, ``output`` and ``threads``."""
    return json.dumps(
        {
            "input": _files(input),
            "output": _files(output),
            "wildcards": dict(wildcards.items()),
            "threads": threads,
            "params": params,
        },
        ensure_ascii=False,
    )


def job_object(log: str, payload: str) -> SimpleNamespace:
    """What the job function receives: ``input``, ``output``, ``log``, ``params``, ``wildcards``
    and ``threads``, from a payload of :func:`job_payload`."""
    data = json.loads(payload)
    return SimpleNamespace(
        input=Files(data["input"]["items"], data["input"]["names"]),
        output=Files(data["output"]["items"], data["output"]["names"]),
        log=Files([log] if log else []),
        params=SimpleNamespace(**data["params"]),
        wildcards=SimpleNamespace(**data["wildcards"]),
        threads=data["threads"],
    )


def main(argv=None) -> None:
    import importlib

    from nqp_resilience.runner import run

    function, log, payload = sys.argv[1:] if argv is None else argv
    module, _, name = function.partition(":")
    job = getattr(importlib.import_module(module), name)
    run(job, job_object(log, payload), own_process=True)


if __name__ == "__main__":
    main()
