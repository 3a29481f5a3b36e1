"""Fixed-effects OLS with cluster-robust inference, as Stata's ``reghdfe … vce(cluster)`` computes it.

Numpy only (plus ``scipy.special`` for t quantiles), so that a specification job starts fast:
at the default size the statistics take about a millisecond and imports dominate.

Method
------
1. Drop observations with a missing value in any variable used, and (``singletons="drop"``,
   reghdfe's default) iteratively drop observations that are alone in a fixed-effect group.
2. Within transformation: the method of alternating projections over the fixed effects
   (``absorb``), with weighted group means when weights are given; group-specific linear trends
   (``trends``) are projected out group by group with a weighted regression on (1, t).
3. OLS on the demeaned data: β = (X̃'WX̃)⁻¹ X̃'Wỹ.
4. CR1 variance: V = q (X̃'WX̃)⁻¹ [Σ_g u_g u_g'] (X̃'WX̃)⁻¹, u_g = Σ_{i∈g} w_i x̃_i e_i,
   q = G/(G − 1) · (N − 1)/(N − K). K counts the regressors and the fixed-effect levels that
   are *not* nested in the clusters (reghdfe; fixest/pyfixest ``k_fixef="nonnested"``): with city
   and year effects clustered by city, K = k + T (the T − 1 year effects and the constant).
   t statistics use G − 1 degrees of freedom.
5. R² = 1 − RSS/TSS (TSS around the mean of y: reghdfe's ``r2``), within R² = 1 − RSS/TSS of
   demeaned y (``r2_within``). The constant is reghdfe's: the regression of (ỹ + ȳ) on (X̃ + x̄)
   and 1 with the same variance estimator.
"""

from __future__ import annotations

import math

import numpy as np

from nqp_resilience.results import EstimationResult


class EstimationError(ValueError):
    """The model cannot be estimated on these data (collinear regressors, no variation, …)."""


def _codes(values) -> tuple[np.ndarray, int]:
    """Integer codes 0..L−1 for any 1-d array of labels."""
    uniq, inv = np.unique(np.asarray(values), return_inverse=True)
    return inv.astype(np.int64), len(uniq)


def drop_singletons(groups: list[np.ndarray]) -> np.ndarray:
    """Boolean mask of observations kept after iteratively removing singleton groups."""
    n = len(groups[0]) if groups else 0
    keep = np.ones(n, dtype=bool)
    changed = True
    while changed and groups:
        changed = False
        for g in groups:
            counts = np.bincount(g[keep], minlength=g.max() + 1 if len(g) else 0)
            single = keep & (counts[g] == 1)
            if single.any():
                keep &= ~single
                changed = True
    return keep


def _group_means(x: np.ndarray, g: np.ndarray, w: np.ndarray | None, n_groups: int) -> np.ndarray:
    sw = np.bincount(g, weights=w, minlength=n_groups)
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        col = x[:, j] if w is None else w * x[:, j]
        out[:, j] = (np.bincount(g, weights=col, minlength=n_groups) / sw)[g]
    return out


def _group_trend_fit(x: np.ndarray, g: np.ndarray, t: np.ndarray, w: np.ndarray, n_groups: int) -> np.ndarray:
    """Fitted values of a weighted regression of each column on (1, t) within each group."""
    s0 = np.bincount(g, weights=w, minlength=n_groups)
    s1 = np.bincount(g, weights=w * t, minlength=n_groups)
    s2 = np.bincount(g, weights=w * t * t, minlength=n_groups)
    det = s0 * s2 - s1 * s1
    if np.any(det[np.unique(g)] <= 1e-12 * np.maximum(s0 * s2, 1.0)[np.unique(g)]):
        raise EstimationError("a group-specific trend needs at least two distinct periods in every group")
    out = np.empty_like(x)
    for j in range(x.shape[1]):
        b0 = np.bincount(g, weights=w * x[:, j], minlength=n_groups)
        b1 = np.bincount(g, weights=w * t * x[:, j], minlength=n_groups)
        a = (s2 * b0 - s1 * b1) / det
        b = (s0 * b1 - s1 * b0) / det
        out[:, j] = a[g] + b[g] * t
    return out


