"""The cluster-by-bootstrap-cluster sums of the wild bootstraps in low-rank form.

Both wild bootstraps (:mod:`~nqp_resilience.estimation.bootstrap` and
:mod:`~nqp_resilience.estimation.iv_bootstrap`) need, for a partialled column a (ẍ, or an
instrument z_l) and a source c (ÿ, ẍ, z_l),

    T[h, g] = Σ_{i∈h} a_i [M(c∘1_g)]_i      (h: model clusters, g: bootstrap clusters),

with M the annihilator of the fixed effects, the group trends and the controls. The reference
path builds M(c∘1_g) for every g: one demeaning of an n × G_boot matrix, O(n·G_boot) work and
memory per shard job, which at county scale (56,000 rows, 2,800 clusters) is most of a shard's
minute and several GB.

When some of the fixed effects (and the trend groups) are nested in both the model clusters
and the bootstrap clusters, as the city effects are in city clusters, T has a closed form.
Split the absorbed columns into W1 (the nested ones) and W2 (the dummies of the other fixed
effects, e.g. the years) and let M1 partial out W1 only. The column space of [W1, W2, controls]
is the orthogonal sum of span(W1) and span(U), U an orthonormal basis of [M1·W2, Z] (Z: the
fully partialled controls), so M = I − P1 − UU'. Because a is orthogonal to W1 and P1 acts
within the blocks of clusters ∩ bootstrap clusters, the P1 term vanishes from every T[h, g]:

    T[h, g] = Σ_{i∈h∩g} a_i c_i − (Σ_{i∈h} a_i U_i)'(Σ_{i∈g} U_i c_i),

a sparse matrix (one entry per non-empty h ∩ g) minus a product of rank r = rank(U), the
number of non-nested levels plus controls (about 30 in the study's designs). Building it costs
O(n·r²) and a product T·v costs O((G + G_boot)·r) per draw instead of O(G·G_boot).

The low-rank form is exact algebra, so it agrees with the reference path to rounding (checked
to 1e-10 in tests/test_bootstrap_scale.py). It is used from :data:`LOW_RANK_FROM` values of the
reference path's projected matrix, so that the study's default data keeps the reference path's
bits; below that the reference path is cheap anyway.
"""

from __future__ import annotations

import numpy as np

from nqp_resilience.estimation.core import demean, is_nested

__all__ = [
    "LOW_RANK_FROM",
    "MAX_LOW_RANK",
    "CrossSums",
    "cross_sums",
    "low_rank_applies",
    "low_rank_gram",
    "ols_block_stats",
]

#: The low-rank form is used when n · G_boot · (columns per cluster) reaches this size (the
#: reference path would need more than one block of 2^24 projected values).
LOW_RANK_FROM = 1 << 24
#: Largest rank of U (non-nested fixed-effect levels plus controls) for the low-rank form.
MAX_LOW_RANK = 2000
#: Singular values of the unit-norm columns [M1·dummies, Z] below this fraction of the largest
#: are null directions (rounding of the partialling), not part of the design.
NULL_DIRECTION = 1e-9


class CrossSums:
    """T (rows: cluster h × column j of a; columns: bootstrap cluster g) of one source, as
    sparse(h ∩ g) − A·B. Supports what the bootstraps do with the dense matrix: ``T @ v``
    (v: (G_boot,) or (G_boot, m)), ``T.sum(axis=0 | 1)`` and ``T.toarray()``."""

    def __init__(self, direct, A: np.ndarray, B: np.ndarray):
        self.direct = direct  # scipy.sparse CSR, (G·p, Gb)
        self.A = A  # (G·p, r)
        self.B = B  # (r, Gb)
        self.shape = direct.shape

    def __matmul__(self, v: np.ndarray) -> np.ndarray:
        return self.direct @ v - self.A @ (self.B @ v)

    def sum(self, axis: int) -> np.ndarray:
        if axis == 0:
            return np.asarray(self.direct.sum(axis=0)).ravel() - self.A.sum(axis=0) @ self.B
        return np.asarray(self.direct.sum(axis=1)).ravel() - self.A @ self.B.sum(axis=1)

    def toarray(self) -> np.ndarray:
        return self.direct.toarray() - self.A @ self.B


