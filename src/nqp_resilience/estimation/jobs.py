"""Snakemake jobs of the estimation stage (rules in ``rules/estimation.smk``): one spec -> its
estimate JSON, and the spec-sample audit."""

from __future__ import annotations

import logging

log = logging.getLogger("nqp_resilience")


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def software_versions(packages=("numpy", "scipy", "pyarrow", "nqp-resilience")) -> dict:
    """Versions of the packages an estimate depends on (cheap: package metadata only, see
    :func:`nqp_resilience.data.io.installed_version`)."""
    import platform

    from nqp_resilience.data.io import installed_version

    return {"python": platform.python_version(), **{p: installed_version(p) for p in packages}}


def estimate_spec_job(smk) -> None:
    """Rules ``describe``, ``ols_fe``, ``iv_fe``, ``psm_fe``: one spec -> its estimate record,
    ``results/estimates/{spec}.json``.

    Reads only the columns the spec needs, without pandas, so the job costs little more than
    the interpreter start (see benchmarks/spec_jobs.py). The record is an
    :class:`~nqp_resilience.estimation.record.EstimateRecord`, checked against
    ``schemas/estimate.schema.yaml`` before it is written.
    """
    from nqp_resilience.data.parquet import read_columns
    from nqp_resilience.estimation.specs import spec_columns

    spec = dict(smk.params.spec)
    controls = list(smk.params.control_variables)
    data = read_columns(smk.input.panel, spec_columns(spec, controls))
    _write_estimate(
        spec, data, controls, smk.params.singletons, _sha256(smk.input.panel), smk.output.estimate
    )


def estimate_batch_job(smk) -> None:
    """The batch rules of ``estimation.batch_size`` > 1: several specs of one estimator in one
    process, the panel read once (the columns of all of them), each estimate written to its own
    file exactly as :func:`estimate_spec_job` writes it (each spec sees only its own columns)."""
    from nqp_resilience.data.parquet import read_columns
    from nqp_resilience.estimation.specs import spec_columns

    specs = [dict(spec) for spec in smk.params.specs]
    controls = list(smk.params.control_variables)
    needed = list(dict.fromkeys(c for spec in specs for c in spec_columns(spec, controls)))
    data = read_columns(smk.input.panel, needed)
    panel_sha = _sha256(smk.input.panel)
    outputs = list(smk.output.estimates)
    if len(outputs) != len(specs):
        raise ValueError(f"{len(specs)} specs but {len(outputs)} output files")
    for spec, path in zip(specs, outputs, strict=True):
        own = {c: data[c] for c in spec_columns(spec, controls)}
        _write_estimate(spec, own, controls, smk.params.singletons, panel_sha, path)


def _write_estimate(spec, data, controls, singletons, panel_sha: str, path) -> None:
    from nqp_resilience.estimation.record import EstimateRecord, write_estimate
    from nqp_resilience.estimation.specs import estimate

    result = estimate(spec, data, controls, singletons=singletons)
    record = EstimateRecord.from_dict(
        {**result, "software": software_versions(), "inputs": {"analysis_panel": panel_sha}},
        source=path,
    )
    write_estimate(record, path)
    log.info("%s: coef %s, se %s, N %s", record.spec, record.coef, record.se, record.nobs)


def spec_samples_job(smk) -> None:
    """Rule ``spec_samples``: the observations every spec uses and loses, and the cities absent
    from a static file -> results/audit/spec_samples.{md,csv}."""
    import pandas as pd

    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.io import write_csv, write_text
    from nqp_resilience.estimation.samples import spec_samples, spec_samples_markdown

    codebook = Codebook(smk.input.codebook)
    static_files = {
        var: path
        for source, path in dict(smk.params.static_files).items()
        for var in codebook[source].variables
    }
    specs = {spec["id"]: dict(spec) for spec in smk.params.specs}
    summary, lost, absent = spec_samples(
        pd.read_parquet(smk.input.analysis),
        pd.read_parquet(smk.input.panel),
        specs,
        list(smk.params.control_variables),
        static_files,
    )
    for (code, name, path), _ in absent.groupby(
        ["city_code", "city_name", "static_file"], sort=True
    ):
        gone = lost[(lost["city_code"] == code) & (lost["city_rows_lost"] == lost["city_rows"])]
        hit = list(dict.fromkeys(gone["spec"]))
        log.warning(
            "city %s %s is absent from %s: specs %s run without it (see %s)",
            code,
            name,
            path,
            ", ".join(hit) or "none",
            smk.output.report,
        )
    write_csv(lost, smk.output.table)
    write_text(smk.output.report, spec_samples_markdown(summary, lost, absent))