def demean(x: np.ndarray, absorb: list[tuple[np.ndarray, int]], w: np.ndarray | None = None,
           trends: tuple[np.ndarray, int, np.ndarray] | None = None, tol: float = 1e-13,
           maxiter: int = 10_000) -> np.ndarray:
    """Partial out fixed effects (and group trends) from the columns of ``x``.

    Parameters
    ----------
    x : (n, k) array
    absorb : list of (codes, n_levels)
    w : weights or None
    trends : (codes, n_levels, t) for group-specific intercepts and linear trends, or None
    tol : convergence tolerance of the alternating projections (max absolute change relative
        to the columns' scale)
    """
    x = np.array(x, dtype=float, copy=True)
    w_fe = None if w is None else np.asarray(w, dtype=float)
    w = np.ones(len(x)) if w is None else w_fe
    projections = [("fe", g, L, None) for g, L in absorb]
    if trends is not None:
        projections.insert(0, ("trend", trends[0], trends[1], np.asarray(trends[2], dtype=float)))
    if not projections:
        return x
    scale = np.maximum(np.abs(x).max(axis=0), 1.0)
    for _ in range(maxiter):
        before = x.copy()
        for kind, g, L, t in projections:
            x -= _group_means(x, g, w_fe, L) if kind == "fe" else _group_trend_fit(x, g, t, w, L)
        if len(projections) == 1 or np.max(np.abs(x - before) / scale) < tol:
            return x
    raise EstimationError(f"alternating projections did not converge in {maxiter} iterations")


def _nested(fe: np.ndarray, cluster: np.ndarray) -> bool:
    """Is every level of ``fe`` inside a single cluster? (Both are integer codes.)

    A level's mean cluster code equals each of its cluster codes exactly iff they are all equal.
    """
    fe, cluster = np.asarray(fe, dtype=np.int64), np.asarray(cluster, dtype=np.int64)
    n = np.bincount(fe)
    mean = np.bincount(fe, weights=cluster.astype(float)) / np.maximum(n, 1)
    return bool(np.all(cluster == mean[fe]))


