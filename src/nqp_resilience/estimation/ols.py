"""Fixed-effects OLS with cluster-robust inference, as Stata's ``reghdfe … vce(cluster)``
computes it.

Numpy only (plus scipy's compiled t distribution, :mod:`nqp_resilience.scipy_kernels`), so that
a specification job starts fast: at the default size the statistics take about a millisecond and
imports dominate. Everything this estimator shares with 2SLS (sample preparation, within
transformation, collinearity rule, weighted least squares, sandwich, degrees of freedom) is the
public API of
:mod:`nqp_resilience.estimation.core`; this module adds the OLS fit, reghdfe's constant and the
R² definitions.

Method
------
1. Drop observations with a missing value in any variable used, and (``singletons="drop"``,
   reghdfe's default) iteratively drop observations that are alone in a fixed-effect group
   (:func:`~nqp_resilience.estimation.core.prepare`).
2. Within transformation (:func:`~nqp_resilience.estimation.core.demean`): the method of
   alternating projections over the fixed effects (``absorb``), with weighted group means when
   weights are given; group-specific linear trends (``trends``) are projected out group by group
   with a weighted regression on (1, t).
3. OLS on the demeaned data: β = (X̃'WX̃)⁻¹ X̃'Wỹ (:func:`~nqp_resilience.estimation.core.wls`).
4. CR1 variance (:func:`~nqp_resilience.estimation.core.sandwich`):
   V = q (X̃'WX̃)⁻¹ [Σ_g u_g u_g'] (X̃'WX̃)⁻¹, u_g = Σ_{i∈g} w_i x̃_i e_i,
   q = G/(G − 1) · (N − 1)/(N − K). K counts the regressors and the fixed-effect levels that
   are *not* nested in the clusters (reghdfe; fixest/pyfixest ``k_fixef="nonnested"``): with city
   and year effects clustered by city, K = k + T (the T − 1 year effects and the constant;
   :func:`~nqp_resilience.estimation.core.dof`). t statistics use G − 1 degrees of freedom.
5. R² = 1 − RSS/TSS (TSS around the mean of y: reghdfe's ``r2``), within R² = 1 − RSS/TSS of
   demeaned y (``r2_within``). The constant is reghdfe's: the regression of (ỹ + ȳ) on (X̃ + x̄)
   and 1 with the same variance estimator.

Scale invariance
----------------
Every decision is taken on the FE-residualised design relative to each column's own norm, so
that results are equivariant under x → a·x + b of any variable (population in persons, GDP in
万元): the columns are centred before the alternating projections, whose convergence is judged
relative to each centred column; a regressor is *absorbed* when ‖x̃‖² ≤ ``COLLIN_TOL``·‖x − x̄‖²
(weighted); regressors are then taken in order (core regressor(s) first, then the controls) and
one is *collinear* when the squared norm of its residual on the regressors kept before it,
after scaling every column to unit norm, is ≤ ``COLLIN_TOL`` (fixest/pyfixest's ``collin.tol``
on the equilibrated design; 1 − R² of that regression). An absorbed or collinear control is
omitted with a note (reghdfe's "omitted because of collinearity"), or is an error with
``on_collinear="error"``; an absorbed or collinear core regressor is always an error. OLS is then
solved by a QR decomposition of the column-equilibrated design.
"""

from __future__ import annotations

import math

import numpy as np

from nqp_resilience.errors import EstimationError
from nqp_resilience.estimation import large
from nqp_resilience.estimation.core import (
    COLLIN_TOL,
    ON_COLLINEAR,
    SINGLETON_OPTIONS,
    OnCollinear,
    Singletons,
    check_columns,
    check_option,
    connected_components,
    demean,
    dof,
    drop_singletons,
    numeric_column,
    prepare,
    sandwich_scores,
    screen_columns,
    select_regressors,
    small_sample,
    t_dist,
    why_dropped,
    wls,
    wmean,
)
from nqp_resilience.estimation.results import EstimationResult

# the core names re-exported here are those earlier code imported from this module
__all__ = [
    "COLLIN_TOL",
    "ON_COLLINEAR",
    "EstimationError",
    "check_columns",
    "connected_components",
    "demean",
    "drop_singletons",
    "fit_prepared",
    "numeric_column",
    "prepare",
    "screen_columns",
    "select_regressors",
    "twfe",
    "why_dropped",
]


