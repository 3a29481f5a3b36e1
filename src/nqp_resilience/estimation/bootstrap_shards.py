"""The wild bootstrap of a spec split into jobs: shard files and their reduction.

Rule ``bootstrap_shard`` (one job per spec and shard k of ``bootstrap.shards``) sets the
bootstrap problem of the spec up (:func:`spec_problem`), computes the per-draw statistics of its
contiguous range of blocks of draws (:func:`~nqp_resilience.estimation.bootstrap.shard_blocks`)
and writes them to ``results/bootstrap/{spec}/shard_{k}.parquet`` (:func:`write_shard`). Rule
``bootstrap_reduce`` reads every shard of the spec (:func:`read_shards`), checks that they
belong together and cover every draw once, and computes the p-value and the inverted
confidence interval (:func:`reduce_record`) with the same function as the single-process API
call, so the result is the same bytes whatever the shard count.

Shard file
----------
One row per draw, in draw order: ``draw`` (int64) and the per-draw statistics (float64; stored
exactly): ``n0, n1, AA, AB, BB`` for OLS specs (WCR and WCU use the same numbers), the upper
triangle of the Gram matrix of the CR1 score sources and z'(c∘v) for IV specs (WRE; see
:mod:`~nqp_resilience.estimation.iv_bootstrap`). The Parquet key-value metadata
``nqp_bootstrap`` holds a JSON object: the method, the scalars of the sample the reduce step
needs, the number of draws and blocks, the draw options, the CR1 estimate, the shard's blocks
and, in the workflow, the shard's fingerprint. Everything but the shard's own index, blocks and
fingerprint must agree across the shards of a spec.

Completed shards
----------------
The workflow also keeps each shard under ``results/bootstrap/.completed/{spec}/shard_{k}.parquet``
(a hard link to the output, so no extra space) with a fingerprint of its inputs, options and
code. A shard job whose fingerprint matches the kept file links it into place instead of
computing it: after an interruption, a node failure or a retried group job on a cluster, only
the shards that never completed are computed.
"""

from __future__ import annotations

import json
import math

import numpy as np

from nqp_resilience.errors import DataError, EstimationError

__all__ = [
    "BOOTSTRAP_CLUSTERS",
    "META_KEY",
    "bootstrap_columns",
    "draw_all",
    "read_shards",
    "reduce_record",
    "shard_fingerprint",
    "spec_problem",
    "write_shard",
]

#: ``bootstrap.cluster`` -> analysis-panel column (None: the spec's clusters, the city).
BOOTSTRAP_CLUSTERS = {None: "city_code", "city": "city_code", "province": "province_code"}
#: Parquet key-value metadata key of a shard file.
META_KEY = b"nqp_bootstrap"


def bootstrap_columns(spec: dict, control_variables: list[str], cluster: str | None) -> list[str]:
    """The analysis-panel columns the bootstrap of a spec reads."""
    from nqp_resilience.estimation.specs import spec_columns

    cols = spec_columns(spec, control_variables)
    return list(dict.fromkeys([*cols, BOOTSTRAP_CLUSTERS[cluster]]))