def _t_dist(t: float, df: int) -> tuple[float, float]:
    """Two-sided p-value and the 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.special import stdtr, stdtrit

    return float(2.0 * stdtr(df, -abs(t))), float(stdtrit(df, 0.975))


def _column(data, name):
    return np.asarray(data[name])


def _present(values: np.ndarray) -> np.ndarray:
    """False where an identifier (cluster or fixed effect) is missing: None or nan, as Stata drops them."""
    if values.dtype.kind == "f":
        return np.isfinite(values)
    if values.dtype.kind == "O":
        return np.array([v is not None and v == v for v in values], dtype=bool)
    return np.ones(len(values), dtype=bool)


def prepare(data, variables: list[str], fixed_effects: list[str], cluster: str | None,
            weights: str | None = None, trend_group: str | None = None, trend_var: str | None = None,
            singletons: str = "drop") -> dict:
    """Select complete cases, drop singletons and code the fixed effects.

    Returns a dict with the float matrix of ``variables``, the coded fixed effects, cluster
    codes, weights, and the boolean row mask into the input.
    """
    if singletons not in ("drop", "keep"):
        raise ValueError("singletons must be 'drop' or 'keep'")
    cols = {v: np.asarray(_column(data, v), dtype=float) for v in variables}
    n = len(next(iter(cols.values())))
    mask = np.ones(n, dtype=bool)
    for v in cols.values():
        mask &= np.isfinite(v)
    w_all = None
    if weights is not None:
        w_all = np.asarray(_column(data, weights), dtype=float)
        mask &= np.isfinite(w_all) & (w_all > 0)
    raw_fe = {f: np.asarray(_column(data, f)) for f in fixed_effects}
    clus_raw = np.asarray(_column(data, cluster)) if cluster else None
    if trend_var is not None:
        mask &= np.isfinite(np.asarray(_column(data, trend_var), dtype=float))
    if clus_raw is not None:
        mask &= _present(clus_raw)
    for f in fixed_effects:
        mask &= _present(raw_fe[f])
    idx = np.flatnonzero(mask)
    fe_codes = {f: _codes(raw_fe[f][idx])[0] for f in fixed_effects}
    if singletons == "drop" and fe_codes:
        keep = drop_singletons(list(fe_codes.values()))
        idx = idx[keep]
    final = np.zeros(n, dtype=bool)
    final[idx] = True
    out = {
        "mask": final,
        "X": np.column_stack([cols[v][idx] for v in variables]),
        # without any fixed effect or trend, absorbing one all-encompassing group = an intercept
        "absorb": [(_codes(raw_fe[f][idx])) for f in fixed_effects]
        or ([] if trend_group is not None else [(np.zeros(len(idx), dtype=np.int64), 1)]),
        "w": None if w_all is None else w_all[idx],
        "cluster": None if clus_raw is None else _codes(clus_raw[idx])[0],
        "trends": None,
    }
    if trend_group is not None:
        g, L = _codes(np.asarray(_column(data, trend_group))[idx])
        out["trends"] = (g, L, np.asarray(_column(data, trend_var), dtype=float)[idx])
    return out


def twfe(df, y: str, x, controls=None, entity: str | None = "city_code", time: str | None = "year",
         cluster: str | None = "city_code", *, weights: str | None = None, trends: str | None = None,
         trend_var: str | None = None, singletons: str = "drop", extra_fe: list[str] | None = None) -> EstimationResult:
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

    Returns
    -------
    EstimationResult
        ``coef``/``se``/… of the core regressor; ``params``/``bse`` of all regressors and ``_cons``.
    """
    xs = [x] if isinstance(x, str) else list(x)
    controls = list(controls or [])
    regressors = xs + [c for c in controls if c not in xs]
    fes = [f for f in (entity, time) if f is not None] + list(extra_fe or [])
    tvar = trend_var or time
    prep = prepare(df, [y] + regressors, fes, cluster, weights, trends, tvar if trends else None, singletons)
    return fit_prepared(prep, y, regressors, cluster is not None)


def fit_prepared(prep: dict, y: str, regressors: list[str], clustered: bool) -> EstimationResult:
    """OLS on prepared data (see :func:`prepare`); the first regressor is the core one."""
    data = prep["X"]
    n, k = data.shape[0], len(regressors)
    if n <= k + 1:
        raise EstimationError(f"only {n} observations for {k} regressors")
    w = np.ones(n) if prep["w"] is None else prep["w"]
    tilde = demean(data, prep["absorb"], prep["w"], prep["trends"])
    yt, Xt = tilde[:, 0], tilde[:, 1:]
    beta, xtwx_inv = _wls(Xt, yt, w, regressors)
    resid = yt - Xt @ beta
    G, K, clusters = _dof(prep, k, n, clustered)
    V = _sandwich(Xt, resid, w, xtwx_inv, clusters, G, n, K)
    se = np.sqrt(np.diag(V))
    ymean = np.average(data[:, 0], weights=w)
    rss = float(np.sum(w * resid**2))
    tss = float(np.sum(w * (data[:, 0] - ymean) ** 2))
    tss_within = float(np.sum(w * yt**2))
    # reghdfe's constant: add back the means and estimate the intercept with the same vce
    means = np.average(data, axis=0, weights=w)
    Xc = np.column_stack([Xt + means[1:], np.ones(n)])
    bc, inv_c = _wls(Xc, yt + means[0], w, regressors + ["_cons"])
    rc = yt + means[0] - Xc @ bc
    Vc = _sandwich(Xc, rc, w, inv_c, clusters, G, n, K) if prep["absorb"] or prep["trends"] else None
    df_t = (G - 1) if clustered else (n - K)
    t = float(beta[0] / se[0]) if se[0] > 0 else math.nan
    p, q = _t_dist(t, df_t)
    params = {r: float(b) for r, b in zip(regressors, beta)}
    bse = {r: float(s) for r, s in zip(regressors, se)}
    params["_cons"] = float(bc[-1])
    if Vc is not None:
        bse["_cons"] = float(math.sqrt(Vc[-1, -1]))
    tvals = {r: params[r] / bse[r] if bse.get(r) else math.nan for r in bse}
    pvals = {r: _t_dist(tv, df_t)[0] for r, tv in tvals.items()}
    return EstimationResult(
        coef=float(beta[0]), se=float(se[0]), t=t, p=p, ci=(float(beta[0] - q * se[0]), float(beta[0] + q * se[0])),
        nobs=int(n), n_clusters=int(G) if clustered else None, r2=1.0 - rss / tss if tss > 0 else math.nan,
        r2_within=1.0 - rss / tss_within if tss_within > 0 else math.nan, regressor=regressors[0], params=params,
        bse=bse, df_resid=int(df_t), vcov_type="CR1" if clustered else "HC1",
        extra={"df_k": int(K), "t_stats": tvals, "p_values": pvals, "rss": rss})


