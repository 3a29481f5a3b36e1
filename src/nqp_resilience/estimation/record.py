"""The estimate record ``results/estimates/{spec}.json``: one typed class, one reader, one writer.

The estimation jobs write a record with :func:`write_estimate`; the tables, the figures and the
replication check read it with :func:`read_estimate`. Both validate it against
``schemas/estimate.schema.yaml`` (JSON Schema, draft 2020-12), so a hand-edited, truncated or
stale file stops the job that reads it with a :class:`~nqp_resilience.errors.DataError` naming
the file and the key, instead of a ``KeyError`` deep inside a table.

Two kinds of record share the class: a ``describe`` spec carries ``statistics`` (N, mean, sd,
min, max per variable); every other estimator carries the regression keys (``coef``, ``se``,
``t``, ``p``, ``ci``, ``nobs``, ...). :meth:`EstimateRecord.to_dict` gives the keys of its kind,
in the order of the fields, so the JSON text is the same as ``json.dumps`` of the dict the
estimator returns. The record is also a read-only mapping (``record["coef"]``,
``record.get("extra", {})``), which is what the table and figure code index.

Importing this module is cheap: json and jsonschema are imported by the functions that use them,
and jsonschema only for a record that :func:`nqp_resilience.schema_check.conforms` does not accept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from nqp_resilience.errors import DataError
from nqp_resilience.schema_check import conforms

#: Keys every record has, before the keys of its kind.
COMMON_KEYS = ("spec", "table", "column", "estimator")
#: Keys of a ``describe`` record.
DESCRIBE_KEYS = ("statistics",)
#: Keys of a regression record (``ols_fe``, ``iv_fe``, ``psm_fe``).
REGRESSION_KEYS = (
    "dependent",
    "regressor",
    "coef",
    "se",
    "t",
    "p",
    "ci",
    "nobs",
    "n_clusters",
    "r2",
    "r2_within",
    "fixed_effects",
    "cluster",
    "controls",
    "sample",
    "trends",
    "params",
    "bse",
    "df_resid",
    "vcov_type",
    "extra",
    "omitted",
    "notes",
)
#: Keys written only for an estimate computed by another engine than the default numpy one
#: (config ``specs[i].engine``): the engine and its library's version. Absent otherwise, so the
#: records of the default engine keep their bytes.
ENGINE_KEYS = ("engine", "engine_version")
#: Provenance keys, written last by the job: package versions and input hashes.
PROVENANCE_KEYS = ("software", "inputs")

#: The schema file, relative to the project folder (the repository, or the workflow folder).
SCHEMA_NAME = "schemas/estimate.schema.yaml"

_HINT = (
    "rerun the spec's job to rewrite the file (snakemake --forcerun <rule of the spec>); "
    "estimate files are written by the workflow, not by hand"
)


@dataclass(frozen=True, eq=True)
class EstimateRecord(Mapping):
    """One estimate: the result of one spec of ``config.yaml: specs``.

    Attributes
    ----------
    spec, table, column, estimator
        The spec id, the paper's table number, the column label (``"(1)"``, or empty) and the
        estimator (``describe``, ``ols_fe``, ``iv_fe``, ``psm_fe``).
    statistics
        ``describe`` only: ``{variable: {N, mean, sd, min, max}}``, sd with n − 1.
    dependent, regressor
        Analysis-panel columns; an interaction regressor is named ``D_x_Nqp``.
    coef, se, t, p, ci
        The core regressor's coefficient, cluster-robust standard error (CR1 by city, or the
        estimator's ``vcov_type``), t statistic, two-sided p value and 95 % interval
        ``[coef − c·se, coef + c·se]``; ``None`` where not finite.
    nobs, n_clusters, df_resid
        Observations used, clusters (``None`` without clustering) and residual degrees of freedom.
    r2, r2_within
        Overall R² and within R² (after the fixed effects), fractions.
    fixed_effects, cluster, controls, sample, trends
        The specification as estimated: ``["city", "year"]``, ``"city"``, the control names,
        the sample filters ``[{column, op, value}]`` and ``"city"`` for city-specific linear
        trends (else ``None``).
    params, bse
        Every coefficient and its standard error, by term (``_cons`` the constant).
    vcov_type
        The variance estimator, e.g. ``"cluster"``.
    extra
        Estimator extras: first stage and weak-instrument statistics (iv_fe), the matching
        balance and ATT (psm_fe), degrees-of-freedom details.
    omitted, notes
        Controls the estimator dropped (absorbed or collinear), and notes about the estimate.
    engine, engine_version
        The engine of a spec that does not use the default (numpy) one, and the version of its
        library (``None`` if not installed); both ``None``, and not written, for the default.
    software, inputs
        ``{package: version}`` and ``{input role: sha256 hex digest}``.
    """

    spec: str
    table: int
    column: str
    estimator: str
    statistics: dict | None = None
    dependent: str | None = None
    regressor: str | None = None
    coef: float | None = None
    se: float | None = None
    t: float | None = None
    p: float | None = None
    ci: list | None = None
    nobs: int | None = None
    n_clusters: int | None = None
    r2: float | None = None
    r2_within: float | None = None
    fixed_effects: list = field(default_factory=list)
    cluster: str | None = None
    controls: list = field(default_factory=list)
    sample: list = field(default_factory=list)
    trends: str | None = None
    params: dict = field(default_factory=dict)
    bse: dict = field(default_factory=dict)
    df_resid: int | None = None
    vcov_type: str | None = None
    extra: dict = field(default_factory=dict)
    omitted: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    engine: str | None = None
    engine_version: str | None = None
    software: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ keys of the record's kind

    @property
    def is_describe(self) -> bool:
        """True for a ``describe`` record (descriptive statistics, no regression)."""
        return self.estimator == "describe"

    def keys_of_kind(self) -> tuple[str, ...]:
        """The JSON keys of this record, in file order."""
        kind = DESCRIBE_KEYS if self.is_describe else REGRESSION_KEYS
        engine = ENGINE_KEYS if self.engine is not None else ()
        return COMMON_KEYS + kind + engine + PROVENANCE_KEYS

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record: the keys of its kind, in file order."""
        return {key: getattr(self, key) for key in self.keys_of_kind()}

    @classmethod
    def from_dict(cls, data: Mapping, *, source="estimate record") -> EstimateRecord:
        """Build a record from a mapping with exactly the keys of its kind.

        Raises
        ------
        DataError
            Naming ``source`` (the file) and the first missing or unexpected key.
        """
        if "estimator" not in data:
            raise DataError(
                source,
                "the estimate record has no key 'estimator'",
                column="estimator",
                hint=_HINT,
                expected=f"the keys {', '.join(COMMON_KEYS)} and the estimator's",
            )
        kind = DESCRIBE_KEYS if data["estimator"] == "describe" else REGRESSION_KEYS
        known = set(COMMON_KEYS + kind + ENGINE_KEYS + PROVENANCE_KEYS)
        for key in COMMON_KEYS + kind:
            if key not in data:
                raise DataError(
                    source,
                    f"the estimate record has no key {key!r}",
                    column=key,
                    expected=f"every key of a {data['estimator']} record",
                    hint=_HINT,
                )
        unexpected = [key for key in data if key not in known]
        if unexpected:
            raise DataError(
                source,
                f"unexpected key {unexpected[0]!r} in a {data['estimator']} record",
                column=unexpected[0],
                expected="the keys of EstimateRecord (schemas/estimate.schema.yaml)",
                hint="a new key is added to EstimateRecord and to the schema together"
                if unexpected[0] not in {f.name for f in fields(cls)}
                else _HINT,
            )
        return cls(**{key: data[key] for key in data})

    # ------------------------------------------------------------------ read-only mapping view

    def __getitem__(self, key: str):
        if key not in self.keys_of_kind():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys_of_kind())

    def __len__(self) -> int:
        return len(self.keys_of_kind())

    def __contains__(self, key) -> bool:
        return key in self.keys_of_kind()


