"""The specification registry (``config.yaml: specs``) and the job that estimates one spec.

A spec is data: dependent variable, core regressor, controls, fixed effects, a structured sample
filter, an estimator and its options. :func:`validate_specs` checks the registry against the
analysis-panel variables before any job runs; :func:`estimate` runs one spec on a mapping of
column arrays and returns the JSON-ready estimate record (docs/design.md#estimate-record).
"""

from __future__ import annotations

import math

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation.engines import DEFAULT_ENGINE, check_engine, engine_version
from nqp_resilience.indices.registry import imputed_flag, spec_variables
from nqp_resilience.lazy import lazy_module

# imported on first use: the specs are validated while Snakemake parses the workflow
np = lazy_module("numpy")

#: Columns of results/panel/analysis.parquet that specs may use (from the variable registry).
ANALYSIS_VARIABLES = spec_variables()
FE_COLUMNS = {"city": "city_code", "year": "year"}
ESTIMATORS = ("describe", "ols_fe", "iv_fe", "psm_fe")
#: Values of ``estimation.imputed_dependent``.
IMPUTED_DEPENDENT = ("keep", "drop")


def spec_controls(spec: dict, control_variables: list[str]) -> list[str]:
    """The controls of a spec: ``true`` = the paper's eight, ``false`` = none, or a list."""
    c = spec.get("controls", False)
    if c is True:
        return list(control_variables)
    if c is False or c is None:
        return []
    return list(c)


def interaction_name(d: str, x: str) -> str:
    return f"{d}_x_{x}"


def spec_columns(spec: dict, control_variables: list[str]) -> list[str]:
    """Every analysis-panel column a spec reads."""
    if spec["estimator"] == "describe":
        return list(spec["variables"])
    cols = [
        "city_code",
        "year",
        spec["dependent"],
        spec["regressor"],
        *spec_controls(spec, control_variables),
    ]
    if spec.get("interact"):
        cols.append(spec["interact"])
    inst = spec.get("instrument")
    if inst:
        cols += [inst] if isinstance(inst, str) else list(inst)
    if spec["estimator"] == "psm_fe":
        cols.append(spec["psm"].get("treatment_variable", "Nqp"))
    cols += [f["column"] for f in spec.get("sample", [])]
    return list(dict.fromkeys(cols))


def spec_variable_fields(spec: dict) -> list[tuple[str, str]]:
    """Every place a spec names a variable, as (field path, name): ``dependent``, ``regressor``,
    ``controls[j]`` (a list), ``interact``, ``instrument`` or ``instrument[j]``,
    ``sample[j].column``, ``psm.treatment_variable`` and ``variables[j]`` (describe)."""
    out: list[tuple[str, str]] = []
    for field in ("dependent", "regressor"):
        if spec.get(field) is not None:
            out.append((field, spec[field]))
    if isinstance(spec.get("controls"), list):
        out += [(f"controls[{j}]", v) for j, v in enumerate(spec["controls"])]
    if spec.get("interact"):
        out.append(("interact", spec["interact"]))
    inst = spec.get("instrument")
    if isinstance(inst, str):
        out.append(("instrument", inst))
    elif inst:
        out += [(f"instrument[{j}]", v) for j, v in enumerate(inst)]
    out += [
        (f"sample[{j}].column", f["column"])
        for j, f in enumerate(spec.get("sample") or [])
        if "column" in f
    ]
    if spec["estimator"] == "psm_fe" and isinstance(spec.get("psm"), dict):
        out.append(("psm.treatment_variable", spec["psm"].get("treatment_variable", "Nqp")))
    if spec["estimator"] == "describe":
        out += [(f"variables[{j}]", v) for j, v in enumerate(spec.get("variables") or [])]
    return out


def closest_variable(name: str, known) -> str | None:
    """The known variable ``name`` most likely meant: equal but for case, else difflib's closest."""
    import difflib

    by_case = [k for k in known if k.lower() == str(name).lower()]
    if by_case:
        return by_case[0]
    close = difflib.get_close_matches(str(name), list(known), n=1)
    if not close:  # 'resi' vs 'Resil': compare in lower case
        lower = {k.lower(): k for k in known}
        close = [lower[c] for c in difflib.get_close_matches(str(name).lower(), list(lower), n=1)]
    return close[0] if close else None


def _unknown_variable(key: str, name: str, known, where: str = "") -> ConfigError:
    close = closest_variable(name, known)
    return ConfigError(
        key,
        f"unknown variable {name!r}{where}",
        hint=(f"did you mean '{close}'? " if close else "")
        + "variables are the columns of results/panel/analysis.parquet "
        "(see results/panel/analysis_codebook.md)",
    )