def spec_problem(
    spec: dict, data: dict, control_variables: list[str], draws: dict, singletons: str = "drop"
):
    """The :class:`~nqp_resilience.estimation.bootstrap.WildProblem` of one ``ols_fe`` (WCR/WCU)
    or ``iv_fe`` (WRE) spec on column arrays, with ``draws`` = ``{reps, seed, weights,
    cluster}`` of ``config.yaml: bootstrap``. The random stream is the spec id, so that the
    specs do not share draws."""
    from nqp_resilience.estimation.specs import SpecModel

    m = SpecModel(spec, data, control_variables)
    if m.cluster is None:
        raise EstimationError(
            f"spec {spec['id']!r} has cluster: none; the wild cluster bootstrap needs clusters",
            hint=f"set cluster: city in spec {spec['id']!r} or remove it from bootstrap.specs",
        )
    common = dict(
        reps=int(draws["reps"]),
        seed=int(draws["seed"]),
        weights=draws["weights"],
        stream=spec["id"],
        bootstrap_cluster=BOOTSTRAP_CLUSTERS[draws.get("cluster")],
        singletons=singletons,
    )
    if spec["estimator"] == "ols_fe":
        from nqp_resilience.estimation.bootstrap import wild_problem

        return wild_problem(
            m.data,
            spec["dependent"],
            m.regressors,
            m.controls,
            m.entity,
            m.time,
            m.cluster,
            trends=m.trends,
            **common,
        )
    if spec["estimator"] == "iv_fe":
        from nqp_resilience.estimation.iv_bootstrap import wre_problem

        return wre_problem(
            m.data,
            spec["dependent"],
            m.x,
            spec["instrument"],
            m.controls,
            m.entity,
            m.time,
            m.cluster,
            **common,
        )
    raise EstimationError(
        f"spec {spec['id']!r} ({spec['estimator']}) has no wild bootstrap",
        hint="the bootstrap covers ols_fe (WCR/WCU) and iv_fe (WRE) specs",
    )


def _meta(problem, spec: dict, draws: dict, reps: int) -> dict:
    """The shard metadata every shard of a spec shares."""
    res = problem.result
    return {
        "spec": spec["id"],
        "estimator": spec["estimator"],
        "method": problem.method,
        "stat_names": list(problem.stat_names),
        "scalars": problem.scalars,
        "n_blocks": problem.n_blocks,
        "draws": {
            **problem.draw_info(reps),
            "bootstrap_cluster": draws.get("cluster") or "city",
        },
        "estimate": {
            "dependent": res.dependent,
            "regressor": res.regressor,
            "coef": res.coef,
            "se": res.se,
            "t": res.t,
            "p": res.p,
            "ci": list(res.ci),
            "nobs": res.nobs,
            "n_clusters": res.n_clusters,
        },
    }