def twfe(
    df,
    y: str,
    x,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str | None = "city_code",
    *,
    weights: str | None = None,
    trends: str | None = None,
    trend_var: str | None = None,
    singletons: Singletons = "drop",
    extra_fe: list[str] | None = None,
    on_collinear: OnCollinear = "omit",
) -> EstimationResult:
    """Two-way (or more) fixed-effects OLS with CR1 standard errors clustered like reghdfe.

    Parameters
    ----------
    df : DataFrame or mapping of column name -> array
    y : dependent variable
    x : core regressor (str) or list of regressors, the first being the core one
    controls : list of control variables (or None)
    entity, time : fixed-effect columns; None drops that fixed effect
    cluster : cluster column (None: heteroskedasticity-robust HC1 with K as above)
    weights : analytic weights column (e.g. PSM matching weights), or None
    trends : group column for group-specific linear trends (e.g. ``"city_code"``), with
        ``trend_var`` the time variable (default ``time``)
    singletons : ``"drop"`` (reghdfe default) or ``"keep"``
    extra_fe : further fixed-effect columns to absorb
    on_collinear : ``"omit"`` (default, as reghdfe) drops a control that the fixed effects absorb
        or that is collinear with the regressors before it, and reports it in
        ``extra["omitted"]`` and ``extra["notes"]``; ``"error"`` raises :class:`EstimationError`
        instead. A core regressor (``x``) that is absorbed or collinear is always an error.

    Returns
    -------
    EstimationResult
        ``coef``/``se``/… of the core regressor; ``params``/``bse`` of all estimated regressors
        and ``_cons`` (omitted controls are not in them); ``vcov`` their full variance matrix
        (including the covariances of ``_cons``); ``summary()``, ``tidy()``, ``conf_int()``.

    Raises
    ------
    UnknownVariableError
        A name that is not a column of ``df`` (with a did-you-mean suggestion).
    EstimationError
        A core regressor absorbed by the fixed effects or collinear, fewer than two clusters, too
        few observations.
    OptionError
        ``singletons`` or ``on_collinear`` outside its allowed values (names them).
    """
    check_option(singletons, SINGLETON_OPTIONS, "singletons", "twfe")
    check_option(on_collinear, ON_COLLINEAR, "on_collinear", "twfe")
    xs = [x] if isinstance(x, str) else list(x)
    controls = list(controls or [])
    regressors = xs + [c for c in controls if c not in xs]
    fes = [f for f in (entity, time) if f is not None] + list(extra_fe or [])
    tvar = trend_var or time
    roles = {
        y: "outcome",
        **{v: "regressor" for v in xs},
        **{c: "control" for c in controls},
        **{f: "fixed effect" for f in fes},
        cluster: "cluster",
        weights: "weights",
        trends: "trend group",
        (tvar if trends else None): "trend variable",
    }
    check_columns(df, roles, "twfe")
    prep = prepare(
        df, [y] + regressors, fes, cluster, weights, trends, tvar if trends else None, singletons
    )
    res = fit_prepared(
        prep, y, regressors, cluster is not None, n_core=len(xs), on_collinear=on_collinear
    )
    res.cluster_var, res.trends = cluster, trends
    res.controls = [c for c in res.controls if c in controls]
    return res


def _is_run(cols: list[int]) -> bool:
    """Consecutive column indices (a slice selects them without a copy)."""
    return cols == list(range(cols[0], cols[0] + len(cols)))