def validate_specs(
    specs: list[dict], control_variables: list[str], known=ANALYSIS_VARIABLES
) -> dict[str, dict]:
    """Check the registry; return specs by id.

    Raises :class:`ConfigError` for a duplicate id, a missing field an estimator needs, or a
    variable the analysis panel does not have. An unknown variable is reported at the place
    that names it (``control_variables[2]``, ``specs[3].dependent``, ``specs[3].sample[0].column``,
    ``specs[0].variables[4]``, ...; see :func:`spec_variable_fields`) with the closest known
    name (:func:`closest_variable`).
    """
    for j, name in enumerate(control_variables):
        if name not in known:
            raise _unknown_variable(
                f"control_variables[{j}]",
                name,
                known,
                " in the default control set (used by every spec with controls: true)",
            )
    by_id: dict[str, dict] = {}
    for i, spec in enumerate(specs):
        sid = spec["id"]
        if sid in by_id:
            raise ConfigError(
                f"specs[{i}].id", f"duplicate spec id {sid!r}", hint="spec ids must be unique"
            )
        need = {
            "describe": ["variables"],
            "ols_fe": ["dependent", "regressor"],
            "iv_fe": ["dependent", "regressor", "instrument"],
            "psm_fe": ["dependent", "regressor", "psm"],
        }
        for field in need[spec["estimator"]]:
            if field not in spec:
                raise ConfigError(
                    f"specs[{i}] ({sid})", f"estimator {spec['estimator']} needs '{field}'"
                )
        for field, name in spec_variable_fields(spec):
            if name not in known:
                raise _unknown_variable(f"specs[{i}].{field}", name, known, f" in spec {sid!r}")
        check_engine(spec, f"specs[{i}].engine")
        if spec["estimator"] == "iv_fe" and spec.get("trends"):
            raise ConfigError(f"specs[{i}] ({sid})", "city trends are not implemented for iv_fe")
        by_id[sid] = spec
    return by_id


def with_imputed_dependent(
    specs: dict[str, dict], option: str, known=ANALYSIS_VARIABLES
) -> dict[str, dict]:
    """The registry under ``estimation.imputed_dependent``: ``keep`` returns ``specs`` as they
    are; ``drop`` returns new specs in which every regression spec whose dependent variable has
    an imputed-outcome flag (``imputed_<dependent>``, a column of the analysis panel) gets one
    more sample filter, ``{column: imputed_<dependent>, op: "==", value: 0}``, after its own.

    ``describe`` specs, specs whose dependent has no flag and specs that already have the
    filter are unchanged (so applying it twice gives the same registry); ``specs`` is not
    modified. The filter is part of the spec, so the estimate jobs, the bootstrap and the
    spec-sample audit read the flag column (:func:`spec_columns`) and apply it
    (:func:`apply_sample`). Raises :class:`ConfigError` for a value other than ``keep`` or
    ``drop``.
    """
    if option not in IMPUTED_DEPENDENT:
        raise ConfigError(
            "estimation.imputed_dependent", f"{option!r} is not one of {IMPUTED_DEPENDENT}"
        )
    if option == "keep":
        return specs
    out: dict[str, dict] = {}
    for sid, spec in specs.items():
        flag = imputed_flag(spec["dependent"]) if spec.get("dependent") else None
        if spec["estimator"] == "describe" or flag not in known:
            out[sid] = spec
            continue
        drop = {"column": flag, "op": "==", "value": 0}
        sample = list(spec.get("sample") or [])
        out[sid] = spec if drop in sample else {**spec, "sample": [*sample, drop]}
    return out


#: Estimators with a wild bootstrap: WCR/WCU for ``ols_fe``, WRE for ``iv_fe``.
BOOTSTRAP_ESTIMATORS = ("ols_fe", "iv_fe")


