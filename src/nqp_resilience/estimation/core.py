"""The estimation core shared by fixed-effects OLS (:mod:`~nqp_resilience.estimation.ols`),
2SLS (:mod:`~nqp_resilience.estimation.iv`) and any estimator built on the same design (e.g. a
wild cluster bootstrap): sample preparation, the within transformation, the solve on the
residualised design with the collinearity rule, the cluster sandwich and the degrees of freedom.

Numpy only at import time (scipy's t distribution is loaded inside :func:`t_dist`). Every function
here is public and documented; the estimators use nothing else of each other.

Pieces, in the order an estimator uses them
-------------------------------------------
:func:`check_option`, :func:`check_columns`
    Options against their ``Literal`` types, and names against the columns (project errors with
    the allowed values or a did-you-mean hint).
:func:`prepare`
    Complete cases (any missing value deletes the row), iterative singleton dropping
    (:func:`drop_singletons`), integer codes of the fixed effects, clusters and trend groups.
:func:`demean`
    The within transformation: alternating projections over the fixed effects (weighted group
    means), group-specific linear trends projected out group by group; columns are centred first
    and convergence is judged relative to each centred column (scale invariance).
:func:`screen_columns`, :func:`select_regressors`, :func:`why_dropped`
    The absorption and collinearity rule on the residualised design, relative to each column's
    own norm (``COLLIN_TOL``): absorbed or collinear controls are omitted with a note (reghdfe),
    a core regressor is an error.
:func:`wls`
    β = (X̃'WX̃)⁻¹X̃'Wỹ by QR of the column-equilibrated design; returns β and the bread
    (X̃'WX̃)⁻¹.
:func:`dof`
    (G, K, cluster codes): K counts the regressors and the fixed-effect levels not nested in the
    clusters, with reghdfe's redundant levels (mobility groups by :func:`connected_components`).
:func:`sandwich`, :func:`small_sample`
    CR1: V = q (X̃'WX̃)⁻¹ [Σ_g u_g u_g'] (X̃'WX̃)⁻¹, u_g = Σ_{i∈g} w_i x̃_i e_i,
    q = G/(G − 1)·(N − 1)/(N − K); HC1 (every observation its own cluster, G = N): q = N/(N − K).
:func:`t_dist`
    Two-sided p-value and 97.5 % quantile of Student's t (G − 1 df when clustered, N − K else).
:func:`xtwx`, :func:`wresid`, :func:`cluster_sums`
    Weighted cross products, weighted partialling out (FWL) and within-cluster sums of scores.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np

from nqp_resilience.errors import EstimationError, ProjectError, UnknownVariableError
from nqp_resilience.estimation import large

__all__ = [
    "COLLIN_TOL",
    "absorbed_dof",
    "OnCollinear",
    "ON_COLLINEAR",
    "OptionError",
    "SINGLETON_OPTIONS",
    "Singletons",
    "absorbed_by",
    "check_columns",
    "check_option",
    "cluster_sums",
    "codes",
    "connected_components",
    "demean",
    "dof",
    "drop_singletons",
    "id_column",
    "is_missing",
    "is_nested",
    "numeric_column",
    "prepare",
    "present",
    "sandwich",
    "sandwich_scores",
    "screen_columns",
    "select_regressors",
    "small_sample",
    "t_dist",
    "why_dropped",
    "wls",
    "wmean",
    "wresid",
    "wresid_many",
    "xtwx",
]

#: Singleton groups of a fixed effect: dropped iteratively (reghdfe's default) or kept.
Singletons = Literal["drop", "keep"]
#: A control absorbed by the fixed effects or collinear: omitted with a note (reghdfe) or an error.
OnCollinear = Literal["omit", "error"]
SINGLETON_OPTIONS: tuple[str, ...] = get_args(Singletons)
ON_COLLINEAR: tuple[str, ...] = get_args(OnCollinear)

#: Relative tolerance of the absorption and collinearity tests (squared residual norm relative to
#: the squared norm of the column; fixest/pyfixest's default ``collin.tol`` is 1e-9 too, and
#: reghdfe flags a variable as absorbed below 1e-9 of its sum of squares).
COLLIN_TOL = 1e-9


class OptionError(ProjectError, ValueError):
    """An estimator option outside its allowed values (``ValueError`` is a second base so that
    code written against the earlier plain ``ValueError`` keeps working).

    Parameters
    ----------
    source : str
        The estimator (``"twfe"``, ``"iv_twfe"``, ``"psm"``).
    option : str
        The keyword, e.g. ``"singletons"``.
    value : object
        The value given.
    allowed : tuple of str
        The allowed values (the ``Literal`` type's arguments).
    """

    def __init__(self, source: str, option: str, value, allowed: tuple):
        self.source, self.option, self.value, self.allowed = source, option, value, tuple(allowed)
        choices = ", ".join(repr(a) for a in self.allowed)
        self.problem = f"{source}: {option} must be one of {choices}, not {value!r}"
        self.hint = f"pass {option}=" + " or ".join(repr(a) for a in self.allowed)
        super().__init__(f"{self.problem}\n  hint: {self.hint}")


def check_option(value, allowed: tuple, option: str, source: str) -> None:
    """Raise :class:`OptionError` unless ``value`` is one of ``allowed`` (e.g.
    ``get_args(Singletons)``); estimators call this before touching the data."""
    if value not in allowed:
        raise OptionError(source, option, value, allowed)


def codes(values) -> tuple[np.ndarray, int]:
    """Integer codes 0..L−1 for any 1-d array of labels (mixed-type labels compared as text).

    The codes number the distinct labels in sorted order (``np.unique``'s inverse). Integer
    labels, or integral floats, whose range is at most a few times their count (city codes,
    years, firm ids) are coded in linear time through a table of the range: the same codes.
    """
    values = np.asarray(values)
    fast = _dense_codes(values)
    if fast is not None:
        return fast
    try:
        uniq, inv = np.unique(values, return_inverse=True)
    except TypeError:
        uniq, inv = np.unique(values.astype(str), return_inverse=True)
    return inv.astype(np.int64).reshape(-1), len(uniq)


def _dense_codes(values: np.ndarray) -> tuple[np.ndarray, int] | None:
    n = values.size
    if n == 0 or values.ndim != 1 or values.dtype.kind not in "iuf":
        return None
    lo, hi = values.min(), values.max()
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > 4 * n + 1024:
        return None
    if values.dtype.kind == "f":
        ints = values.astype(np.int64)
        if not np.array_equal(ints, values):
            return None
        values, lo = ints, int(lo)
    offset = values - lo
    seen = np.zeros(int(hi - lo) + 1, dtype=bool)
    seen[offset] = True
    rank = np.cumsum(seen, dtype=np.int64) - 1
    return rank[offset], int(rank[-1] + 1)


def check_columns(data, roles: dict, source: str) -> None:
    """Raise :class:`UnknownVariableError` (with a did-you-mean hint) for the first name in
    ``roles`` (name → role) that is not a column of ``data``."""
    for name, role in roles.items():
        if name is not None and name not in data:
            raise UnknownVariableError(name, role, list(data.keys()), source=source)


def numeric_column(data, name: str, source: str = "twfe") -> np.ndarray:
    """The column as float64 with every missing value (None, NaN, ``pd.NA`` of the nullable
    dtypes ``Float64``/``Int64``/``boolean``) as NaN, so that it is deleted listwise."""
    col = data[name]
    to_numpy = getattr(col, "to_numpy", None)
    try:
        if to_numpy is not None:
            return np.asarray(to_numpy(dtype=float, na_value=np.nan), dtype=float).reshape(-1)
        arr = np.asarray(col)
        if arr.dtype.kind == "O":
            return np.array([np.nan if is_missing(v) else float(v) for v in arr], dtype=float)
        return arr.astype(float).reshape(-1)
    except (TypeError, ValueError):
        dtype = getattr(col, "dtype", type(col))
        raise EstimationError(
            f"{source}: variable '{name}' is not numeric (dtype {dtype})",
            hint="convert it to numbers, or use it as a fixed effect or cluster instead",
            variable=name,
        ) from None


def is_missing(v) -> bool:
    """None, NaN, ``pd.NA``/``pd.NaT`` (whose comparisons do not return a bool)."""
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pd.NA: "boolean value of NA is ambiguous"
        return True


def id_column(data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) of an identifier column (fixed effect or cluster): numbers or labels;
    missing values (None, NaN, ``pd.NA``) are marked absent, as Stata drops them."""
    col = data[name]
    isna = getattr(col, "isna", None)
    if isna is not None:
        ok = ~np.asarray(isna(), dtype=bool).reshape(-1)
        values = np.asarray(col.to_numpy() if hasattr(col, "to_numpy") else col).reshape(-1)
        return values, ok
    values = np.asarray(col).reshape(-1)
    return values, present(values)


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


def group_sums(x: np.ndarray, g: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, k) sums of the rows of ``x`` (n, k) by group code ``g``.

    A ``bincount`` per column for a few columns; for wide matrices one ``bincount`` over the
    flattened matrix, several times faster. Both add each column's values in row order, exactly
    as ``np.add.at`` would: the same bits whichever is taken."""
    x = np.ascontiguousarray(x, dtype=float)
    n, k = x.shape
    if k <= 16:  # a few columns: one bincount per column is faster (and adds in the same order)
        out = np.empty((n_groups, k))
        for j in range(k):
            out[:, j] = np.bincount(g, weights=x[:, j], minlength=n_groups)
        return out
    idx = (np.asarray(g, dtype=np.int64)[:, None] * k + np.arange(k, dtype=np.int64)).ravel()
    return np.bincount(idx, weights=x.ravel(), minlength=n_groups * k).reshape(n_groups, k)


def _group_means(x: np.ndarray, g: np.ndarray, w: np.ndarray | None, n_groups: int) -> np.ndarray:
    sw = np.bincount(g, weights=w, minlength=n_groups)
    return (group_sums(x if w is None else w[:, None] * x, g, n_groups) / sw[:, None])[g]


def _group_trend_fit(
    x: np.ndarray, g: np.ndarray, t: np.ndarray, w: np.ndarray, n_groups: int
) -> np.ndarray:
    """Fitted values of a weighted regression of each column on (1, t) within each group."""
    s0 = np.bincount(g, weights=w, minlength=n_groups)
    s1 = np.bincount(g, weights=w * t, minlength=n_groups)
    s2 = np.bincount(g, weights=w * t * t, minlength=n_groups)
    det = s0 * s2 - s1 * s1
    if np.any(det[np.unique(g)] <= 1e-12 * np.maximum(s0 * s2, 1.0)[np.unique(g)]):
        raise EstimationError(
            "a group-specific trend needs at least two distinct periods in every group"
        )
    b0 = group_sums(w[:, None] * x, g, n_groups)
    b1 = group_sums((w * t)[:, None] * x, g, n_groups)
    a = (s2[:, None] * b0 - s1[:, None] * b1) / det[:, None]
    b = (s0[:, None] * b1 - s1[:, None] * b0) / det[:, None]
    return a[g] + b[g] * t[:, None]


def demean(
    x: np.ndarray,
    absorb: list[tuple[np.ndarray, int]],
    w: np.ndarray | None = None,
    trends: tuple[np.ndarray, int, np.ndarray] | None = None,
    tol: float = 1e-13,
    maxiter: int = 10_000,
) -> np.ndarray:
    """Partial out fixed effects (and group trends) from the columns of ``x``.

    Parameters
    ----------
    x : (n, k) array
    absorb : list of (codes, n_levels)
    w : weights or None
    trends : (codes, n_levels, t) for group-specific intercepts and linear trends, or None
    tol : convergence tolerance of the alternating projections: the largest change of a sweep,
        relative to the largest absolute value of that column after centring,
        max_i |Δx_ij| / max_i |x_ij − x̄_j| < tol for every column j (invariant to x → a·x + b)

    Notes
    -----
    Every projection contains the constant, so the columns are first centred at their
    (weighted) means: this changes no result and keeps large means (population in persons) from
    costing digits in the group means.
    """
    if trends is None and large.is_large(len(x)):
        order = large.balanced_pairs(absorb, w)
        if order is not None:
            return large.demean_balanced(
                np.asarray(x, dtype=float), order, absorb[0][1], absorb[1][1]
            )
    x = np.array(x, dtype=float, copy=True)
    w_fe = None if w is None else np.asarray(w, dtype=float)
    w = np.ones(len(x)) if w is None else w_fe
    projections = [("fe", g, L, None) for g, L in absorb]
    if trends is not None:
        projections.insert(0, ("trend", trends[0], trends[1], np.asarray(trends[2], dtype=float)))
    if not projections:
        return x
    if len(x):
        x -= np.average(x, axis=0, weights=w)
    scale = np.abs(x).max(axis=0) if len(x) else np.ones(x.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    if trends is None and len(absorb) > 1 and large.is_large(len(x)):
        return _demean_irons_tuck(x, absorb, w_fe, scale, tol, maxiter)
    for _ in range(maxiter):
        before = x.copy()
        for kind, g, L, t in projections:
            x -= _group_means(x, g, w_fe, L) if kind == "fe" else _group_trend_fit(x, g, t, w, L)
        if len(projections) == 1 or np.max(np.abs(x - before) / scale) < tol:
            return x
    raise EstimationError(f"alternating projections did not converge in {maxiter} iterations")


def _demean_irons_tuck(x, absorb, w, scale, tol: float, maxiter: int) -> np.ndarray:
    """Alternating projections accelerated by Irons and Tuck's extrapolation (as fixest does),
    column by column: from x, F(x) and F(F(x)) (F one sweep over the fixed effects) the step
    x' = F²(x) − (ΔF·Δ²/Δ²·Δ²)·ΔF with ΔF = F²(x) − F(x), Δ² = ΔF − F(x) + x. Convergence is
    judged on each plain sweep as in :func:`demean` (no extra sweep); the large-sample path of
    an unbalanced panel."""

    # columns as contiguous rows: each bincount and gather reads one contiguous vector
    sums_w = [np.bincount(g, weights=w, minlength=L) for g, L in absorb]

    def sweep(v):
        v = v.copy()
        for (g, L), sw in zip(absorb, sums_w, strict=True):
            for row in v:
                row -= (np.bincount(g, weights=row if w is None else w * row, minlength=L) / sw)[g]
        return v

    x = np.ascontiguousarray(x.T)
    scale = scale[:, None]
    for _ in range(maxiter):
        gx = sweep(x)
        if np.max(np.abs(gx - x) / scale) < tol:
            return np.ascontiguousarray(gx.T)
        ggx = sweep(gx)
        d_gx = ggx - gx
        if np.max(np.abs(d_gx) / scale) < tol:
            return np.ascontiguousarray(ggx.T)
        d2 = d_gx - gx + x
        den = np.einsum("ij,ij->i", d2, d2)
        num = np.einsum("ij,ij->i", d_gx, d2)
        coef = np.divide(num, den, out=np.zeros_like(den), where=den > 0)
        x = ggx - coef[:, None] * d_gx
    raise EstimationError(f"alternating projections did not converge in {maxiter} iterations")


def is_nested(fe: np.ndarray, cluster: np.ndarray) -> bool:
    """Is every level of ``fe`` inside a single cluster? (Both are integer codes.)

    A level's mean cluster code equals each of its cluster codes exactly iff they are all equal.
    """
    fe, cluster = np.asarray(fe, dtype=np.int64), np.asarray(cluster, dtype=np.int64)
    n = np.bincount(fe)
    mean = np.bincount(fe, weights=cluster.astype(float)) / np.maximum(n, 1)
    return bool(np.all(cluster == mean[fe]))


def t_dist(t: float, df: int) -> tuple[float, float]:
    """Two-sided p-value 2·F_t(−|t|; df) and the 97.5 % quantile of Student's t with ``df``
    degrees of freedom (``scipy.special``'s kernels, loaded by
    :mod:`nqp_resilience.scipy_kernels`: ``scipy.stats`` costs about a second to import)."""
    from nqp_resilience.scipy_kernels import special

    stdtr, stdtrit = special("stdtr", "stdtrit")

    return float(2.0 * stdtr(df, -abs(t))), float(stdtrit(df, 0.975))


def present(values: np.ndarray) -> np.ndarray:
    """False where an identifier (cluster or fixed effect) is missing: None, nan or ``pd.NA``, as
    Stata drops them."""
    if values.dtype.kind == "f":
        return np.isfinite(values)
    if values.dtype.kind == "O":
        return np.array([not is_missing(v) for v in values], dtype=bool)
    return np.ones(len(values), dtype=bool)


def prepare(
    data,
    variables: list[str],
    fixed_effects: list[str],
    cluster: str | None,
    weights: str | None = None,
    trend_group: str | None = None,
    trend_var: str | None = None,
    singletons: Singletons = "drop",
) -> dict:
    """Select complete cases, drop singletons and code the fixed effects.

    Missing values of any kind (NaN, None, ``pd.NA`` of the nullable dtypes, ±inf) delete the
    row listwise.

    Returns
    -------
    dict
        ``mask`` (n_input,) bool: the rows of the input used; ``X`` (n, len(variables)) float:
        the variables in the order given; ``absorb``: list of (codes, n_levels), one per fixed
        effect (a single all-encompassing group, i.e. an intercept, when there is neither a
        fixed effect nor a trend); ``fe_names``; ``w`` (n,) weights or None; ``cluster`` (n,)
        codes or None; ``trends``: (codes, n_levels, t) of the group trends or None.
    """
    check_option(singletons, SINGLETON_OPTIONS, "singletons", "prepare")
    cols = {v: numeric_column(data, v) for v in variables}
    n = len(next(iter(cols.values())))
    mask = np.ones(n, dtype=bool)
    for v in cols.values():
        mask &= np.isfinite(v)
    w_all = None
    if weights is not None:
        w_all = numeric_column(data, weights)
        mask &= np.isfinite(w_all) & (w_all > 0)
    raw_fe = {}
    for f in fixed_effects:
        raw_fe[f], ok = id_column(data, f)
        mask &= ok
    clus_raw = None
    if cluster:
        clus_raw, ok = id_column(data, cluster)
        mask &= ok
    trend_t = None
    if trend_var is not None:
        trend_t = numeric_column(data, trend_var)
        mask &= np.isfinite(trend_t)
    trend_raw = None
    if trend_group is not None:
        trend_raw, ok = id_column(data, trend_group)
        mask &= ok
    idx = np.flatnonzero(mask)
    fe_codes = {f: codes(raw_fe[f][idx]) for f in fixed_effects}
    if singletons == "drop" and fe_codes:
        keep = drop_singletons([c for c, _ in fe_codes.values()])
        if not keep.all():
            idx = idx[keep]
            fe_codes = {f: codes(raw_fe[f][idx]) for f in fixed_effects}
    final = np.zeros(n, dtype=bool)
    final[idx] = True
    out = {
        "mask": final,
        "X": np.column_stack(
            [cols[v] for v in variables] if len(idx) == n else [cols[v][idx] for v in variables]
        ),
        # without any fixed effect or trend, absorbing one all-encompassing group = an intercept
        "absorb": [fe_codes[f] for f in fixed_effects]
        or ([] if trend_group is not None else [(np.zeros(len(idx), dtype=np.int64), 1)]),
        "fe_names": list(fixed_effects),
        "w": None if w_all is None else w_all[idx],
        "cluster": None if clus_raw is None else _cluster_codes(cluster, clus_raw, idx, fe_codes),
        "trends": None,
    }
    if trend_group is not None:
        g, L = codes(trend_raw[idx])
        out["trends"] = (g, L, trend_t[idx])
    return out


def _cluster_codes(name: str, raw: np.ndarray, idx: np.ndarray, fe_codes: dict) -> np.ndarray:
    """Codes of the cluster column: those of the fixed effect of the same name when there is one
    (clustering by the entity), else coded anew."""
    if name in fe_codes:
        return fe_codes[name][0]
    return codes(raw[idx])[0]


# --------------------------------------------------------------------------------------------
# Absorbed and collinear regressors
# --------------------------------------------------------------------------------------------


def screen_columns(
    tilde: np.ndarray, raw: np.ndarray, w: np.ndarray, tol: float = COLLIN_TOL
) -> list[tuple[str, list[int]]]:
    """Classify the columns of a FE-residualised design, in order.

    Parameters
    ----------
    tilde : (n, k) array
        The columns after the fixed effects are partialled out.
    raw : (n, k) array
        The same columns before (to measure how much of each the fixed effects absorb).
    w : (n,) array of positive weights
    tol : relative tolerance (``COLLIN_TOL``)

    Returns
    -------
    list of (status, partners), one per column
        ``("constant", [])`` if the raw column takes one value; ``("absorbed", [])`` if
        Σw x̃² ≤ tol·Σw (x − x̄)² (the fixed effects explain all but a share tol of its variance);
        ``("collinear", partners)`` if, with every column scaled to unit weighted norm, the
        squared norm of its residual on the columns kept before it is ≤ tol (``partners``: the
        indices of the kept columns with a coefficient above 1e-6 in that regression);
        ``("ok", [])`` otherwise. Both tests are invariant to x → a·x + b and to the scale of w.
    """
    if large.is_large(len(tilde)) and len(tilde):
        return large.screen_gram(tilde, raw, w, tol)
    sw = np.sqrt(w / np.max(w))
    n, k = tilde.shape
    basis = np.empty((n, 0))
    kept: list[int] = []
    units = np.empty((n, k))
    out: list[tuple[str, list[int]]] = []
    mean = np.average(raw, axis=0, weights=w) if n else np.zeros(k)
    for j in range(k):
        ss_raw = float(np.sum((sw * (raw[:, j] - mean[j])) ** 2))
        v = sw * tilde[:, j]
        ss_til = float(v @ v)
        if n == 0 or np.ptp(raw[:, j]) == 0:
            out.append(("constant", []))
            continue
        if ss_til <= tol * ss_raw:
            out.append(("absorbed", []))
            continue
        v = v / math.sqrt(ss_til)
        units[:, j] = v
        r = v.copy()
        for _ in range(2):  # Gram–Schmidt twice: orthogonal to working precision
            r -= basis @ (basis.T @ r)
        rr = float(r @ r)
        if rr <= tol:
            coef = np.linalg.lstsq(units[:, kept], v, rcond=None)[0]
            out.append(("collinear", [kept[i] for i in np.flatnonzero(np.abs(coef) > 1e-6)]))
            continue
        basis = np.column_stack([basis, r / math.sqrt(rr)])
        kept.append(j)
        out.append(("ok", []))
    return out


def absorbed_by(raw: np.ndarray, prep: dict) -> str | None:
    """Name of the first fixed effect within whose groups ``raw`` is constant (None if none)."""
    spread = np.max(np.abs(raw - raw.mean())) if raw.size else 0.0
    for name, (codes, n_levels) in zip(prep.get("fe_names", []), prep["absorb"], strict=False):
        means = np.bincount(codes, weights=raw, minlength=n_levels) / np.maximum(
            np.bincount(codes, minlength=n_levels), 1
        )
        if np.max(np.abs(raw - means[codes])) <= 1e-9 * spread:
            return name
    return None


def why_dropped(status: str, partners: list[str], raw: np.ndarray, prep: dict) -> str:
    """Human reason for an absorbed or collinear column, as reghdfe words its notes."""
    if status == "constant":
        return "it is constant in the estimation sample"
    if status == "absorbed":
        fe_name = absorbed_by(raw, prep)
        fes = [f for f in prep.get("fe_names", [])]
        lead = "it has no variation left after the fixed effects: "
        if fe_name is not None:
            return lead + (
                f"it does not vary within {fe_name}, so the {fe_name} fixed effect absorbs it"
            )
        if prep.get("trends") is not None:
            return lead + "the fixed effects and group trends absorb it"
        return lead + (
            "it is a combination of the fixed effects" + (f" ({', '.join(fes)})" if fes else "")
            if fes
            else "it is constant in the estimation sample"
        )
    if partners:
        return "it is collinear with " + ", ".join(partners) + " (after the fixed effects)"
    return "it is collinear with the other regressors (after the fixed effects)"


def select_regressors(
    tilde: np.ndarray,
    raw: np.ndarray,
    w: np.ndarray,
    names: list[str],
    n_core: int,
    prep: dict,
    on_collinear: OnCollinear = "omit",
    *,
    roles: tuple[str, str] = ("regressor", "control"),
    source: str = "twfe",
    status: list[tuple[str, list[int]]] | None = None,
) -> tuple[list[int], list[str], list[str]]:
    """Apply the absorption and collinearity rule to the regressors (columns of ``tilde``).

    The first ``n_core`` columns must survive (else :class:`EstimationError` naming the
    variable); the others (controls) are omitted with a note, or raise with
    ``on_collinear="error"``. Returns (kept column indices, omitted names, notes).

    ``status`` may give the statuses already computed (:class:`~nqp_resilience.estimation.
    large.GramScreen`); ``tilde`` is then not read, and ``raw`` only for the columns that fail.
    """
    if status is None:
        status = screen_columns(tilde, raw, w)
    kept, omitted, notes = [], [], []
    for j, (st, partners) in enumerate(status):
        if st == "ok":
            kept.append(j)
            continue
        why = why_dropped(st, [names[i] for i in partners], raw[:, j], prep)
        role = roles[0] if j < n_core else roles[1]
        if j < n_core:
            raise EstimationError(
                f"{source}: cannot estimate the effect of {role} '{names[j]}': {why}",
                hint=(
                    "a regressor must vary within the fixed-effect groups; drop the fixed "
                    "effect that absorbs it or choose another regressor"
                    if st != "collinear"
                    else "remove the variables it is collinear with, or choose another regressor"
                ),
                variable=names[j],
            )
        if on_collinear == "error":
            raise EstimationError(
                f"{source}: {role} '{names[j]}' cannot be estimated: {why}",
                variable=names[j],
                hint=f"remove '{names[j]}' from the controls, or let it be omitted "
                "(on_collinear: omit)",
            )
        omitted.append(names[j])
        notes.append(f"{names[j]} omitted: {why}")
    return kept, omitted, notes


# --------------------------------------------------------------------------------------------
# Solve, degrees of freedom, sandwich
# --------------------------------------------------------------------------------------------


def wls(X, y, w, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares by QR of the column-equilibrated design.

    Returns (β, (X'WX)⁻¹). Columns are scaled to unit weighted norm first, so the result does not
    depend on their units: (X'WX)⁻¹ = D⁻¹R⁻¹R⁻ᵀD⁻¹ with √W·X·D⁻¹ = QR. A column whose residual on
    the columns before it is below √``COLLIN_TOL`` of its norm raises :class:`EstimationError`.
    """
    if large.is_large(len(w)):
        fit = large.lstsq_tall(X, y[:, None], w)
        if fit is not None:
            coef, rinv, d = fit
            return coef[:, 0], (rinv @ rinv.T) / np.outer(d, d) / np.max(w)
    sw = np.sqrt(w / np.max(w)) if len(w) else np.sqrt(w)
    Xw = X * sw[:, None]
    d = np.linalg.norm(Xw, axis=0)
    bad = [nm for nm, dj in zip(names, d, strict=True) if not dj > 0]
    if bad:
        raise EstimationError(
            f"cannot estimate: {bad} have no variation left after the fixed effects",
            hint="drop these variables or the fixed effect that absorbs them",
        )
    q, r = np.linalg.qr(Xw / d)
    diag = np.abs(np.diag(r))
    if np.any(diag <= math.sqrt(COLLIN_TOL)):
        j = int(np.argmax(diag <= math.sqrt(COLLIN_TOL)))
        raise EstimationError(
            f"cannot estimate: the regressors are collinear ('{names[j]}' is a combination "
            "of the ones before it)",
            hint="remove one of the collinear variables",
        )
    rinv = np.linalg.solve(r, np.eye(r.shape[0]))
    beta = (rinv @ (q.T @ (y * sw))) / d
    inv = (rinv @ rinv.T) / np.outer(d, d) / np.max(w)
    return beta, inv


def connected_components(a: np.ndarray, b: np.ndarray, n_a: int, n_b: int) -> int:
    """Number of connected components (mobility groups) of the bipartite graph whose edges are
    the observations (level a_i of one fixed effect, level b_i of the other).

    Union–find by hooking and pointer jumping in numpy: every node points to the smallest node
    label of its component at the fixpoint; levels are 0..n−1 and all of them occur.
    """
    u, v = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64) + n_a
    label = np.arange(n_a + n_b)
    while True:
        lu, lv = label[u], label[v]
        if np.array_equal(lu, lv):
            break
        low = np.minimum(lu, lv)
        np.minimum.at(label, lu, low)  # hook each root onto the smaller root of its edges
        np.minimum.at(label, lv, low)
        while True:  # compress: point every node at its root
            nxt = label[label]
            if np.array_equal(nxt, label):
                break
            label = nxt
    return int(np.unique(label).size)


def dof(prep: dict, k: int, n: int, clustered: bool) -> tuple[int, int, np.ndarray]:
    """(G, K, cluster codes) with reghdfe's count of the absorbed degrees of freedom.

    Without clusters every observation is its own cluster: G = n and the codes are 0..n−1, so
    that :func:`sandwich` gives HC1. Fewer than two clusters is an :class:`EstimationError`.

    K = k + Σ_f (L_f − redundant_f) over the sets of fixed-effect levels (city, year, … and the
    intercepts and slopes of group trends), with reghdfe's redundant levels: all L_f for a set
    nested in the clusters; 0 for the first set that is not nested; at least 1 for every later
    one, and for a pair of non-nested fixed-effect intercepts the number of mobility groups
    (connected components of their bipartite graph; ``dofadjustments(pairwise)``). With every set
    nested the constant is counted instead (K = k + 1). k counts the regressors actually estimated.
    """
    clusters = prep["cluster"] if clustered else np.arange(n)
    G = int(clusters.max() + 1) if clustered and n else n
    if clustered and G < 2:
        raise EstimationError(
            "cluster-robust standard errors need at least two clusters; the estimation sample "
            f"has {G}",
            hint="cluster by a coarser-grained but non-constant variable, or set the cluster to "
            "none (heteroskedasticity-robust standard errors)",
        )
    sets = []  # (codes, levels, is an intercept)
    if prep["trends"] is not None:
        # intercepts and slopes of the group trends: two sets of levels
        g, L, _ = prep["trends"]
        sets += [(g, L, True), (g, L, False)]
    sets += [(g, L, True) for g, L in prep["absorb"]]
    # the count depends on the sample and the clusters only: kept for the next stage (IV)
    key = ("absorbed_dof", clustered)
    if key not in prep:
        prep[key] = absorbed_dof(sets, clusters if clustered else None)
    return G, k + prep[key], clusters


def absorbed_dof(sets: list[tuple], clusters=None) -> int:
    """Degrees of freedom of the absorbed fixed effects as reghdfe counts them (``df_a``).

    Parameters
    ----------
    sets : list of (codes, n_levels, is_intercept)
        The sets of fixed-effect levels in order (the intercepts and slopes of group trends
        first, then the fixed effects).
    clusters : integer cluster codes, or None (heteroskedasticity-robust: nothing is nested)

    Returns
    -------
    int
        Σ_f (L_f − redundant_f): a set nested in the clusters is wholly redundant; the first set
        that is not nested counts all its levels; every later one at least one redundant level,
        and for a pair of intercept sets the number of mobility groups (connected components of
        their bipartite graph, reghdfe's ``dofadjustments(pairwise)``). With every set nested
        (or none at all) the constant is counted instead: 1.
    """
    nested = [clusters is not None and is_nested(g, clusters) for g, _, _ in sets]
    free = [i for i, nst in enumerate(nested) if not nst]
    if not free:
        return 1  # a constant is estimated
    redundant = [L if nst else 0 for (_, L, _), nst in zip(sets, nested, strict=True)]
    for i in free[1:]:
        redundant[i] = 1
    intercepts = [i for i in free if sets[i][2]]
    for pos, i in enumerate(intercepts):
        for j in intercepts[pos + 1 :]:
            m = connected_components(sets[i][0], sets[j][0], sets[i][1], sets[j][1])
            redundant[j] = max(redundant[j], m)
    return int(sum(L - r for (_, L, _), r in zip(sets, redundant, strict=True)))


def small_sample(G: int, n: int, K: int) -> float:
    """CR1 factor G/(G − 1)·(N − 1)/(N − K), or N/(N − K) for heteroskedasticity-robust (G = N)."""
    return (G / (G - 1)) * ((n - 1) / (n - K)) if G < n else n / (n - K)


def sandwich(
    X: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    bread: np.ndarray,
    clusters: np.ndarray,
    G: int,
    n: int,
    K: int,
) -> np.ndarray:
    """Cluster-robust variance q·B [Σ_g u_g u_g'] B of the coefficients of a (weighted) linear
    estimator.

    Parameters
    ----------
    X : (n, k) array
        The design whose scores enter the meat (X̃ for OLS, the fitted X̂ for 2SLS).
    e : (n,) array
        Residuals.
    w : (n,) array
        Analytic weights (ones without weights).
    bread : (k, k) array
        (X'WX)⁻¹, as :func:`wls` returns it.
    clusters : (n,) int array
        Cluster codes 0..G−1 (``np.arange(n)`` for HC1, see :func:`dof`).
    G, n, K : int
        Clusters, observations and the degrees of freedom of :func:`dof`.

    Returns
    -------
    (k, k) array
        V = q·B M B with M = Σ_g u_g u_g', u_g = Σ_{i∈g} w_i x_i e_i and q of
        :func:`small_sample` (CR1, or HC1 when G = n).
    """
    return sandwich_scores(X, e, w, bread, clusters, G, n, K)[0]


def sandwich_scores(
    X: np.ndarray,
    e: np.ndarray,
    w: np.ndarray,
    bread: np.ndarray,
    clusters: np.ndarray,
    G: int,
    n: int,
    K: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sandwich` and the (G, k) cluster sums of the scores u_g it is built from (for
    covariances with further statistics without a second pass over the data)."""
    meat_parts = score_sums(X, e, w, clusters, G)
    meat = meat_parts.T @ meat_parts
    return small_sample(G, n, K) * bread @ meat @ bread, meat_parts


def score_sums(X: np.ndarray, e: np.ndarray, w: np.ndarray, clusters: np.ndarray, G: int):
    """(G, k) cluster sums u_g = Σ_{i∈g} w_i x_i e_i of the scores (see :func:`sandwich`)."""
    we = w * e
    if large.is_large(len(e)):
        sums = large.contiguous_sums(X, we, clusters, G)
        if sums is not None:
            return sums
    if X.shape[1] <= 16:  # one product and one bincount per column (as group_sums adds them)
        return np.column_stack(
            [np.bincount(clusters, weights=X[:, j] * we, minlength=G) for j in range(X.shape[1])]
        )
    return cluster_sums(X * we[:, None], clusters, G)


# --------------------------------------------------------------------------------------------
# Linear-algebra helpers on weighted data (w are analytic weights; the statistics built on them
# are invariant to rescaling w, so ivreg2's normalisation wf = N/Σw is not needed)
# --------------------------------------------------------------------------------------------


def xtwx(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted cross product A'WB, W = diag(w): (n, p), (n, q), (n,) -> (p, q)."""
    return a.T @ (b * w[:, None])


def wmean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted column means Σw x / Σw (``np.average``; on the large-sample path with unit
    weights, the plain mean, without the product by the weights)."""
    if large.is_large(len(w)) and large.unit_weights(w):
        return large.column_means(x) if x.ndim == 2 else x.mean(axis=0)
    return np.average(x, axis=0, weights=w)


def wresid_many(arrays: list[np.ndarray], c: np.ndarray | None, w: np.ndarray) -> list:
    """:func:`wresid` of several arrays (each (n,) or (n, m)) on the same ``c``; on the
    large-sample path one factorisation of ``c`` serves them all."""
    if c is None or c.shape[1] == 0 or not large.is_large(len(w)):
        return [wresid(a[:, None], c, w)[:, 0] if a.ndim == 1 else wresid(a, c, w) for a in arrays]
    cols = [a[:, None] if a.ndim == 1 else a for a in arrays]
    stacked = np.column_stack(cols)
    fit = large.lstsq_tall(c, stacked, w)
    res = stacked - c @ fit[0] if fit is not None else wresid(stacked, c, w)
    out, at = [], 0
    for a, col in zip(arrays, cols, strict=True):
        part = res[:, at : at + col.shape[1]]
        out.append(part[:, 0].copy() if a.ndim == 1 else np.ascontiguousarray(part))
        at += col.shape[1]
    return out


def wresid(a: np.ndarray, c: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    """Residuals of the weighted regression of each column of ``a`` on ``c`` (FWL)."""
    if c is None or c.shape[1] == 0:
        return a
    if large.is_large(len(w)):
        fit = large.lstsq_tall(c, a, w)
        if fit is not None:
            return a - c @ fit[0]
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(c * sw, a * sw, rcond=None)
    return a - c @ coef


def cluster_sums(scores: np.ndarray, clusters: np.ndarray | None, G: int) -> np.ndarray:
    """(G, m) matrix of within-cluster sums of the rows of ``scores`` (rows themselves if HC)."""
    if clusters is None:
        return scores
    return group_sums(scores, clusters, G)