def low_rank_applies(n: int, Gb: int, per_cluster: int, w=None) -> bool:
    """Is the problem large enough for the low-rank form, and unweighted?"""
    if w is not None and not np.all(np.asarray(w) == 1.0):
        return False
    return n * Gb * per_cluster >= LOW_RANK_FROM


def cross_sums(
    a: np.ndarray,
    sources: np.ndarray,
    clusters: np.ndarray,
    G: int,
    bcodes: np.ndarray,
    Gb: int,
    absorb: list[tuple[np.ndarray, int]],
    trends,
    Z: np.ndarray | None,
) -> list[CrossSums] | None:
    """T_c[h·p + j, g] = Σ_{i∈h} a_ij [M(c∘1_g)]_i for every column c of ``sources``, in the
    low-rank form; None when it does not apply (no absorbed effect is nested in both
    clusterings, a trend group is not nested, or the rank would exceed :data:`MAX_LOW_RANK`).

    ``a`` (n, p) must be partialled by M (orthogonal to every absorbed column and to ``Z``);
    ``absorb``/``trends`` are those of :func:`~nqp_resilience.estimation.core.prepare`; ``Z``
    the fully partialled controls (or None). Unweighted.
    """
    import scipy.sparse as sp

    a = a.reshape(len(a), -1)
    n, p = a.shape
    sources = sources.reshape(n, -1)
    clusters = np.asarray(clusters, dtype=np.int64)
    bcodes = np.asarray(bcodes, dtype=np.int64)

    def nested(g: np.ndarray) -> bool:
        return is_nested(g, clusters) and is_nested(g, bcodes)

    is_inner = [nested(codes) for codes, _ in absorb]
    inner = [fe for fe, yes in zip(absorb, is_inner, strict=True) if yes]
    outer = [fe for fe, yes in zip(absorb, is_inner, strict=True) if not yes]
    if not inner and trends is None:
        return None
    if trends is not None and not nested(trends[0]):
        return None
    n_dummies = sum(L for _, L in outer)
    k = 0 if Z is None else Z.shape[1]
    if n_dummies + k > MAX_LOW_RANK:
        return None

    # U: an orthonormal basis of [M1·(dummies of the non-nested effects), Z]
    parts = []
    if outer:
        D = np.zeros((n, n_dummies))
        at = 0
        for g, L in outer:
            D[np.arange(n), at + g] = 1.0
            at += L
        parts.append(demean(D, inner, None, trends) if inner or trends is not None else D)
    if k:
        parts.append(Z)
    U = np.zeros((n, 0))
    if parts:
        # columns scaled to unit norm (the span is the same; controls in persons and in shares
        # become comparable), so that one relative threshold separates the directions the
        # design has from the null directions that the partialling leaves at rounding level
        # (the year dummies sum to the nested effects; iterated partialling converges to ~1e-13)
        W2 = np.column_stack(parts)
        norms = np.sqrt(np.einsum("ij,ij->j", W2, W2))
        W2 = W2[:, norms > 0] / norms[norms > 0]
        if W2.shape[1]:
            U, s, _ = np.linalg.svd(W2, full_matrices=False)
            U = np.ascontiguousarray(U[:, s > NULL_DIRECTION * s[0]])
    r = U.shape[1]

    # Σ_{i∈h} a_ij U_i: (G·p, r); pairs h ∩ g for the sparse part
    rows_n = np.arange(n)

    def weighted_sums(weights: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """Σ_{i∈group} weights_i U_i for every group, (n_groups, r), as a sparse product (no
        n × r temporary besides U)."""
        return sp.csr_matrix((weights, (codes, rows_n)), shape=(n_groups, n)) @ U

    A = np.stack([weighted_sums(a[:, j], clusters, G) for j in range(p)], axis=1)
    A = A.reshape(G * p, r)
    pair, inverse = np.unique(clusters * Gb + bcodes, return_inverse=True)
    ph, pg = pair // Gb, pair % Gb
    rows = (ph[:, None] * p + np.arange(p)[None, :]).ravel()
    cols = np.repeat(pg, p)
    out = []
    for c in range(sources.shape[1]):
        src = sources[:, c]
        vals = np.stack(
            [np.bincount(inverse, weights=a[:, j] * src, minlength=len(pair)) for j in range(p)],
            axis=1,
        ).ravel()
        direct = sp.csr_matrix((vals, (rows, cols)), shape=(G * p, Gb))
        B = weighted_sums(src, bcodes, Gb).T  # (r, Gb)
        out.append(CrossSums(direct, A, np.ascontiguousarray(B)))
    return out


def ols_block_stats(S_y: CrossSums, S_x: CrossSums, a_y, a_x, c):
    """The per-draw statistics of the OLS wild bootstrap from the low-rank forms, without any
    (G, draws) temporary; None where it does not apply (then the caller forms the matrices).

    The OLS bootstrap needs, per draw v, n0 = a_y·v, n1 = a_x·v and the sums over clusters h
    of Y², Y·X and X², with Y = S_y v − c n0 and X = S_x v − c n1. With S = D − A B (sparse
    D, low-rank A B) and F = [A, c], Y = D_y v − F q_y where q_y = [B_y; a_y'] v, so

        Σ_h Y_h² = Σ_h (D_y v)_h² − 2 (F'D_y v)·q_y + q_y'(F'F) q_y

    (and likewise Y·X and X²): one product of a (4(r+1), G_boot) matrix with the block of
    draws, then sums over r+1 rows. Σ_h (D_y v)_h (D_x v)_h = Σ_g e_g v_g² holds when every
    cluster h meets one bootstrap cluster g (clusters nested in the bootstrap clusters, as
    cities in cities or in provinces), the case handled here. The terms are of the size of
    the result (F q is the part of the cluster scores explained by the r non-nested
    directions), so the expansion keeps the reference path's digits to rounding; the tests
    compare the two to 1e-10.
    """
    if S_y.A is not S_x.A and not np.array_equal(S_y.A, S_x.A):
        return None
    G, Gb = S_y.shape
    if S_x.shape != (G, Gb) or len(c) != G:
        return None
    entries = [_single_entries(S.direct, G) for S in (S_y, S_x)]
    if entries[0] is None or entries[1] is None:
        return None
    (g_y, d_y), (g_x, d_x) = entries
    both = (g_y >= 0) & (g_x >= 0)
    if np.any(g_y[both] != g_x[both]):
        return None
    g = np.where(g_y >= 0, g_y, g_x)
    has = g >= 0
    E = np.stack(
        [np.bincount(g[has], weights=(u * t)[has], minlength=Gb) for u, t in
         ((d_y, d_y), (d_y, d_x), (d_x, d_x))]
    )  # fmt: skip
    F = np.column_stack([S_y.A, np.asarray(c, dtype=float)])
    k = F.shape[1]
    gram = F.T @ F
    M = np.ascontiguousarray(
        np.vstack(
            [
                S_y.B,
                np.asarray(a_y, dtype=float)[None, :],
                S_x.B,
                np.asarray(a_x, dtype=float)[None, :],
                np.asarray(S_y.direct.T @ F).T,
                np.asarray(S_x.direct.T @ F).T,
            ]
        )
    )

    def block_stats(v: np.ndarray) -> np.ndarray:
        R = M @ v
        q_y, q_x, t_y, t_x = R[:k], R[k : 2 * k], R[2 * k : 3 * k], R[3 * k :]
        e = E @ (v * v)
        gq_y, gq_x = gram @ q_y, gram @ q_x
        AA = e[0] - 2.0 * np.einsum("ij,ij->j", t_y, q_y) + np.einsum("ij,ij->j", q_y, gq_y)
        AB = (
            e[1]
            - np.einsum("ij,ij->j", t_y, q_x)
            - np.einsum("ij,ij->j", t_x, q_y)
            + np.einsum("ij,ij->j", q_y, gq_x)
        )
        BB = e[2] - 2.0 * np.einsum("ij,ij->j", t_x, q_x) + np.einsum("ij,ij->j", q_x, gq_x)
        return np.stack((q_y[k - 1], q_x[k - 1], AA, AB, BB))

    return block_stats


def _single_entries(direct, n_rows: int):
    """(column, value) of the one stored entry of each row of a sparse matrix (column −1 and
    value 0 for an empty row), or None if a row has more than one."""
    coo = direct.tocoo()
    rows = np.asarray(coo.row, dtype=np.int64)
    if len(np.unique(rows)) != len(rows):
        return None
    col = np.full(n_rows, -1, dtype=np.int64)
    val = np.zeros(n_rows)
    col[rows], val[rows] = coo.col, coo.data
    return col, val


def low_rank_gram(sources: list[CrossSums], constants: np.ndarray):
    """Per draw v, the upper triangle (``numpy.triu_indices`` order) of the Gram matrix over the
    rows h of the columns [S_1 v, ..., S_K v, K_1, ..., K_k] (S_i in low-rank form, sharing one
    A; K: (G, k) constant columns), without any (G, draws) temporary; None where it does not
    apply (the sources do not share A, or a cluster meets more than one bootstrap cluster).

    With S_i = D_i − A B_i, q_i = B_i v and t_i = (A'D_i) v:

        Σ_h (S_i v)_h (S_j v)_h = Σ_g e_ij,g v_g² − t_i·q_j − t_j·q_i + q_i'(A'A) q_j
        Σ_h (S_i v)_h K_hc      = (K'D_i v)_c − (K'A)_c·q_i

    as :func:`ols_block_stats` (the WRE bootstrap of one instrument). Returns a function of
    the block of draws, (n_pairs, m)."""
    A = sources[0].A
    if any(S.A is not A and not np.array_equal(S.A, A) for S in sources):
        return None
    G, Gb = sources[0].shape
    constants = np.asarray(constants, dtype=float).reshape(G, -1)
    entries = [_single_entries(S.direct, G) for S in sources]
    if any(e is None for e in entries):
        return None
    g = np.full(G, -1, dtype=np.int64)
    for col, _ in entries:
        clash = (g >= 0) & (col >= 0) & (g != col)
        if clash.any():
            return None
        g = np.where(g >= 0, g, col)
    has = g >= 0
    K, k = len(sources), constants.shape[1]
    r = A.shape[1]
    vals = [val for _, val in entries]
    pairs = [(i, j) for i in range(K) for j in range(i, K)]
    E = np.stack(
        [np.bincount(g[has], weights=(vals[i] * vals[j])[has], minlength=Gb) for i, j in pairs]
    )
    gram_a = A.T @ A
    ka = constants.T @ A  # (k, r)
    kk = constants.T @ constants
    M = np.ascontiguousarray(
        np.vstack(
            [S.B for S in sources]
            + [np.asarray(S.direct.T @ A).T for S in sources]
            + [np.asarray(S.direct.T @ constants).T for S in sources]
        )
    )
    iu = np.triu_indices(K + k)

    def block_stats(v: np.ndarray) -> np.ndarray:
        m = v.shape[1]
        R = M @ v
        q = R[: K * r].reshape(K, r, m)
        t = R[K * r : 2 * K * r].reshape(K, r, m)
        u = R[2 * K * r :].reshape(K, k, m)
        e = E @ (v * v)
        gq = np.einsum("rs,ksm->krm", gram_a, q)
        full = np.empty((K + k, K + k, m))
        for p, (i, j) in enumerate(pairs):
            full[i, j] = (
                e[p]
                - np.einsum("rm,rm->m", t[i], q[j])
                - np.einsum("rm,rm->m", t[j], q[i])
                + np.einsum("rm,rm->m", q[i], gq[j])
            )
        for i in range(K):
            full[i, K:] = u[i] - ka @ q[i]
        full[K:, K:] = kk[:, :, None]
        return full[iu]

    return block_stats