# ---------------------------------------------------------------------------------- the schema


def schema_path() -> Path:
    """``schemas/estimate.schema.yaml`` of the project the package belongs to (the checkout it is
    installed from), else of the current folder (a workflow folder)."""
    candidates = [Path(__file__).resolve().parents[3] / SCHEMA_NAME, Path.cwd() / SCHEMA_NAME]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        candidates[0],
        "the schema of the estimate records is missing",
        hint=f"run from the project folder, which has {SCHEMA_NAME}",
    )


_SCHEMA_CACHE: dict[str, Any] = {}


def _schema() -> dict:
    """The schema, read once per process (kept as JSON in a workflow folder)."""
    if "schema" not in _SCHEMA_CACHE:
        from nqp_resilience.data.io import read_yaml_cached

        _SCHEMA_CACHE["schema"] = read_yaml_cached(schema_path())
    return _SCHEMA_CACHE["schema"]


def _validator():
    """The jsonschema validator, built once per process (only for a record that
    :func:`~nqp_resilience.schema_check.conforms` does not accept at once)."""
    if "validator" not in _SCHEMA_CACHE:
        from jsonschema import Draft202012Validator

        schema = _schema()
        Draft202012Validator.check_schema(schema)
        _SCHEMA_CACHE["validator"] = Draft202012Validator(schema)
    return _SCHEMA_CACHE["validator"]