def fit_prepared(
    prep: dict,
    y: str,
    regressors: list[str],
    clustered: bool,
    *,
    n_core: int = 1,
    on_collinear: OnCollinear = "omit",
) -> EstimationResult:
    """OLS on prepared data (see :func:`~nqp_resilience.estimation.core.prepare`); the first
    ``n_core`` regressors are the core ones (the first is reported), the others controls that
    may be omitted (:func:`~nqp_resilience.estimation.core.select_regressors`).

    The variance matrix ``vcov_values`` covers the regressors and ``_cons``: the constant's
    score per observation is w·e·h (see below) and the regressors' are (X̃'WX̃)⁻¹x̃·w·e, so
    Cov(β, _cons) = q·(X̃'WX̃)⁻¹ Σ_g u_g c_g with c_g = Σ_{i∈g} w_i e_i h_i.
    """
    data = prep["X"]
    n = data.shape[0]
    if n == 0:
        raise EstimationError(
            "twfe: no complete observations for this specification",
            hint="check the sample filter and the missing values of the variables used",
        )
    w = np.ones(n) if prep["w"] is None else prep["w"]
    tilde = demean(data, prep["absorb"], prep["w"], prep["trends"])
    # the large-sample path screens and solves from one Gram matrix of the residualised data
    screen = large.GramScreen(tilde, data, w) if large.is_large(n) else None
    kept, omitted, notes = select_regressors(
        tilde[:, 1:] if screen is None else None,
        data[:, 1:],
        w,
        regressors,
        n_core,
        prep,
        on_collinear,
        status=None if screen is None else screen.statuses(range(1, data.shape[1]), COLLIN_TOL),
    )
    regs = [regressors[j] for j in kept]
    k = len(regs)
    if n <= k + 1:
        raise EstimationError(
            f"twfe: only {n} observations for {k} regressors",
            hint="use fewer controls or a larger sample",
        )
    cols = [1 + j for j in kept]
    fit = None
    if screen is None:
        yt, Xt = tilde[:, 0], tilde[:, cols]
    else:
        yt, Xt = tilde[:, 0], tilde[:, cols[0] : cols[-1] + 1] if _is_run(cols) else tilde[:, cols]
        fit = large.solve_from_gram(tilde, cols, 0, screen, w)
    G, K, clusters = dof(prep, k, n, clustered)
    beta, xtwx_inv = fit if fit is not None else wls(Xt, yt, w, regs)
    resid = yt - Xt @ beta
    V, scores = sandwich_scores(Xt, resid, w, xtwx_inv, clusters, G, n, K)
    se = np.sqrt(np.diag(V))
    if screen is None:
        ymean = np.average(data[:, 0], weights=w)
        means = np.average(data[:, cols], axis=0, weights=w)
    else:
        all_means = wmean(data, w)
        ymean, means = float(all_means[0]), all_means[cols]
    rss = float(np.sum(w * resid**2))
    tss = float(np.sum(w * (data[:, 0] - ymean) ** 2))
    tss_within = float(np.sum(w * yt**2))
    # reghdfe's constant: the regression of (ỹ + ȳ) on (X̃ + x̄) and 1. X̃ has weighted mean zero
    # (every projection contains the constant), so its residuals are those above, _cons = ȳ − x̄'β
    # and its score per observation is w·e·h with h = 1/Σw − x̄'(X̃'WX̃)⁻¹x̃ (closed form: no
    # ill-conditioned [X̃ + x̄, 1] design when a mean is large).
    cons = float(ymean - means @ beta)
    h = 1.0 / np.sum(w) - Xt @ (xtwx_inv @ means)
    cons_scores = np.bincount(clusters, weights=w * resid * h, minlength=G)
    cons_se = math.sqrt(small_sample(G, n, K) * float(cons_scores @ cons_scores))
    df_t = (G - 1) if clustered else (n - K)
    t = float(beta[0] / se[0]) if se[0] > 0 else math.nan
    p, q = t_dist(t, df_t)
    params = {r: float(b) for r, b in zip(regs, beta, strict=True)}
    bse = {r: float(s) for r, s in zip(regs, se, strict=True)}
    params["_cons"], bse["_cons"] = cons, cons_se
    tvals = {r: params[r] / bse[r] if bse.get(r) else math.nan for r in bse}
    pvals = {r: t_dist(tv, df_t)[0] for r, tv in tvals.items()}
    extra = {"df_k": int(K), "t_stats": tvals, "p_values": pvals, "rss": rss, "omitted": omitted}
    # full variance matrix of (β, _cons): regressors' block V; covariances with the constant
    cov_cons = small_sample(G, n, K) * (xtwx_inv @ (scores.T @ cons_scores))
    vcov = np.empty((k + 1, k + 1))
    vcov[:k, :k] = V
    vcov[:k, k] = vcov[k, :k] = cov_cons
    vcov[k, k] = cons_se**2
    if notes:
        extra["notes"] = notes
    return EstimationResult(
        coef=float(beta[0]),
        se=float(se[0]),
        t=t,
        p=p,
        ci=(float(beta[0] - q * se[0]), float(beta[0] + q * se[0])),
        nobs=int(n),
        n_clusters=int(G) if clustered else None,
        r2=1.0 - rss / tss if tss > 0 else math.nan,
        r2_within=1.0 - rss / tss_within if tss_within > 0 else math.nan,
        regressor=regs[0],
        params=params,
        bse=bse,
        df_resid=int(df_t),
        vcov_type="CR1" if clustered else "HC1",
        extra=extra,
        estimator="twfe",
        dependent=y,
        fixed_effects=list(prep.get("fe_names", [])),
        controls=regs[n_core:],
        vcov_values=vcov,
        vcov_names=[*regs, "_cons"],
    )