def _wls(X, y, w, names):
    sw = np.sqrt(w)
    Xw = X * sw[:, None]
    xtx = Xw.T @ Xw
    try:
        inv = np.linalg.inv(xtx)
    except np.linalg.LinAlgError:
        inv = None
    cond = np.linalg.cond(xtx) if inv is not None else np.inf
    if inv is None or not np.isfinite(cond) or cond > 1e13:
        scale = np.sqrt(np.diag(xtx))
        bad = [nm for nm, s in zip(names, scale) if s < 1e-10 * max(scale.max(), 1.0)]
        what = f"{bad} have no variation left after the fixed effects" if bad else "the regressors are collinear"
        raise EstimationError(f"cannot estimate: {what}")
    beta = inv @ (Xw.T @ (y * sw))
    return beta, inv


def _dof(prep, k: int, n: int, clustered: bool):
    """(G, K, cluster codes): K counts regressors and non-nested fixed-effect levels (pyfixest
    ``k_fixef='nonnested'``, which equals reghdfe's count with a reported constant)."""
    clusters = prep["cluster"] if clustered else np.arange(n)
    G = int(clusters.max() + 1) if clustered else n
    absorbed = list(prep["absorb"])
    raw = [g for g, _ in absorbed]
    if prep["trends"] is not None:
        # intercepts and slopes of the group trends: two sets of levels, both nested in the group
        g, L, _ = prep["trends"]
        absorbed = [(g, L), (g, L)] + absorbed
        raw = [g, g] + raw
    n_fe = len(absorbed)
    if n_fe == 0:
        return G, k + 1, clusters  # a constant is estimated
    k_fe = sum(L for _, L in absorbed)
    k_fe_adj = k_fe - (n_fe - 1)
    nested = [clustered and _nested(r, clusters) for r in raw]
    k_fe_nested = sum(L for (_, L), nst in zip(absorbed, nested) if nst)
    n_fully = sum(nested)
    K = k + k_fe_adj - k_fe_nested + n_fully if k_fe_nested else k + k_fe_adj
    return G, int(K), clusters


def _sandwich(X, e, w, bread, clusters, G, n, K):
    we = w * e
    meat_parts = np.column_stack([np.bincount(clusters, weights=X[:, j] * we, minlength=G)
                                  for j in range(X.shape[1])])
    meat = meat_parts.T @ meat_parts
    q = (G / (G - 1)) * ((n - 1) / (n - K)) if G < n else n / (n - K)
    return q * bread @ meat @ bread