def write_shard(
    path,
    problem,
    spec: dict,
    draws: dict,
    shard: int,
    shards: int,
    *,
    completed=None,
    identity=None,
    **extra,
) -> tuple[int, bool]:
    """Compute shard ``shard`` of ``shards`` of ``problem`` and write it to ``path``
    (atomically); ``extra`` (JSON-safe, e.g. the input hashes) goes into the metadata.

    With ``completed`` (a path outside Snakemake's outputs), the shard is also kept there,
    hard-linked to ``path``, under a fingerprint of everything that determines its draws: the
    metadata, ``identity`` (JSON-safe, e.g. the job's parameters and a hash of the code) and the
    shard's blocks. A later job of the same shard whose fingerprint matches links the kept file
    into place instead of computing it again: a shard that completed once is never recomputed,
    even where the scheduler deleted its output (a failed or requeued group job, a retry).

    Returns the number of draws and whether the shard was restored rather than computed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nqp_resilience.data.io import atomic_write
    from nqp_resilience.estimation.bootstrap import BLOCK, shard_blocks

    first, stop = shard_blocks(problem.n_blocks, shards, shard)
    meta = {
        **_meta(problem, spec, draws, int(draws["reps"])),
        **extra,
        "shard": int(shard),
        "shards": int(shards),
        "blocks": [int(first), int(stop)],
    }
    if completed is not None:
        meta["fingerprint"] = shard_fingerprint(meta, identity)
        n = _restore(completed, path, meta["fingerprint"])
        if n is not None:
            return n, True
    stats = problem.stats(first, stop)
    lo = first * BLOCK
    columns = {"draw": np.arange(lo, lo + stats.shape[1], dtype=np.int64)}
    columns.update({name: stats[j] for j, name in enumerate(problem.stat_names)})
    table = pa.Table.from_arrays(
        [_arrow(v) for v in columns.values()], names=list(columns)
    ).replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    atomic_write(
        path if completed is None else completed,
        lambda tmp: pq.write_table(table, tmp, compression="zstd"),
    )
    if completed is not None:
        _link_into_place(completed, path)
    return stats.shape[1], False


def draw_all(problem, spec: dict, draws: dict, **extra) -> tuple[dict, np.ndarray]:
    """Every draw of ``problem`` in this process, with no shard file: the metadata and the
    (n_stats, B) statistics exactly as :func:`read_shards` returns them from the files of any
    number of shards (the metadata passes through the same JSON text, so the record that
    :func:`reduce_record` makes from them is the same bytes). The workflow's path when
    ``bootstrap.shards`` is 1."""
    from nqp_resilience.estimation.record import parse_json_metadata

    meta = {**_meta(problem, spec, draws, int(draws["reps"])), **extra}
    # the text a shard file stores, read back by the reader of the shard files
    meta = parse_json_metadata(json.dumps(meta, sort_keys=True).encode(), "bootstrap metadata")
    stats = np.ascontiguousarray(problem.stats(0, problem.n_blocks), dtype=np.float64)
    B = int(meta["draws"]["reps"])
    if stats.shape != (len(meta["stat_names"]), B):
        raise EstimationError(
            f"bootstrap of spec {spec['id']!r}: {stats.shape[1]} draws computed, not {B}",
            hint="a bug: please report it with the spec and the bootstrap options",
        )
    return meta, stats


def shard_fingerprint(meta: dict, identity=None) -> str:
    """SHA-256 of a shard's metadata (without a previous fingerprint) and ``identity``."""
    import hashlib

    body = {k: v for k, v in meta.items() if k != "fingerprint"}
    text = json.dumps({"meta": body, "identity": identity}, sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _restore(completed, path, fingerprint: str) -> int | None:
    """Link the kept shard ``completed`` into ``path`` if it is a readable shard file with
    this ``fingerprint``; its number of draws, or None (nothing kept, another fingerprint, or
    a damaged file: the shard is then computed again)."""
    import os

    if not os.path.exists(completed):
        return None
    try:
        meta, rows = _shard_meta(completed)
    except (OSError, KeyError, ValueError, DataError):
        return None
    if meta.get("fingerprint") != fingerprint:
        return None
    _link_into_place(completed, path)
    return int(rows)


def _shard_meta(path) -> tuple[dict, int]:
    """A shard file's metadata and number of rows, from its footer only (reading the table
    through pyarrow would import pandas)."""
    import pyarrow.parquet as pq

    from nqp_resilience.estimation.record import parse_json_metadata

    parquet = pq.ParquetFile(path)
    meta = parse_json_metadata((parquet.schema_arrow.metadata or {})[META_KEY], path)
    return meta, parquet.metadata.num_rows


def _link_into_place(source, path) -> None:
    """Make ``path`` a hard link to ``source`` atomically (a copy where links fail)."""
    import os
    import secrets
    import shutil
    from pathlib import Path

    from nqp_resilience.data.io import atomic_write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.link"
    try:
        os.link(source, tmp)
    except OSError:  # a file system without hard links, or another device
        atomic_write(path, lambda t: shutil.copyfile(source, t))
        return
    try:
        os.replace(tmp, path)
    finally:
        # rename() does nothing when both names are links to one file (a shard restored over
        # itself): the temporary name is left, so remove it here
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _arrow(values: np.ndarray):
    """An Arrow array over a numpy int64/float64 vector (``pyarrow.array`` would import
    pandas, about 0.4 s per job)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    kind = pa.int64() if values.dtype == np.int64 else pa.float64()
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


_OWN_KEYS = ("shard", "shards", "blocks", "fingerprint")


def read_shards(paths) -> tuple[dict, np.ndarray]:
    """The shared metadata and the (n_stats, B) statistics of all the shards of one spec.

    Raises
    ------
    DataError
        A file that is not a shard, shards of different runs (other draws, data or model), a
        shard missing or present twice, or draws that do not cover 0..B−1 exactly once (naming
        the files).
    """
    from nqp_resilience.data.parquet import read_columns

    paths = [str(p) for p in paths]
    if not paths:
        raise DataError(
            "(none)", "no bootstrap shard files to reduce", hint="check bootstrap.shards"
        )
    metas = []
    for path in paths:
        try:
            meta, _ = _shard_meta(path)
        except (OSError, KeyError, ValueError, DataError) as exc:
            raise DataError(
                path,
                f"not a bootstrap shard file ({exc})",
                hint="delete it and rerun: the bootstrap_shard job writes it again",
            ) from exc
        metas.append(meta)
    shared = {k: v for k, v in metas[0].items() if k not in _OWN_KEYS}
    for path, meta in zip(paths[1:], metas[1:], strict=True):
        other = {k: v for k, v in meta.items() if k not in _OWN_KEYS}
        if other != shared:
            diff = sorted(k for k in set(other) | set(shared) if other.get(k) != shared.get(k))
            raise DataError(
                path,
                f"this bootstrap shard does not belong with {paths[0]} "
                f"(they differ in {', '.join(diff)})",
                hint="rerun the bootstrap of this spec: snakemake --forcerun bootstrap_shard",
            )
    shards = {m["shards"] for m in metas}
    order = sorted(range(len(paths)), key=lambda i: metas[i]["shard"])
    got = [metas[i]["shard"] for i in order]
    if len(shards) != 1 or got != list(range(len(paths))) or got and shards != {len(paths)}:
        raise DataError(
            ", ".join(paths),
            f"bootstrap shards {got} of {sorted(shards)} do not make one complete set",
            hint="rerun the bootstrap of this spec: snakemake --forcerun bootstrap_shard",
        )
    names = shared["stat_names"]
    tables = [read_columns(paths[i], ["draw", *names]) for i in order]
    draws = np.concatenate([t["draw"] for t in tables])
    B = int(shared["draws"]["reps"])
    if draws.shape != (B,) or not np.array_equal(draws, np.arange(B, dtype=np.int64)):
        raise DataError(
            ", ".join(paths),
            f"bootstrap shards of spec {shared['spec']!r} hold {draws.size} draws, not each of "
            f"the {B} draws once",
            hint="rerun the bootstrap of this spec: snakemake --forcerun bootstrap_shard",
        )
    stats = np.stack([np.concatenate([t[n] for t in tables]) for n in names])
    return shared, stats


def reduce_record(meta: dict, stats: np.ndarray, inference: dict, spec: dict) -> dict:
    """The JSON record of a spec's bootstrap, ``results/bootstrap/{spec}.json``, from the
    shards' metadata and statistics and ``inference`` = ``{variant, null_value, level,
    p_type}`` of ``config.yaml: bootstrap`` (IV specs always use WRE)."""
    from nqp_resilience.estimation.bootstrap import bootstrap_inference

    out = bootstrap_inference(
        meta["method"],
        meta["scalars"],
        stats,
        variant=inference.get("variant", "wcr"),
        null=float(inference.get("null_value", 0.0)),
        level=float(inference.get("level", 0.95)),
        p_type=inference.get("p_type", "symmetric"),
    )
    est = meta["estimate"]
    record = {
        "spec": spec["id"],
        "table": spec["table"],
        "column": spec.get("column", ""),
        "estimator": spec["estimator"],
        "method": out["variant"],
        **est,
        "bootstrap_p": out["bootstrap_p"],
        "bootstrap_ci": [_finite(v) for v in out["bootstrap_ci"]],
        "level": out["level"],
        "p_type": out["p_type"],
        "null_value": out["null"],
        **meta["draws"],
    }
    for key in ("software", "inputs"):
        if key in meta:
            record[key] = meta[key]
    return record


def _finite(v: float):
    """JSON: an unbounded (±inf) or undefined (nan) endpoint is null."""
    return float(v) if math.isfinite(v) else None
