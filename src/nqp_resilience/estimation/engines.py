"""Estimation engines: the same specification fitted by a library users know, as a cross-check.

A spec's ``engine`` option (``config.yaml: specs``) picks who does the numerical work:

``numpy`` (default)
    The project's own estimators (:func:`~nqp_resilience.estimation.ols.twfe`,
    :func:`~nqp_resilience.estimation.iv.iv_twfe`, the Newton solver of
    :func:`~nqp_resilience.estimation.matching.fit_binary`).
``linearmodels`` (``ols_fe``, ``iv_fe``)
    ``ols_fe``: ``linearmodels.PanelOLS`` with entity and time effects, clustered covariance.
    ``iv_fe``: the fixed effects are removed by ``PanelData.demean`` (exact: one effect by group
    means, the other by regression on its demeaned dummies), then ``linearmodels.IV2SLS`` with
    the controls as exogenous regressors; first stage, Kleibergen–Paap rk LM and Wald F and the
    Cragg–Donald F from ``IV2SLS``'s ``first_stage``.
``statsmodels`` (``psm_fe``)
    ``statsmodels.Logit`` (Newton's method) fits the propensity score; the perfect-prediction
    and collinearity checks, the matching and the FE regression with matching weights are the
    project's, unchanged.

Sample
------
Exactly the numpy engine's: complete cases, then singleton groups of the fixed effects dropped
iteratively (``singletons="drop"``, reghdfe's default) *before* the data reach linearmodels.
City-specific linear trends (``trends``) are partialled out here first: y, the regressors and
the year dummies (less one) are residualised on (1, t) city by city, and ``PanelOLS`` without
effects regresses ỹ on [X̃, D̃]. By Frisch–Waugh–Lovell this is the regression with city
trends and year effects; the coefficients on X and their cluster-robust variance block are those
of the joint projection. No ``_cons`` is reported then (the trend intercepts absorb it).

Degrees of freedom (reghdfe's)
------------------------------
reghdfe's CR1 factor is q = G/(G − 1)·(N − 1)/(N − K) with K = k + the fixed-effect levels that
are not nested in the clusters (:func:`absorbed_dof`; with city and year effects clustered by
city, K = k + T). The libraries are asked for their own factor and the covariance is rescaled
by the ratio of the two, or given K directly where the library accepts it:

- ``PanelOLS.fit(cov_type="clustered", debiased=True, group_debias=True, auto_df=False,
  count_effects=False)`` gives q_lm = G/(G − 1)·(N − 1)/N · N/(N − k_lm), k_lm = the columns of
  exog (regressors, the constant, and the year dummies with trends); the covariance is
  multiplied by q/q_lm = (N − k_lm)/(N − K). Without a cluster ``cov_type="robust"`` gives
  N/(N − k_lm), rescaled the same way to HC1 N/(N − K).
- ``IV2SLS.fit(cov_type="clustered", debiased=True, extra_df=K − k)`` scales by
  G(N − 1)/((G − 1)(N − k − extra_df)) = q itself: no rescaling.
- ``IV2SLS``'s first stage does not carry ``extra_df``: its regressions on [Z, C] use
  N − L − k2 where ivreg2 uses N − K_fs, K_fs = L + k2 + (K − k). The first-stage variance is
  multiplied by (N − L − k2)/(N − K_fs), its Wald F and the Kleibergen–Paap and Cragg–Donald F by
  the inverse (the LM statistic has no small-sample factor).

t statistics use G − 1 degrees of freedom (N − K without clusters) and p-values and confidence
intervals are computed here from Student's t, as reghdfe does (linearmodels uses N − k_lm).

The IV record also holds statistics linearmodels does not compute — the Anderson–Rubin test and
confidence set, the canonical correlations and the Stock–Yogo critical values (a table): they
come from the numpy engine and are listed in ``extra["engine_sources"]["numpy"]``.

Imports: this module imports nothing heavy; linearmodels (about 2 s) and statsmodels (about
3 s) are imported inside the functions that use them, never on the default path.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal, get_args

from nqp_resilience.errors import ConfigError, EstimationError, MatchingError, UnknownVariableError
from nqp_resilience.estimation.results import EstimationResult

Engine = Literal["numpy", "linearmodels", "statsmodels"]
ENGINES: tuple[str, ...] = get_args(Engine)
DEFAULT_ENGINE = "numpy"
#: The engines each estimator can run on (the first is the default).
ENGINES_BY_ESTIMATOR: dict[str, tuple[str, ...]] = {
    "describe": ("numpy",),
    "ols_fe": ("numpy", "linearmodels"),
    "iv_fe": ("numpy", "linearmodels"),
    "psm_fe": ("numpy", "statsmodels"),
}
#: The library each non-default engine needs (its version goes into the estimate record).
ENGINE_LIBRARY = {"linearmodels": "linearmodels", "statsmodels": "statsmodels"}
#: Relative tolerance of the absorption test, as the numpy engine's ``COLLIN_TOL``.
_ABSORBED_TOL = 1e-9


def check_engine(spec: dict, key: str | None = None) -> str:
    """The engine of a spec (``spec["engine"]``, default ``numpy``), checked.

    Parameters
    ----------
    spec : a spec of ``config.yaml: specs`` (needs ``estimator``; ``id`` names it in errors)
    key : where the spec is, for the error message (default ``specs (<id>).engine``)

    Raises
    ------
    ConfigError
        An unknown engine, or one the spec's estimator cannot run on; the hint lists the
        engines of that estimator.
    """
    engine = spec.get("engine") or DEFAULT_ENGINE
    estimator = spec.get("estimator", "")
    where = key or f"specs ({spec.get('id', '?')}).engine"
    allowed = ENGINES_BY_ESTIMATOR.get(estimator, (DEFAULT_ENGINE,))
    if engine not in ENGINES:
        raise ConfigError(
            where,
            f"unknown engine {engine!r}",
            hint=f"engines: {', '.join(ENGINES)}; estimator {estimator} runs on "
            f"{', '.join(allowed)}",
        )
    if engine not in allowed:
        raise ConfigError(
            where,
            f"engine {engine!r} is not available for estimator {estimator}",
            hint=f"estimator {estimator} runs on {', '.join(allowed)}",
        )
    return engine


def engine_version(engine: str) -> str | None:
    """Installed version of the library behind ``engine`` (None for numpy or if absent)."""
    from importlib.metadata import PackageNotFoundError, version

    lib = ENGINE_LIBRARY.get(engine)
    if lib is None:
        return None
    try:
        return version(lib)
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------------------------
# Sample, codes and reghdfe's degrees of freedom
# --------------------------------------------------------------------------------------------


def _as_list(v) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def _sample(
    data,
    numeric: list[str],
    ids: dict[str, str | None],
    singletons: str,
    fe_roles: tuple[str, ...],
    source: str,
):
    """Complete cases and singleton drop; returns (float columns, integer codes by role, n).

    ``ids`` maps a role (``entity``, ``time``, ``cluster``) to a column or None; ``fe_roles``
    are the roles whose singleton groups are dropped (iteratively, as reghdfe).
    """
    import numpy as np
    import pandas as pd

    from nqp_resilience.estimation.core import drop_singletons

    if singletons not in ("drop", "keep"):
        raise ValueError("singletons must be 'drop' or 'keep'")
    names = list(dict.fromkeys(numeric))
    for name in names + [c for c in ids.values() if c is not None]:
        if name not in data:
            raise UnknownVariableError(name, "variable", list(data.keys()), source=source)
    cols = {}
    for v in names:
        try:
            cols[v] = np.asarray(
                pd.to_numeric(pd.Series(np.asarray(data[v])), errors="raise"), dtype=float
            )
        except (TypeError, ValueError):
            raise EstimationError(
                f"{source}: variable '{v}' is not numeric", variable=v, hint="convert it to numbers"
            ) from None
    n = len(next(iter(cols.values())))
    keep = np.ones(n, dtype=bool)
    for v in cols.values():
        keep &= np.isfinite(v)
    raw_ids = {}
    for role, col in ids.items():
        if col is not None:
            raw_ids[role] = pd.Series(np.asarray(data[col]))
            keep &= ~raw_ids[role].isna().to_numpy()
    idx = np.flatnonzero(keep)
    codes = {role: pd.factorize(s.iloc[idx], sort=True)[0] for role, s in raw_ids.items()}
    fe = [codes[r] for r in fe_roles if r in codes]
    if singletons == "drop" and fe:
        idx = idx[drop_singletons(fe)]  # the numpy engine's rule, so both use the same rows
        codes = {role: pd.factorize(s.iloc[idx], sort=True)[0] for role, s in raw_ids.items()}
    out = {v: c[idx] for v, c in cols.items()}
    if len(idx) == 0:
        raise EstimationError(
            f"{source}: no complete observations for this specification",
            hint="check the sample filter and the missing values of the variables used",
        )
    return out, codes, len(idx)


def _partial_trends(m, g, t, n_groups: int):
    """Residuals of each column of ``m`` on (1, t) within each group g (closed form).

    t is centred within its group first, so that b = Σ t̃x/Σ t̃², a = x̄_g: exact and stable.
    """
    import numpy as np

    cnt = np.bincount(g, minlength=n_groups)
    tc = t - (np.bincount(g, weights=t, minlength=n_groups) / cnt)[g]
    stt = np.bincount(g, weights=tc * tc, minlength=n_groups)
    present = cnt > 0
    if np.any(stt[present] <= 1e-12 * np.maximum(np.bincount(g, weights=t * t)[present], 1.0)):
        raise EstimationError(
            "a group-specific trend needs at least two distinct periods in every group"
        )
    out = np.empty_like(m)
    for j in range(m.shape[1]):
        x = m[:, j]
        a = np.bincount(g, weights=x, minlength=n_groups) / cnt
        b = np.bincount(g, weights=tc * x, minlength=n_groups) / stt
        out[:, j] = x - a[g] - b[g] * tc
    return out


def _independent(m) -> list[int]:
    """Columns of ``m`` kept in order unless their residual on the kept ones is below
    √tol of their norm (a basis of the column space)."""
    import numpy as np

    kept: list[int] = []
    for j in range(m.shape[1]):
        col = m[:, j]
        norm = float(np.linalg.norm(col))
        if norm == 0.0:
            continue
        if kept:
            basis = m[:, kept]
            col = col - basis @ np.linalg.lstsq(basis, col, rcond=None)[0]
        if float(np.linalg.norm(col)) > math.sqrt(_ABSORBED_TOL) * norm:
            kept.append(j)
    return kept


def _absorbed(raw, tilde) -> bool:
    """Is a column absorbed: ‖x̃‖² ≤ tol·‖x − x̄‖² (the numpy engine's rule)?"""
    import numpy as np

    ss_raw = float(np.sum((raw - raw.mean()) ** 2))
    return ss_raw == 0.0 or float(np.sum(tilde**2)) <= _ABSORBED_TOL * ss_raw


def _omit(names, raw, tilde, n_core, on_collinear, roles, source):
    """Controls absorbed by the fixed effects are omitted (or an error); core ones are errors."""
    kept, omitted, notes = [], [], []
    for j, name in enumerate(names):
        if not _absorbed(raw[:, j], tilde[:, j]):
            kept.append(j)
            continue
        why = "it has no variation left after the fixed effects"
        if j < n_core:
            raise EstimationError(
                f"{source}: cannot estimate the effect of {roles[0]} '{name}': {why}",
                variable=name,
                hint="a regressor must vary within the fixed-effect "
                "groups; drop the fixed effect that absorbs it or choose another regressor",
            )
        if on_collinear == "error":
            raise EstimationError(
                f"{source}: {roles[1]} '{name}' cannot be estimated: {why}",
                variable=name,
                hint=f"remove '{name}' from the controls, or let it be "
                "omitted (on_collinear: omit)",
            )
        omitted.append(name)
        notes.append(f"{name} omitted: {why}")
    return kept, omitted, notes


def _library_error(exc: Exception, source: str, library: str) -> EstimationError:
    return EstimationError(
        f"{source}: {library} cannot estimate this specification: {exc}",
        hint="the regressors may be collinear after the fixed effects; the numpy "
        "engine (engine: numpy) omits collinear controls with a note",
    )


# --------------------------------------------------------------------------------------------
# linearmodels: fixed-effects OLS
# --------------------------------------------------------------------------------------------


def linearmodels_twfe(
    df,
    y: str,
    x,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str | None = "city_code",
    *,
    trends: str | None = None,
    trend_var: str | None = None,
    singletons: str = "drop",
    on_collinear: str = "omit",
) -> EstimationResult:
    """Fixed-effects OLS by ``linearmodels.PanelOLS``, with reghdfe's degrees of freedom.

    Arguments as :func:`nqp_resilience.estimation.ols.twfe` (no weights, no extra fixed
    effects). The sample (complete cases, singletons) is selected here; city trends are
    partialled out here (module docstring); the covariance is linearmodels' clustered one
    (``group_debias=True``, ``debiased=True``, effects not counted) multiplied by
    (N − k_lm)/(N − K), K = k + :func:`absorbed_dof`.

    Returns
    -------
    EstimationResult
        As the numpy engine's; ``_cons`` in ``params`` except with trends; ``extra`` adds
        ``engine_dof`` = {``k_library``, ``K``, ``variance_factor``}.
    """
    import numpy as np
    import pandas as pd

    from nqp_resilience.estimation.core import absorbed_dof, is_nested, t_dist

    source = "linearmodels_twfe"
    if on_collinear not in ("omit", "error"):
        raise ValueError(f"on_collinear must be 'omit' or 'error', not {on_collinear!r}")
    core = _as_list(x)
    ctrl = [c for c in _as_list(controls) if c not in core]
    regs = core + ctrl
    tvar = trend_var or time
    if trends is not None and tvar is None:
        raise EstimationError(f"{source}: group trends need a time variable (trend_var or time)")
    numeric = [y, *regs] + ([tvar] if trends is not None else [])
    ids = {"entity": entity, "time": time, "cluster": cluster, "trend": trends}
    cols, codes, n = _sample(df, numeric, ids, singletons, ("trend", "entity", "time"), source)
    clusters = codes.get("cluster")
    raw = np.column_stack([cols[v] for v in regs])
    yv = cols[y]

    from linearmodels import PanelOLS

    # sets of absorbed levels in reghdfe's order: trend intercepts and slopes, then the effects
    sets = []
    if trends is not None:
        g = codes["trend"]
        sets += [(g, int(g.max()) + 1, True), (g, int(g.max()) + 1, False)]
    sets += [(codes[r], int(codes[r].max()) + 1, True) for r in ("entity", "time") if r in codes]
    ent = codes.get("entity", np.arange(n))  # row numbers: the index stays unique
    per = codes["time"] if "time" in codes else np.arange(n)
    index = pd.MultiIndex.from_arrays([ent, per], names=["entity", "time"])

    if trends is not None:
        g = codes["trend"]
        dummies = np.empty((n, 0))
        if "time" in codes:  # year effects as regressors (a basis of them, below)
            dummies = (codes["time"][:, None] == np.arange(int(codes["time"].max()) + 1)).astype(
                float
            )
        if "entity" in codes and not is_nested(codes["entity"], g):
            raise EstimationError(
                f"{source}: entity effects that are not nested in the trend groups "
                "are not supported with trends",
                hint="use engine: numpy",
            )
        tilde = _partial_trends(
            np.column_stack([yv, raw, dummies]), g, cols[tvar], int(g.max()) + 1
        )
        # the trends span the constant and t, which the year dummies contain too: keep a basis
        basis = _independent(tilde[:, 1 + len(regs) :])
        tilde = np.column_stack([tilde[:, : 1 + len(regs)], tilde[:, 1 + len(regs) :][:, basis]])
        dummies = dummies[:, basis]
        kept, omitted, notes = _omit(
            regs,
            raw,
            tilde[:, 1 : 1 + len(regs)],
            len(core),
            on_collinear,
            ("regressor", "control"),
            source,
        )
        names = [regs[j] for j in kept]
        dnames = [f"_time_{j}" for j in range(dummies.shape[1])]
        exog = pd.DataFrame(
            np.column_stack([tilde[:, [1 + j for j in kept]], tilde[:, 1 + len(regs) :]]),
            index=index,
            columns=names + dnames,
        )
        dep = pd.Series(tilde[:, 0], index=index, name=y)
        model = PanelOLS(dep, exog, check_rank=True)
        y_within = tilde[:, 0]
        if dummies.shape[1]:
            d = tilde[:, 1 + len(regs) :]
            y_within = y_within - d @ np.linalg.lstsq(d, y_within, rcond=None)[0]
    else:
        names, omitted, notes = list(regs), [], []
        exog = pd.DataFrame(raw, index=index, columns=regs)
        exog["const"] = 1.0
        dep = pd.Series(yv, index=index, name=y)
        model = PanelOLS(
            dep,
            exog,
            entity_effects="entity" in codes,
            time_effects="time" in codes,
            drop_absorbed=True,
            check_rank=True,
        )
        y_within = None
    cov = (
        {"cov_type": "clustered", "clusters": clusters, "group_debias": True}
        if clusters is not None
        else {"cov_type": "robust"}
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = model.fit(debiased=True, auto_df=False, count_effects=False, **cov)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise _library_error(exc, source, "linearmodels PanelOLS") from exc
    params_lm = res.params
    if trends is None:
        dropped = [v for v in regs if v not in params_lm.index]
        for w in caught:  # PanelOLS's AbsorbingEffectWarning names what it dropped
            if "absorbed" in str(w.message).lower() and not dropped:
                dropped = [v for v in regs if v not in params_lm.index]
        for v in dropped:
            if v in core:
                raise EstimationError(
                    f"{source}: cannot estimate the effect of regressor '{v}': "
                    "the fixed effects absorb it",
                    variable=v,
                    hint="a regressor must vary within the fixed-effect groups",
                )
            if on_collinear == "error":
                raise EstimationError(
                    f"{source}: control '{v}' cannot be estimated: the fixed effects absorb it",
                    variable=v,
                    hint=f"remove '{v}' from the controls, or let it be omitted",
                )
            omitted.append(v)
            notes.append(f"{v} omitted: it has no variation left after the fixed effects")
        names = [v for v in regs if v in params_lm.index]
    k = len(names)
    k_lm = int(len(params_lm))
    K = k + absorbed_dof(sets, clusters)
    factor = (n - k_lm) / (n - K)
    se_lm = res.std_errors
    G = int(clusters.max()) + 1 if clusters is not None else n
    df_t = (G - 1) if clusters is not None else (n - K)
    params = {v: float(params_lm[v]) for v in names}
    bse = {v: float(se_lm[v]) * math.sqrt(factor) for v in names}
    if trends is None and "const" in params_lm.index:
        params["_cons"], bse["_cons"] = (
            float(params_lm["const"]),
            float(se_lm["const"]) * math.sqrt(factor),
        )
    tvals = {v: params[v] / bse[v] if bse[v] > 0 else math.nan for v in params}
    pvals = {v: t_dist(tv, df_t)[0] for v, tv in tvals.items()}
    rss = float(res.resid_ss)
    tss = float(np.sum((yv - yv.mean()) ** 2))
    if y_within is None:
        r2_within = float(res.rsquared)
    else:
        tss_w = float(np.sum(y_within**2))
        r2_within = 1.0 - rss / tss_w if tss_w > 0 else math.nan
    b0, s0 = params[names[0]], bse[names[0]]
    t0 = tvals[names[0]]
    p0, q = t_dist(t0, df_t)
    extra = {
        "df_k": int(K),
        "t_stats": tvals,
        "p_values": pvals,
        "rss": rss,
        "omitted": omitted,
        "engine_dof": {"k_library": k_lm, "K": int(K), "variance_factor": factor},
    }
    if notes:
        extra["notes"] = notes
    return EstimationResult(
        coef=b0,
        se=s0,
        t=t0,
        p=p0,
        ci=(b0 - q * s0, b0 + q * s0),
        nobs=int(n),
        n_clusters=G if clusters is not None else None,
        r2=1.0 - rss / tss if tss > 0 else math.nan,
        r2_within=r2_within,
        regressor=names[0],
        params=params,
        bse=bse,
        df_resid=int(df_t),
        vcov_type="CR1" if clusters is not None else "HC1",
        extra=extra,
    )


# --------------------------------------------------------------------------------------------
# linearmodels: fixed-effects 2SLS
# --------------------------------------------------------------------------------------------

#: Keys of the IV record that linearmodels does not compute (taken from the numpy engine).
IV_NUMPY_KEYS = (
    "ar_stat",
    "ar_p",
    "ar_df",
    "ar_chi2",
    "ar_chi2_p",
    "ar_ci",
    "ar_ci_kind",
    "ar_ci_level",
    "ar_ci_method",
    "canonical_correlations",
    "stock_yogo",
)


def linearmodels_iv_twfe(
    df,
    y: str,
    endog,
    instrument,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str | None = "city_code",
    *,
    singletons: str = "drop",
    on_collinear: str = "omit",
) -> EstimationResult:
    """Fixed-effects 2SLS by ``linearmodels.IV2SLS`` on data demeaned by ``PanelData.demean``.

    Arguments as :func:`nqp_resilience.estimation.iv.iv_twfe` (no weights). The covariance is
    IV2SLS's clustered one with ``debiased=True`` and ``extra_df`` = the absorbed levels not
    nested in the clusters, which is ivreghdfe's CR1 exactly; first-stage statistics are
    rescaled to ivreg2's N − K_fs (module docstring).

    Returns
    -------
    EstimationResult
        As the numpy engine's, with ``extra["engine_sources"]["numpy"]`` naming the statistics
        taken from the numpy engine (:data:`IV_NUMPY_KEYS`).
    """
    import numpy as np
    import pandas as pd

    from nqp_resilience.estimation.core import absorbed_dof, t_dist

    source = "linearmodels_iv_twfe"
    endogs, instruments = _as_list(endog), _as_list(instrument)
    ctrl = [c for c in _as_list(controls) if c not in endogs]
    if not endogs or not instruments or len(instruments) < len(endogs):
        raise ConfigError(
            "instrument",
            "an IV regression needs at least as many excluded instruments as endogenous regressors",
            source=source,
        )
    variables = [y, *endogs, *instruments, *ctrl]
    ids = {"entity": entity, "time": time, "cluster": cluster}
    cols, codes, n = _sample(df, variables, ids, singletons, ("entity", "time"), source)
    clusters = codes.get("cluster")

    from linearmodels import IV2SLS
    from linearmodels.panel.data import PanelData

    ent = codes.get("entity", np.arange(n))  # row numbers: the index stays unique
    per = codes["time"] if "time" in codes else np.arange(n)
    index = pd.MultiIndex.from_arrays([ent, per], names=["entity", "time"])
    frame = pd.DataFrame({v: cols[v] for v in variables}, index=index)
    group = {(True, True): "both", (True, False): "entity", (False, True): "time"}.get(
        ("entity" in codes, "time" in codes)
    )
    demeaned = frame - frame.mean() if group is None else PanelData(frame).demean(group).dataframe
    raw = frame.to_numpy()
    dm = demeaned.to_numpy()
    for j, v in enumerate([y, *instruments]):
        jj = 0 if j == 0 else 1 + len(endogs) + j - 1
        if _absorbed(raw[:, jj], dm[:, jj]):
            raise ConfigError(
                v,
                f"{'outcome' if j == 0 else 'instrument'} '{v}' has no within "
                "variation after the fixed effects are absorbed",
                source=source,
            )
    ix = [1 + j for j in range(len(endogs))] + [
        1 + len(endogs) + len(instruments) + j for j in range(len(ctrl))
    ]
    kept, omitted, notes = _omit(
        endogs + ctrl,
        raw[:, ix],
        dm[:, ix],
        len(endogs),
        on_collinear,
        ("endogenous regressor", "control"),
        source,
    )
    ctrl = [(endogs + ctrl)[j] for j in kept if j >= len(endogs)]
    sets = [(codes[r], int(codes[r].max()) + 1, True) for r in ("entity", "time") if r in codes]
    k1, L, k2 = len(endogs), len(instruments), len(ctrl)
    absorbed = absorbed_dof(sets, clusters) if sets else 1
    K = k1 + k2 + absorbed
    K_fs = L + k2 + absorbed
    cov = (
        {"cov_type": "clustered", "clusters": clusters}
        if clusters is not None
        else {"cov_type": "robust"}
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = IV2SLS(
                demeaned[y],
                demeaned[ctrl] if ctrl else None,
                demeaned[endogs],
                demeaned[instruments],
            ).fit(debiased=True, extra_df=absorbed, **cov)
            fs = res.first_stage
            individual = fs.individual
            diag = fs.diagnostics
            kp_lm_stat = fs.kleibergen_paap
            kp_f_lm = float(fs.kleibergen_paap_f)
            cd_f_lm = float(fs.cragg_donald_f)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise _library_error(exc, source, "linearmodels IV2SLS") from exc
    G = int(clusters.max()) + 1 if clusters is not None else n
    df_t = (G - 1) if clusters is not None else (n - K)
    # first stage: linearmodels' N − L − k2 -> ivreg2's N − K_fs (variance factor)
    fs_factor = (n - L - k2) / (n - K_fs)
    from nqp_resilience.scipy_kernels import special

    [fdtrc] = special("fdtrc")

    df_fs = (G - 1) if clusters is not None else (n - K_fs)
    by_endog = diag if endogs[0] in diag.index else diag.T  # one row per endogenous regressor
    first_stage = {}
    for xname in endogs:
        ind = individual[xname]
        # f.stat is the Wald statistic (not divided by L) for a robust or clustered covariance
        F = float(by_endog.loc[xname, "f.stat"]) / fs_factor / L
        first_stage[xname] = {
            "coef": {z: float(ind.params[z]) for z in instruments},
            "se": {z: float(ind.std_errors[z]) * math.sqrt(fs_factor) for z in instruments},
            "F": F,
            "F_p": float(fdtrc(L, df_fs, F)),
            "F_df": [L, int(df_fs)],
            "partial_r2": float(by_endog.loc[xname, "partial.rsquared"]),
        }
    names2 = endogs + ctrl
    params = {v: float(res.params[v]) for v in names2}
    bse = {v: float(res.std_errors[v]) for v in names2}
    tvals = {v: params[v] / bse[v] if bse[v] > 0 else math.nan for v in names2}
    kp_f = kp_f_lm / fs_factor
    if clusters is not None:  # linearmodels: F = W/(N−1)·(N−L−k2)(G−1)/(G L) -> W
        kp_wald = kp_f_lm * (n - 1) * G * L / ((n - L - k2) * (G - 1))
    else:  # F = W/N·(N−L−k2)/L
        kp_wald = kp_f_lm * n * L / (n - L - k2)
    fs0 = first_stage[endogs[0]]
    extra = {
        "first_stage_coef": fs0["coef"][instruments[0]],
        "first_stage_se": fs0["se"][instruments[0]],
        "first_stage_F": fs0["F"],
        "first_stage_F_p": fs0["F_p"],
        "first_stage_F_df": fs0["F_df"],
        "partial_r2": fs0["partial_r2"],
        "first_stage": first_stage,
        "kp_lm": float(kp_lm_stat.stat),
        "kp_lm_df": int(kp_lm_stat.df),
        "kp_lm_p": float(kp_lm_stat.pval),
        "kp_f": float(kp_f),
        "kp_wald_chi2": float(kp_wald),
        "cd_f": float(cd_f_lm / fs_factor),
        "instruments": instruments,
        "endogenous": endogs,
        "df_k": int(K),
        "df_k_first_stage": int(K_fs),
        "absorbed_dof": int(absorbed),
        "t_stats": tvals,
        "p_values": {v: t_dist(tv, df_t)[0] for v, tv in tvals.items()},
        "rss": float(res.resid_ss),
        "omitted": omitted,
        "engine_dof": {
            "k_library": k1 + k2,
            "extra_df": int(absorbed),
            "K": int(K),
            "first_stage_variance_factor": fs_factor,
        },
    }
    if notes:
        extra["notes"] = notes
    # statistics linearmodels does not compute: from the numpy engine, on the same sample
    from nqp_resilience.estimation.iv import iv_twfe

    ref = iv_twfe(
        df,
        y,
        endogs,
        instruments,
        _as_list(controls),
        entity,
        time,
        cluster,
        singletons=singletons,
        on_collinear=on_collinear,
    )
    for key in IV_NUMPY_KEYS:
        extra[key] = ref.extra.get(key)
    extra["engine_sources"] = {"numpy": list(IV_NUMPY_KEYS)}
    b0, s0, t0 = params[endogs[0]], bse[endogs[0]], tvals[endogs[0]]
    p0, q = t_dist(t0, df_t)
    rss = float(res.resid_ss)
    tss = float(np.sum((cols[y] - cols[y].mean()) ** 2))
    tss_w = float(np.sum(demeaned[y].to_numpy() ** 2))
    return EstimationResult(
        coef=b0,
        se=s0,
        t=t0,
        p=p0,
        ci=(b0 - q * s0, b0 + q * s0),
        nobs=int(n),
        n_clusters=G if clusters is not None else None,
        r2=1.0 - rss / tss if tss > 0 else math.nan,
        r2_within=1.0 - rss / tss_w if tss_w > 0 else math.nan,
        regressor=endogs[0],
        params=params,
        bse=bse,
        df_resid=int(df_t),
        vcov_type="CR1" if clusters is not None else "HC1",
        extra=extra,
    )


# --------------------------------------------------------------------------------------------
# statsmodels: the propensity-score model
# --------------------------------------------------------------------------------------------


def statsmodels_binary(y, X, model: str = "logit", *, tol: float = 1e-12, max_iter: int = 100):
    """Logit (``statsmodels.Logit``) or probit (``statsmodels.Probit``) of ``y`` on ``X`` and a
    constant by Newton's method; a drop-in for
    :func:`nqp_resilience.estimation.matching.fit_binary`.

    Parameters
    ----------
    y : array (n,), 0/1
    X : array (n, k), covariates without a constant (a constant is appended last)
    model : "logit" or "probit"
    tol : statsmodels' Newton tolerance (largest absolute change of a coefficient)

    Returns
    -------
    BinaryFit
        ``params`` from statsmodels; the linear index is summed column by column (as the numpy
        engine does, so that identical covariate rows get bit-identical scores and psmatch2's
        ties are kept) and ``pr`` is statsmodels' ``cdf`` of it.

    Raises
    ------
    MatchingError
        No convergence (perfect prediction) or a singular Hessian (collinear covariates).
    """
    import numpy as np
    import statsmodels.api as sm

    from nqp_resilience.estimation.matching import BinaryFit, _index

    if model not in ("logit", "probit"):
        raise ValueError(f"model must be 'logit' or 'probit', got {model!r}")
    y = np.asarray(y, dtype=float)
    Xc = np.column_stack([np.asarray(X, dtype=float).reshape(len(y), -1), np.ones(len(y))])
    cls = sm.Logit if model == "logit" else sm.Probit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cls(y, Xc).fit(method="newton", tol=tol, maxiter=max_iter, disp=False)
    except np.linalg.LinAlgError:
        raise MatchingError(
            f"{model} (statsmodels): the covariates are collinear (singular Hessian)",
            hint="drop a redundant covariate",
        ) from None
    if not res.mle_retvals.get("converged", False) or not np.all(np.isfinite(res.params)):
        raise MatchingError(
            f"{model} (statsmodels): the likelihood did not converge in {max_iter} "
            "iterations: a combination of the covariates predicts treatment perfectly",
            hint="drop or coarsen the covariates that separate treated from controls",
        )
    params = np.asarray(res.params, dtype=float)
    xb = _index(Xc, params)
    pr = np.asarray(res.model.cdf(xb), dtype=float)
    return BinaryFit(
        params, xb, pr, float(res.llf), float(res.llnull), int(res.mle_retvals.get("iterations", 0))
    )