def bootstrap_spec_ids(selection, specs: dict[str, dict]) -> list[str]:
    """The spec ids of ``bootstrap.specs`` in registry order: ``"all-ols-and-iv"`` = every
    ``ols_fe`` and ``iv_fe`` spec clustered by city; a list names them.

    Raises :class:`ConfigError` for an unknown id (with the closest one), a ``psm_fe`` spec (the
    wild bootstrap is not valid for nearest-neighbour matching, Abadie and Imbens 2008), a
    ``describe`` spec, or a spec without clusters (``cluster: none``).
    """

    def bootstrappable(spec: dict) -> bool:
        return spec["estimator"] in BOOTSTRAP_ESTIMATORS and spec.get("cluster", "city") != "none"

    if selection == "all-ols-and-iv":
        return [sid for sid, spec in specs.items() if bootstrappable(spec)]
    for j, sid in enumerate(selection):
        key = f"bootstrap.specs[{j}]"
        if sid not in specs:
            close = closest_variable(sid, list(specs))
            raise ConfigError(
                key,
                f"unknown spec id {sid!r}",
                hint=(f"did you mean '{close}'? " if close else "")
                + "bootstrap.specs names ids of config.yaml: specs, or is all-ols-and-iv",
            )
        spec = specs[sid]
        if spec["estimator"] == "psm_fe":
            raise ConfigError(
                key,
                f"spec {sid!r} is a matching estimator (psm_fe), which has no wild bootstrap: "
                "the bootstrap is not valid for nearest-neighbour matching (Abadie and Imbens "
                "2008), so PSM specs keep their analytic standard errors",
                hint=f"remove {sid!r} from bootstrap.specs",
            )
        if spec["estimator"] not in BOOTSTRAP_ESTIMATORS:
            raise ConfigError(
                key,
                f"spec {sid!r} ({spec['estimator']}) has no coefficient to bootstrap",
                hint="bootstrap.specs takes ols_fe and iv_fe specs",
            )
        if not bootstrappable(spec):
            raise ConfigError(
                key,
                f"spec {sid!r} has cluster: none; the wild cluster bootstrap needs clusters",
                hint=f"set cluster: city in spec {sid!r} or remove it from bootstrap.specs",
            )
    return [sid for sid in specs if sid in set(selection)]


def spec_batches(specs: dict[str, dict], batch_size: int) -> dict[str, list[str]]:
    """The estimation jobs that run several specs each: ``{batch name: [spec ids]}``.

    With ``batch_size`` 1 there are none (one job per spec). Otherwise the specs of each
    estimator, in registry order, are cut into consecutive batches of at most ``batch_size``;
    a batch is named ``{estimator}_batch{k:03d}`` (k from 1), a valid rule name. An estimator
    with a single spec keeps its own job.
    """
    if batch_size <= 1:
        return {}
    by_estimator: dict[str, list[str]] = {}
    for sid, spec in specs.items():
        by_estimator.setdefault(spec["estimator"], []).append(sid)
    out: dict[str, list[str]] = {}
    for estimator, ids in by_estimator.items():
        if len(ids) < 2:
            continue
        for k, start in enumerate(range(0, len(ids), batch_size), start=1):
            out[f"{estimator}_batch{k:03d}"] = ids[start : start + batch_size]
    return out


def apply_sample(data: dict, filters: list[dict]) -> np.ndarray:
    """Boolean mask of rows passing every ``{column, op, value}`` filter."""
    n = len(next(iter(data.values())))
    mask = np.ones(n, dtype=bool)
    for f in filters:
        col, op, val = data[f["column"]], f["op"], f["value"]
        if op == "in":
            m = np.isin(col, np.asarray(val, dtype=col.dtype))
        else:
            m = {
                "==": np.equal,
                "!=": np.not_equal,
                "<": np.less,
                "<=": np.less_equal,
                ">": np.greater,
                ">=": np.greater_equal,
            }[op](col, val)
        mask &= np.asarray(m, dtype=bool)
    return mask


