"""The large-sample path of the estimation core: the same estimators with fewer passes over the
data, taken from :data:`LARGE_N` observations up.

At the study's scale (a few thousand rows) a fit costs a millisecond and the core keeps its
reference arithmetic, so the outputs of the default run never change. On county or firm panels
(10⁵–10⁷ rows) every pass over the n × k design counts, and the core switches to

:func:`balanced_pairs`, :func:`demean_balanced`
    Two fixed effects that form a complete balanced panel (every level of one crossed once with
    every level of the other, no weights) are absorbed in one pass:
    x̃_it = x_it − x̄_i· − x̄_·t + x̄, exact (alternating projections converge to it; they need two
    sweeps to notice). The rows are gathered into an (L₁, L₂, k) block once and scattered back.
:func:`tall_qr`
    The R factor of a tall, thin, column-equilibrated matrix by Cholesky QR run twice (CholQR2):
    two Gram products and one multiplication by R₁⁻¹ instead of Householder reflections and an
    explicit Q. For a matrix with a condition number below about 10⁷ (:data:`MAX_PIVOT_RATIO`)
    it is as accurate as Householder QR; beyond that, and at a rank deficiency, the caller falls
    back to Householder (whose pivots the collinearity rule reads) or the SVD.
:func:`lstsq_tall`
    Weighted least squares of several right-hand sides on one design through :func:`tall_qr` of
    the augmented matrix [X Y]: the coefficients come from the triangular factor, no Q is formed.
:func:`screen_gram`
    The absorption and collinearity classification of the core
    (:func:`~nqp_resilience.estimation.core.screen_columns`) from the Gram matrix of the
    unit-scaled columns, one BLAS product instead of a Gram–Schmidt pass per column.

Each agrees with the reference path to about 10⁻¹² relative on well-conditioned data; the tests
run both paths on the same data (``tests/test_large_path.py``).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "GramScreen",
    "LARGE_N",
    "MAX_PIVOT_RATIO",
    "balanced_pairs",
    "demean_balanced",
    "is_large",
    "iv_partial",
    "lstsq_tall",
    "screen_gram",
    "solve_from_gram",
    "tall_qr",
    "unit_weights",
]

#: From this many observations up the core takes the large-sample path. Below it a fit costs
#: milliseconds whichever path it takes, and the reference arithmetic keeps every default output
#: bit for bit.
LARGE_N = 100_000


def is_large(n: int) -> bool:
    """Does a sample of ``n`` observations take the large-sample path?"""
    return n >= LARGE_N


def balanced_pairs(absorb: list[tuple[np.ndarray, int]], w) -> np.ndarray | None:
    """The row order of a complete balanced two-way panel, or None.

    Returns ``order`` with ``order[i·L₂ + j]`` the row of level i of the first fixed effect and
    level j of the second, when there are exactly two fixed effects, no weights, and every pair
    of levels occurs exactly once (n = L₁·L₂). ``None`` otherwise (the caller iterates).
    """
    if w is not None or len(absorb) != 2:
        return None
    (g1, l1), (g2, l2) = absorb
    n = len(g1)
    if n == 0 or l1 * l2 != n or l1 < 2 or l2 < 2:
        return None
    pos = g1 * l2 + g2
    seen = np.zeros(n, dtype=bool)
    seen[pos] = True
    if not seen.all():  # n cells and n rows, all cells seen: each exactly once
        return None
    order = np.empty(n, dtype=np.int64)
    order[pos] = np.arange(n, dtype=np.int64)
    return order


def demean_balanced(x: np.ndarray, order: np.ndarray, l1: int, l2: int) -> np.ndarray:
    """x − x̄_i· − x̄_·t + x̄ of the columns of ``x`` (n, k) on a complete balanced panel
    (``order`` from :func:`balanced_pairs`): one gather, two axis means, one scatter."""
    n, k = x.shape
    in_order = bool(np.all(order[1:] > order[:-1]))  # rows already sorted by (i, t)
    block = (np.asarray(x, dtype=float) if in_order else x[order]).reshape(l1, l2, k)
    # shifted by a value of each column first, so that a large mean (population in persons)
    # costs no digits in the group means
    res = block - block[0, 0, :]
    # (the einsum sums add the same values in the same order as mean(axis=...), three times
    # faster over the middle axis)
    m1 = np.einsum("abk->ak", res) / l2  # (l1, k)
    m2 = res.mean(axis=0)  # (l2, k)
    m2 -= m1.mean(axis=0)
    res -= m1[:, None, :]
    res -= m2[None, :, :]
    res = res.reshape(n, k)
    if in_order:
        return res
    out = np.empty_like(res)
    out[order] = res
    return out


#: CholQR2 is taken when the first Cholesky factor's pivots span less than this ratio (a
#: condition number below about 10⁷, where it is as accurate as Householder); beyond it the
#: Gram matrix has lost too many digits, and a rank deficiency may hide behind rounding.
MAX_PIVOT_RATIO = 1e7


def _well_conditioned(r1: np.ndarray) -> bool:
    diag = np.abs(np.diag(r1))
    return bool(np.all(np.isfinite(r1)) and diag.min() * MAX_PIVOT_RATIO > diag.max())


def tall_qr(a: np.ndarray) -> np.ndarray | None:
    """Upper-triangular R with a = QR for a tall (n, p) matrix by Cholesky QR twice, or None
    when the Cholesky factorisation breaks down or its pivots span more than
    :data:`MAX_PIVOT_RATIO` (ill-conditioned or rank deficient: use Householder or the SVD)."""
    try:
        r1 = np.linalg.cholesky(a.T @ a).T
        if not _well_conditioned(r1):
            return None
        q1 = a @ np.linalg.inv(r1)
        r2 = np.linalg.cholesky(q1.T @ q1).T
    except np.linalg.LinAlgError:
        return None
    if not (np.all(np.isfinite(r1)) and np.all(np.isfinite(r2))):
        return None
    return r2 @ r1


def contiguous_sums(x: np.ndarray, e: np.ndarray, g: np.ndarray, n_groups: int):
    """(n_groups, k) sums Σ_{i∈g} x_i e_i when the group codes are sorted (every group a block
    of consecutive rows, as in a panel sorted by unit), in one pass over the rows; None when
    they are not (the caller sums by code)."""
    step = np.diff(g)
    if len(g) == 0 or g[0] != 0 or g[-1] != n_groups - 1 or step.min(initial=0) < 0:
        return None
    starts = np.flatnonzero(step) + 1
    if len(starts) != n_groups - 1:  # non-decreasing from 0 to G − 1 in G − 1 steps: 0, 1, ...
        return None
    return np.add.reduceat(x * e[:, None], np.concatenate(([0], starts)), axis=0)


def column_means(x: np.ndarray) -> np.ndarray:
    """``x.mean(axis=0)`` of an (n, k) array by ``einsum``: the same additions in row order,
    about three times faster on a C-ordered array."""
    return np.einsum("ij->j", x) / x.shape[0]


def _centred_squares(x: np.ndarray, rows: int = 1 << 16) -> np.ndarray:
    """Σ_i (x_ij − x̄_j)² of every column, centred a block of rows at a time (no n × k copy)."""
    mean = column_means(x)
    out = np.zeros(x.shape[1])
    for start in range(0, x.shape[0], rows):
        c = x[start : start + rows] - mean
        out += np.einsum("ij,ij->j", c, c)
    return out


def unit_weights(w: np.ndarray | None) -> bool:
    """No weights, or all of them 1 (multiplying by them would change nothing)."""
    return w is None or bool(np.all(w == 1.0))


def lstsq_tall(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
    """Weighted least squares of every column of ``y`` (n, m) on ``x`` (n, p) via the R factor
    of the equilibrated augmented matrix [√w·X/d, √w·Y].

    Returns ``(coef, rinv, d)``: coefficients (p, m) in data units, R_XX⁻¹ of the scaled design
    and the column scales d, so that (X'WX)⁻¹ = D⁻¹ R⁻¹R⁻ᵀ D⁻¹ / max(w); or None when the
    design is numerically rank deficient (the caller takes the reference path, which names the
    column).
    """
    p = x.shape[1]
    if unit_weights(w):
        xw, yw = x, y
    else:
        sw = np.sqrt(w / np.max(w))[:, None]
        xw, yw = x * sw, y * sw
    d = np.sqrt(np.einsum("ij,ij->j", xw, xw))
    if not np.all(d > 0):
        return None
    a = np.empty((x.shape[0], p + y.shape[1]))
    np.divide(xw, d, out=a[:, :p])
    a[:, p:] = yw
    r = tall_qr(a)
    if r is None:
        return None
    rxx = r[:p, :p]
    if np.any(np.abs(np.diag(rxx)) <= math.sqrt(1e-9)):
        return None
    rinv = np.linalg.solve(rxx, np.eye(p))
    coef = (rinv @ r[:p, p:]) / d[:, None]
    return coef, rinv, d


class GramScreen:
    """The Gram matrix of a residualised design and the centred sums of squares of its raw
    columns, computed once (one BLAS product and one pass), from which the absorption and
    collinearity rule classifies any subset of columns in any order (:meth:`statuses`) and the
    weighted mean squares of the columns come for free (:attr:`mean_squares`).

    ``tilde`` (n, p) residualised columns, ``raw`` (n, p) the same columns before, ``w`` (n,)
    positive weights.
    """

    def __init__(self, tilde: np.ndarray, raw: np.ndarray, w: np.ndarray):
        self.raw = raw
        if unit_weights(w):
            self.ss_raw = _centred_squares(raw)
            self.gram = tilde.T @ tilde
            sum_w = float(len(w))
        else:
            wn = w / np.max(w)
            cen = raw - np.average(raw, axis=0, weights=w)
            self.ss_raw = np.einsum("ij,ij,i->j", cen, cen, wn)
            self.gram = tilde.T @ (tilde * wn[:, None])
            sum_w = float(np.sum(wn))
        #: Σw x̃² / Σw per column (the weights' scale cancels)
        self.mean_squares = np.diag(self.gram) / sum_w

    def statuses(self, cols, tol: float) -> list[tuple[str, list[int]]]:
        """:func:`~nqp_resilience.estimation.core.screen_columns` of the columns ``cols``, in
        that order (partners are positions in ``cols``)."""
        cols = list(cols)
        k = len(cols)
        ss_til = np.diag(self.gram)[cols]
        ss_raw = self.ss_raw[cols]
        # a constant column is absorbed too: the spread is looked at only where that test fails
        flagged = np.flatnonzero(ss_til <= tol * ss_raw)
        constant = np.zeros(k, dtype=bool)
        if flagged.size:
            constant[flagged] = np.ptp(self.raw[:, [cols[f] for f in flagged]], axis=0) == 0
        unit = np.sqrt(np.where(ss_til > 0, ss_til, 1.0))
        c = self.gram[np.ix_(cols, cols)] / np.outer(unit, unit)
        out: list[tuple[str, list[int]]] = []
        kept: list[int] = []
        for j in range(k):
            if constant[j]:
                out.append(("constant", []))
                continue
            if ss_til[j] <= tol * ss_raw[j]:
                out.append(("absorbed", []))
                continue
            coef = np.zeros(0)
            rr = float(c[j, j])
            if kept:
                coef = np.linalg.solve(c[np.ix_(kept, kept)], c[kept, j])
                rr -= float(c[kept, j] @ coef)
            if rr <= tol:
                out.append(("collinear", [kept[i] for i in np.flatnonzero(np.abs(coef) > 1e-6)]))
                continue
            kept.append(j)
            out.append(("ok", []))
        return out


def screen_gram(
    tilde: np.ndarray, raw: np.ndarray, w: np.ndarray, tol: float
) -> list[tuple[str, list[int]]]:
    """:func:`~nqp_resilience.estimation.core.screen_columns` from Gram matrices (same
    statuses and partners; see there).

    The squared residual norm of unit column j on the kept columns K before it is
    C_jj − c_Kj' C_KK⁻¹ c_Kj with C the Gram matrix of the unit-scaled columns; its absolute error
    is a few ulps, far below ``tol``.
    """
    return GramScreen(tilde, raw, w).statuses(range(tilde.shape[1]), tol)


def iv_partial(z: np.ndarray, c: np.ndarray, x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """The IV design's linear algebra from one Cholesky QR of the equilibrated [C Z X y]:
    (Z̄'WZ̄)⁻¹ of the instrument set Z̄ = [Z C] (instruments first), and the residuals of X, Z
    and y on the controls C (FWL), as :func:`~nqp_resilience.estimation.core.wls` and
    :func:`~nqp_resilience.estimation.core.wresid` give them.

    Returns ``(zz_inv, xc, zc, yc, r)``, with ``r`` the R factor of [C Z X y] (weighted by
    √(w / max w)) in data units, from which :func:`iv_second_stage` solves the 2SLS; or None when
    [C Z] is numerically rank deficient (the reference path then names the collinear column).
    """
    n, k2, L, k1 = len(y), c.shape[1], z.shape[1], x.shape[1]
    m = k2 + L
    a = np.empty((n, m + k1 + 1))
    a[:, :k2], a[:, k2:m], a[:, m : m + k1], a[:, -1] = c, z, x, y
    unit = unit_weights(w)
    if not unit:
        a *= np.sqrt(w / np.max(w))[:, None]
    d = np.sqrt(np.einsum("ij,ij->j", a, a))
    if not np.all(d > 0):
        return None
    a /= d
    r = tall_qr(a)
    if r is None or np.any(np.abs(np.diag(r[:m, :m])) <= math.sqrt(1e-9)):
        return None
    rinv = np.linalg.solve(r[:m, :m], np.eye(m))
    inv_cz = (rinv @ rinv.T) / np.outer(d[:m], d[:m]) / (1.0 if unit else np.max(w))
    perm = list(range(k2, m)) + list(range(k2))
    zz_inv = inv_cz[np.ix_(perm, perm)]
    rest = a[:, k2:]
    if k2:
        rest = rest - a[:, :k2] @ np.linalg.solve(r[:k2, :k2], r[:k2, k2:])
    rest = rest * d[k2:]
    if not unit:
        rest /= np.sqrt(w / np.max(w))[:, None]
    zc = np.ascontiguousarray(rest[:, :L])
    xc = np.ascontiguousarray(rest[:, L : L + k1])
    return zz_inv, xc, zc, np.ascontiguousarray(rest[:, -1]), r * d


def iv_second_stage(r: np.ndarray, k2: int, L: int, k1: int, w: np.ndarray):
    """2SLS of y on [X C] with instruments [Z C] from the R factor of [C Z X y] that
    :func:`iv_partial` returns, without another pass over the data.

    With Q₁ the orthonormal basis of [C Z] (weighted), X̂ = Q₁H with H = [R_CZ,X, R_CZ,C], so
    β = (H'H)⁻¹H'r_CZ,y is a small least-squares problem solved by QR, as stable as the
    reference path's QR of X̂. Returns ``(beta, bread, gamma)``: the coefficients of
    [X C], (X̂'WX̂)⁻¹ and Γ = R_CZ⁻¹H, so that x̂_i = [C_i Z_i]·Γ (the CR1 scores are
    Γ'Σ_{i∈g} [C_i Z_i] w_i u_i); or None when X̂ is numerically rank deficient (the reference
    path then reports it).
    """
    m = k2 + L
    r11 = r[:m, :m]
    h = np.column_stack([r[:m, m : m + k1], r11[:, :k2]])
    qh, rh = np.linalg.qr(h)
    diag = np.abs(np.diag(rh))
    if not np.all(np.isfinite(rh)) or diag.min() <= 1e-9 * max(diag.max(), 1e-300):
        return None
    k = k1 + k2
    beta = np.linalg.solve(rh, qh.T @ r[:m, -1])
    rinv = np.linalg.solve(rh, np.eye(k))
    bread = (rinv @ rinv.T) / (1.0 if unit_weights(w) else np.max(w))
    gamma = np.linalg.solve(r11, h)
    return beta, bread, gamma


def solve_from_gram(tilde: np.ndarray, cols: list[int], ycol: int, screen: GramScreen, w):
    """Weighted least squares of column ``ycol`` of ``tilde`` on its columns ``cols``, starting
    from the Gram matrix the screen already holds: R₁ from its Cholesky factor, then one pass
    Q₁ = [X y]·D⁻¹R₁⁻¹ (a product with the whole of ``tilde``, no column copy) and R = R₂R₁ from
    the Cholesky factor of Q₁'Q₁ (CholQR2).

    Returns ``(beta, xtwx_inv)`` as :func:`~nqp_resilience.estimation.core.wls` does, or None
    when the design is numerically rank deficient (the reference path then names the column).
    """
    idx = list(cols) + [ycol]
    m = len(idx)
    s = screen.gram[np.ix_(idx, idx)]
    d = np.sqrt(np.diag(s))
    if not np.all(d > 0):
        return None
    try:
        r1 = np.linalg.cholesky(s / np.outer(d, d)).T
    except np.linalg.LinAlgError:
        return None
    if not _well_conditioned(r1):
        return None
    step = np.zeros((tilde.shape[1], m))
    step[idx, :] = np.linalg.inv(r1) / d[:, None]
    unit = unit_weights(w)
    q1 = tilde @ step if unit else (tilde * np.sqrt(w / np.max(w))[:, None]) @ step
    try:
        r = np.linalg.cholesky(q1.T @ q1).T @ r1
    except np.linalg.LinAlgError:
        return None
    k = m - 1
    if not np.all(np.isfinite(r)) or np.any(np.abs(np.diag(r[:k, :k])) <= math.sqrt(1e-9)):
        return None
    rinv = np.linalg.solve(r[:k, :k], np.eye(k))
    beta = (rinv @ r[:k, k]) * d[k] / d[:k]
    return beta, (rinv @ rinv.T) / np.outer(d[:k], d[:k]) / (1.0 if unit else np.max(w))