#: Test-only switch (the cluster tests inject failures with it): ``{spec}/{k}:always`` makes
#: that shard job fail every time; ``{spec}/{k}:once:{marker file}`` makes it fail once, when
#: the marker file does not exist yet (the failure creates it), so that a retry succeeds.
FAIL_SWITCH = "NQP_TEST_FAIL_SHARD"


def injected_failure(spec_id: str, k: int, environ=None) -> None:
    """Raise the failure the test-only switch :data:`FAIL_SWITCH` asks for, if any."""
    import os

    from nqp_resilience.errors import EstimationError

    value = (os.environ if environ is None else environ).get(FAIL_SWITCH, "")
    target, _, mode = value.partition(":")
    if not value or target != f"{spec_id}/{k}":
        return
    if mode.startswith("once:"):
        marker = mode[len("once:") :]
        if os.path.exists(marker):
            return
        with open(marker, "w", encoding="utf-8") as fh:
            fh.write("failed once\n")
    elif mode != "always":
        return
    raise EstimationError(
        f"injected failure of bootstrap shard {spec_id}/{k} ({FAIL_SWITCH}={value})",
        hint=f"a test switch: unset {FAIL_SWITCH} for a normal run",
    )


def source_hash() -> str:
    """SHA-256 of the package's Python sources (part of a kept shard's fingerprint, so that a
    change of the code computes the shards again)."""
    import hashlib
    from pathlib import Path

    import nqp_resilience

    root = Path(nqp_resilience.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _bootstrap_problem(smk, k: int):
    """The spec, its draw options and its bootstrap problem, set up from the analysis panel
    (the shard job, and the reduce job when it draws every draw itself)."""
    injected_failure(str(smk.wildcards.spec), k)
    from nqp_resilience.data.parquet import read_columns
    from nqp_resilience.estimation.bootstrap_shards import bootstrap_columns, spec_problem

    spec = dict(smk.params.spec)
    controls = list(smk.params.control_variables)
    draws = dict(smk.params.draws)
    data = read_columns(smk.input.panel, bootstrap_columns(spec, controls, draws.get("cluster")))
    problem = spec_problem(spec, data, controls, draws, singletons=smk.params.singletons)
    return spec, controls, draws, problem


def _bootstrap_provenance(smk) -> dict:
    """The software versions and the input hash a bootstrap record carries."""
    return {
        "software": software_versions(),
        "inputs": {"analysis_panel": _sha256(smk.input.panel)},
    }


def bootstrap_shard_job(smk) -> None:
    """Rule ``bootstrap_shard``: shard {k} of the wild bootstrap of spec {spec} ->
    ``results/bootstrap/{spec}/shard_{k}.parquet`` (see
    :mod:`nqp_resilience.estimation.bootstrap_shards`). A shard completed before with the same
    fingerprint (kept at ``params.completed``) is linked into place, not computed again."""
    from nqp_resilience.estimation.bootstrap_shards import write_shard

    k, shards = int(smk.wildcards.k), int(smk.params.shards)
    spec, controls, draws, problem = _bootstrap_problem(smk, k)
    identity = {
        "spec": spec,
        "control_variables": controls,
        "draws": draws,
        "singletons": smk.params.singletons,
        "code": source_hash(),
    }
    n, restored = write_shard(
        smk.output.shard,
        problem,
        spec,
        draws,
        k,
        shards,
        completed=smk.params.completed,
        identity=identity,
        **_bootstrap_provenance(smk),
    )
    how = f"restored from {smk.params.completed}, not recomputed" if restored else "computed"
    log.info("%s: shard %d of %d, %d of %d draws, %s", spec["id"], k, shards, n, problem.B, how)


def bootstrap_reduce_job(smk) -> None:
    """Rule ``bootstrap_reduce``: every shard of spec {spec} -> the p-value and the inverted
    confidence interval, ``results/bootstrap/{spec}.json``. With one shard per spec
    (``bootstrap.shards: 1``) the job has the analysis panel as input instead of shard files
    and draws every draw itself: the same record, one job instead of two."""
    from nqp_resilience.estimation.bootstrap_shards import draw_all, read_shards, reduce_record
    from nqp_resilience.estimation.record import write_bootstrap
    from nqp_resilience.estimation.specs import json_safe

    if smk.input.shards:
        meta, stats = read_shards(list(smk.input.shards))
    else:
        spec, _, draws, problem = _bootstrap_problem(smk, 0)
        meta, stats = draw_all(problem, spec, draws, **_bootstrap_provenance(smk))
    record = json_safe(
        reduce_record(meta, stats, dict(smk.params.inference), dict(smk.params.spec))
    )
    write_bootstrap(record, smk.output.result)
    log.info(
        "%s: %s p = %s, %s%% CI %s (%d draws)",
        record["spec"],
        record["method"].upper(),
        record["bootstrap_p"],
        round(100 * record["level"]),
        record["bootstrap_ci"],
        record["reps"],
    )