def _key_path(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_estimate(data: Mapping, source="estimate record") -> None:
    """Check a record (mapping or :class:`EstimateRecord`) against the schema.

    Raises
    ------
    DataError
        Naming ``source`` and the key path of the first error in document order
        (``ci.1``, ``extra``, ``statistics.Resil.N``), with what was expected.
    """
    data = data.to_dict() if isinstance(data, EstimateRecord) else dict(data)
    if conforms(_schema(), data):  # jsonschema decides (and words) every other case
        return
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return
    err = errors[0]
    key = _key_path(err)
    if err.validator == "required":
        problem = f"the estimate record lacks a key: {err.message}"
    elif err.validator == "additionalProperties":
        problem = f"unexpected key at {key}: {err.message}"
    elif err.validator == "not":
        problem = (
            "a describe record has 'statistics' and no regression keys; a regression "
            "record the reverse"
        )
    else:
        problem = f"key {key!r}: {err.message}"
    described = isinstance(err.schema, dict) and err.schema.get("description")
    raise DataError(source, problem, column=key, expected=described or None, hint=_HINT)


# ---------------------------------------------------------------------------------- read, write


def record_json(record: EstimateRecord | Mapping) -> str:
    """The file text of a record: ``json.dumps(record, indent=2, ensure_ascii=False) + "\\n"``."""
    import json

    data = record.to_dict() if isinstance(record, EstimateRecord) else dict(record)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_estimate(record: EstimateRecord, path) -> None:
    """Validate ``record`` and write it to ``path`` atomically (UTF-8, Unix newlines).

    Raises
    ------
    DataError
        If the record does not match the schema (naming ``path`` and the key); nothing is
        written then.
    """
    from nqp_resilience.data.io import write_text

    validate_estimate(record, source=path)
    write_text(path, record_json(record))


def read_estimate(path) -> EstimateRecord:
    """Read and validate ``results/estimates/{spec}.json``.

    Raises
    ------
    DataError
        If the file is not JSON (naming the line), or does not match the schema (naming the key).
    """
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"not valid JSON: {exc.msg}", row=f"line {exc.lineno}", hint=_HINT
        ) from None
    if not isinstance(data, dict):
        raise DataError(path, "the estimate file does not hold a JSON object", hint=_HINT)
    validate_estimate(data, source=path)
    return EstimateRecord.from_dict(data, source=path)


def read_estimates(paths) -> dict[str, EstimateRecord]:
    """Records by spec id, in the order of ``paths``."""
    out: dict[str, EstimateRecord] = {}
    for path in paths:
        record = read_estimate(path)
        out[record.spec] = record
    return out


# --------------------------------------------------------------------------------------------
# The wild bootstrap result results/bootstrap/{spec}.json and the shard metadata
# --------------------------------------------------------------------------------------------

#: Keys a wild bootstrap result (``results/bootstrap/{spec}.json``) must have for the tables.
BOOTSTRAP_KEYS = (
    "spec",
    "table",
    "column",
    "estimator",
    "method",
    "dependent",
    "regressor",
    "coef",
    "se",
    "p",
    "bootstrap_p",
    "bootstrap_ci",
    "level",
    "p_type",
    "null_value",
    "reps",
    "reps_requested",
    "weights",
    "enumerated",
    "bootstrap_cluster",
    "bootstrap_clusters",
)

#: Methods of a bootstrap result: WCR/WCU (``ols_fe``), WRE (``iv_fe``).
BOOTSTRAP_METHODS = ("wcr", "wcu", "wre")

_BOOTSTRAP_HINT = "rerun the bootstrap of that spec (rule bootstrap_reduce) to rewrite the file"


def read_bootstrap(path) -> dict:
    """Read one wild bootstrap result, ``results/bootstrap/{spec}.json``, as a dict.

    JSON ``null`` in ``bootstrap_ci`` is an unbounded endpoint (``None``). Raises
    :class:`~nqp_resilience.errors.DataError` naming the file for invalid JSON, a missing key
    of :data:`BOOTSTRAP_KEYS` or an unknown ``method``.
    """
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            path, f"not valid JSON: {exc.msg}", row=f"line {exc.lineno}", hint=_BOOTSTRAP_HINT
        ) from None
    if not isinstance(data, dict):
        raise DataError(path, "a bootstrap result must be a JSON object", hint=_BOOTSTRAP_HINT)
    missing = [k for k in BOOTSTRAP_KEYS if k not in data]
    if missing:
        raise DataError(
            path,
            f"the bootstrap result has no {', '.join(repr(k) for k in missing)}",
            expected="the keys " + ", ".join(BOOTSTRAP_KEYS),
            hint=_BOOTSTRAP_HINT,
        )
    if data["method"] not in BOOTSTRAP_METHODS:
        raise DataError(
            path,
            f"unknown bootstrap method {data['method']!r}",
            expected=" | ".join(BOOTSTRAP_METHODS),
            hint=_BOOTSTRAP_HINT,
        )
    ci = data["bootstrap_ci"]
    if not isinstance(ci, list) or len(ci) != 2:
        raise DataError(
            path,
            f"bootstrap_ci must be a pair [lo, hi], got {ci!r}",
            hint=_BOOTSTRAP_HINT,
        )
    return data


def write_bootstrap(record: dict, path) -> None:
    """Write one wild bootstrap result (JSON-safe: unbounded endpoints as null) atomically."""
    import json

    from nqp_resilience.data.io import write_text

    missing = [k for k in BOOTSTRAP_KEYS if k not in record]
    if missing:
        raise DataError(path, f"the bootstrap result has no {', '.join(missing)}")
    write_text(path, json.dumps(record, indent=2, allow_nan=False) + "\n")


def parse_json_metadata(raw: bytes, source) -> dict:
    """A JSON object stored as file metadata (the bootstrap shards' Parquet metadata)."""
    import json

    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DataError(source, f"metadata is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(source, "metadata must be a JSON object")
    return data
