"""Run one rule's job in a Python session, outside Snakemake, for debugging.

:func:`mock_snakemake` builds the ``snakemake`` object a rule's script receives (input, output,
params, wildcards, threads, resources, log, config, rule name) from the real workflow, as
PyPSA-Eur's helper of the same name does. The job functions of the ``jobs`` modules take that
object, so a job can be stepped through in a debugger or an interactive session::

    from nqp_resilience.debug import mock_snakemake
    from nqp_resilience.estimation.jobs import estimate_spec_job

    smk = mock_snakemake("ols_fe", spec="baseline")
    estimate_spec_job(smk)          # writes results/estimates/baseline.json

The workflow is read exactly as ``snakemake`` reads it (``config.yaml``, the config schema, the
raw-file and spec checks), so a configuration error stops here with the same message. Only the
one job is built: its inputs must already exist (run ``snakemake <input file>`` first), and
nothing is recorded in ``.snakemake/`` (the next ``snakemake`` run does not know the job ran).
Paths of the configuration (``raw_dir``, ``results_dir``) stay relative to the workflow folder,
as in a Snakemake job, so run the job from there. Snakemake is imported only when the
function is called.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["mock_snakemake", "workflow_root"]


def workflow_root(start: str | os.PathLike | None = None) -> Path:
    """The folder of the workflow: ``start`` (default: the current folder) or its nearest parent
    that holds a ``Snakefile``, else the source checkout this package was installed from.

    Raises
    ------
    FileNotFoundError
        If neither holds a ``Snakefile``.
    """
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "Snakefile").is_file():
            return folder
    # an editable install: src/nqp_resilience/debug.py -> the checkout
    checkout = Path(__file__).resolve().parents[2]
    if start is None and (checkout / "Snakefile").is_file():
        return checkout
    raise FileNotFoundError(
        f"no Snakefile in {here} or any folder above it; pass root= the folder of the workflow"
    )


def mock_snakemake(
    rule: str,
    root: str | os.PathLike | None = None,
    *,
    configfiles: Sequence[str | os.PathLike] = (),
    config: Mapping | None = None,
    **wildcards: str,
):
    """The ``snakemake`` object of one job of ``rule``, built from the real workflow.

    Parameters
    ----------
    rule : str
        Name of the rule, e.g. ``"ols_fe"``, ``"ingest_yearbook"``.
    root : path, optional
        Folder of the workflow (the one with the ``Snakefile``); default: see
        :func:`workflow_root`. The workflow is parsed with this folder as working directory,
        which is restored afterwards.
    configfiles : sequence of paths, optional
        Extra config files, as ``snakemake --configfile`` (relative to the current folder).
    config : mapping, optional
        Config overrides, as ``snakemake --config`` (merged key by key into ``config.yaml``).
        ``job_server`` is always false: the workflow is read in this process, which starts no
        job server.
    **wildcards : str
        The job's wildcards, e.g. ``spec="baseline"`` or ``year="2015"`` (values as strings
        or numbers; numbers are converted to strings, as in a file name).

    Returns
    -------
    snakemake.iocontainers.Snakemake
        With ``input``, ``output``, ``log`` as absolute paths (so the job may run from any
        folder), and ``params``, ``wildcards``, ``threads``, ``resources``, ``config``,
        ``rule``. The folders of the outputs and logs are created, as Snakemake does.

    Raises
    ------
    nqp_resilience.errors.ConfigError
        If the workflow stops while it is read (a configuration or raw-file error; its own
        message is printed first), has no rule of that name, or the wildcards given are not
        the rule's or not allowed by its wildcard constraints.
    FileNotFoundError
        If no workflow folder is found (see :func:`workflow_root`).
    """
    from snakemake.api import SnakemakeApi
    from snakemake.dag import DAG
    from snakemake.iocontainers import Snakemake
    from snakemake.jobs import Job
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
    )

    from nqp_resilience.errors import ConfigError, suggest

    folder = workflow_root(root)
    # job_server: false, so that reading the workflow in this process starts no job server
    # (a cold workflow folder would start one while the workflow is read)
    config_settings = ConfigSettings(
        config={**dict(config or {}), "job_server": False},
        configfiles=[Path(f).absolute() for f in configfiles],
    )
    # the API changes into the workflow folder and back again when its context ends
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=config_settings,
            snakefile=folder / "Snakefile",
            workdir=folder,
        )
        try:
            workflow_api.dag(DAGSettings())  # parses the Snakefile and sets its DAG settings
        except SystemExit as exc:
            # a user error while the workflow is read: its message is already on stderr
            raise ConfigError(
                str(folder / "Snakefile"),
                "the workflow stopped while it was read (the message above says why)",
                source="mock_snakemake",
                kind="workflow",
            ) from exc
        workflow = workflow_api._workflow  # the parsed workflow: the API has no public accessor
        if not workflow.is_rule(rule):
            names = sorted(r.name for r in workflow.rules)
            close = suggest(rule, names, n=1)
            raise ConfigError(
                rule,
                "the workflow has no rule of this name",
                source="mock_snakemake",
                kind="rule",
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + "rules: "
                + ", ".join(names),
            )
        rule_obj = workflow.get_rule(rule)
        expected = sorted(rule_obj.wildcard_names)
        given = {k: str(v) for k, v in wildcards.items()}
        if sorted(given) != expected:
            raise ConfigError(
                rule,
                f"wildcards given: {', '.join(sorted(given)) or 'none'}",
                source="mock_snakemake",
                kind="rule",
                hint=f"this rule's wildcards: {', '.join(expected) or 'none'}",
            )
        job = Job(rule_obj, DAG(workflow, rules=[rule_obj]), wildcards_dict=given)
        # the wildcard constraints (e.g. ols_fe takes only the ids of OLS specs)
        if not all(rule_obj.is_producer(f) for f in job.output):
            raise ConfigError(
                rule,
                f"wildcards {given} do not match the rule's outputs "
                f"{[str(o) for o in rule_obj.output]}",
                source="mock_snakemake",
                kind="rule",
                hint="give values the pattern's wildcard constraints "
                "allow (after the comma inside the braces)",
            )
        smk = Snakemake(
            job.input,
            job.output,
            _job_params(job.params),
            job.wildcards,
            job.threads,
            job.resources,
            job.log,
            workflow.config,
            rule,
            None,
            str(folder / "scripts"),
        )
    # absolute paths, so that the job may be run from any working directory
    smk.input = _absolute(smk.input, folder)
    smk.output = _absolute(smk.output, folder)
    smk.log = _absolute(smk.log, folder)
    for path in [*smk.output, *smk.log]:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return smk


def _job_params(params):
    """The params a job function reads: a shell job (every Python rule of the workflow) has the
    params ``job`` and ``files``, JSON texts (nqp_resilience.shell_job); the function reads the
    ``params`` of ``job`` as ``smk.params.<name>``."""
    if sorted(params.keys()) != ["files", "job"]:
        return params
    import json

    from snakemake.iocontainers import Params

    return Params(fromdict=json.loads(params.job)["params"])


def _absolute(files, folder: Path):
    """A copy of a Snakemake named list of paths (names kept) with each path made absolute
    against ``folder``."""
    return files.__class__(toclone=files, custom_map=lambda f: str(folder / f))