def json_safe(value):
    """JSON-safe: nan/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


def describe(data: dict, variables: list[str]) -> dict:
    """Table 2: N, mean, sd (n − 1), min, max of each variable."""
    out = {}
    for v in variables:
        x = np.asarray(data[v], dtype=float)
        x = x[np.isfinite(x)]
        out[v] = {
            "N": int(x.size),
            "mean": float(x.mean()),
            "sd": float(x.std(ddof=1)),
            "min": float(x.min()),
            "max": float(x.max()),
        }
    return out


class SpecModel:
    """The model of one regression spec on column arrays: the sample (filters applied), the
    interaction column (``{D}_x_{x}``, the core regressor of a heterogeneity spec), the
    regressors (core first), controls, fixed effects and cluster, as ``twfe`` takes them."""

    def __init__(self, spec: dict, data: dict, control_variables: list[str]):
        mask = apply_sample(data, spec.get("sample", []))
        self.data = {k: v[mask] for k, v in data.items()}
        self.controls = spec_controls(spec, control_variables)
        self.x = x = spec["regressor"]
        self.regressors, self.core = [x], x
        if spec.get("interact"):
            d = spec["interact"]
            self.core = interaction_name(d, x)
            self.data[self.core] = np.asarray(self.data[d], dtype=float) * np.asarray(
                self.data[x], dtype=float
            )
            self.regressors = [self.core, x]
        fes = [FE_COLUMNS[f] for f in spec.get("fixed_effects", ["city", "year"])]
        self.entity = "city_code" if "city_code" in fes else None
        self.time = "year" if "year" in fes else None
        self.cluster = None if spec.get("cluster", "city") == "none" else "city_code"
        self.trends = "city_code" if spec.get("trends") == "city" else None


def estimate(
    spec: dict, data: dict, control_variables: list[str], singletons: str = "drop"
) -> dict:
    """Estimate one spec on column arrays; return the estimate record (without provenance)."""
    record = {
        "spec": spec["id"],
        "table": spec["table"],
        "column": spec.get("column", ""),
        "estimator": spec["estimator"],
    }
    if spec["estimator"] == "describe":
        record["statistics"] = describe(data, spec["variables"])
        return json_safe(record)
    m = SpecModel(spec, data, control_variables)
    data, controls, x, regressors, core = m.data, m.controls, m.x, m.regressors, m.core
    entity, time, cluster = m.entity, m.time, m.cluster
    extra: dict = {}
    engine = check_engine(spec)  # numpy (default) | linearmodels | statsmodels
    if spec["estimator"] == "ols_fe":
        if engine == "linearmodels":
            from nqp_resilience.estimation.engines import linearmodels_twfe as twfe
        else:
            from nqp_resilience.estimation.ols import twfe

        result = twfe(
            data,
            spec["dependent"],
            regressors,
            controls,
            entity,
            time,
            cluster,
            trends=m.trends,
            singletons=singletons,
            on_collinear=spec.get("on_collinear", "omit"),
        )
    elif spec["estimator"] == "iv_fe":
        if engine == "linearmodels":
            from nqp_resilience.estimation.engines import linearmodels_iv_twfe as iv_twfe
        else:
            from nqp_resilience.estimation.iv import iv_twfe

        result = iv_twfe(
            data,
            spec["dependent"],
            x,
            spec["instrument"],
            controls,
            entity,
            time,
            cluster,
            singletons=singletons,
            on_collinear=spec.get("on_collinear", "omit"),
        )
    else:
        result, extra = _psm_fe(spec, data, controls, entity, time, cluster, singletons, engine)
    record.update(
        {
            "dependent": spec["dependent"],
            "regressor": core,
            "coef": result.coef,
            "se": result.se,
            "t": result.t,
            "p": result.p,
            "ci": list(result.ci),
            "nobs": result.nobs,
            "n_clusters": result.n_clusters,
            "r2": result.r2,
            "r2_within": result.r2_within,
            "fixed_effects": spec.get("fixed_effects", ["city", "year"]),
            "cluster": spec.get("cluster", "city"),
            "controls": controls,
            "sample": spec.get("sample", []),
            "trends": spec.get("trends"),
            "params": result.params,
            "bse": result.bse,
            "df_resid": result.df_resid,
            "vcov_type": result.vcov_type,
            "extra": {**result.extra, **extra},
            # controls the estimator omitted (absorbed by the fixed effects or collinear),
            # with notes
            "omitted": list(result.extra.get("omitted", [])),
            "notes": list(result.extra.get("notes", [])) + list(extra.get("psm_notes", [])),
        }
    )
    if engine != DEFAULT_ENGINE:  # the default writes no key: its records stay as they were
        record["engine"], record["engine_version"] = engine, engine_version(engine)
    return json_safe(record)


def _psm_fe(spec, data, controls, entity, time, cluster, singletons, engine="numpy"):
    """Match on the controls, then the FE regression on the matched sample with matching weights."""
    from nqp_resilience.estimation.matching import psm, treatment_indicator
    from nqp_resilience.estimation.ols import twfe

    opts = spec["psm"]
    treat = treatment_indicator(
        data[opts.get("treatment_variable", "Nqp")],
        data["year"],
        opts.get("treatment_rule", "above_yearly_median"),
    )
    complete = np.ones(len(treat), dtype=bool)
    for c in [spec["dependent"], *controls]:
        complete &= np.isfinite(np.asarray(data[c], dtype=float))
    data = {k: v[complete] for k, v in data.items()}
    data["_treated"] = treat[complete]
    matched = psm(
        data,
        "_treated",
        controls,
        spec["dependent"],
        opts["method"],
        caliper=opts.get("caliper"),
        bandwidth=opts.get("bandwidth", 0.06),
        common_support=opts.get("common_support", True),
        ties=opts.get("ties", False),
        pscore_engine=engine,
    )
    data["_weight"] = matched.extra["sample_weight"]
    fe_result = twfe(
        data,
        spec["dependent"],
        spec["regressor"],
        controls,
        entity,
        time,
        cluster,
        weights="_weight",
        singletons=singletons,
        on_collinear=spec.get("on_collinear", "omit"),
    )
    extra = {
        "att": matched.att,
        "att_se": matched.att_se,
        "matched_n": matched.extra["matched_n"],
        "balance": matched.extra["balance"],
        "psm_method": opts["method"],
        "n_treated": matched.extra.get("n_treated"),
        "n_off_support": matched.extra.get("n_off_support"),
        "psm_notes": list(matched.extra.get("notes", [])),
    }
    return fe_result, extra
