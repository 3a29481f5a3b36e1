"""Fixed-effects 2SLS with cluster-robust inference and weak-IV diagnostics, as Stata's
``ivreghdfe … absorb(entity time) cluster(c)`` (ivreg2 4.1 + ranktest 2.0) computes them.

Inputs: a DataFrame (or mapping of column → array) with the outcome, the endogenous
regressor(s), the excluded instrument(s), controls, fixed-effect and cluster columns, and
optionally analytic weights. Output: an
:class:`~nqp_resilience.estimation.results.EstimationResult` for the first endogenous regressor,
with first-stage, Kleibergen–Paap, Cragg–Donald, Stock–Yogo and Anderson–Rubin statistics in
``result.iv`` (repeated in ``extra``). Numpy only at import time (scipy is imported inside the
functions that need distribution functions). ``docs/iv.md`` gives every formula and the Stata
source lines it follows. What 2SLS shares with OLS comes from the public API of
:mod:`nqp_resilience.estimation.core`.

Method (notation: K1 endogenous regressors X, L excluded instruments Z, k2 controls C)
--------------------------------------------------------------------------------------
1. :func:`iv_design`: sample and fixed effects exactly as
   :func:`nqp_resilience.estimation.ols.twfe` (complete cases, iterative singleton drop,
   alternating projections); without fixed effects the constant is partialled out instead
   (ivreg2's ``partial(_cons)``).
2. :func:`second_stage`: 2SLS on the demeaned data with the controls as included instruments,
   β = (X̂'WX̂)⁻¹X̂'Wy, X̂ = P_[Z C] [X C]; CR1 variance q·(X̂'WX̂)⁻¹ Σ_g s_g s_g' (X̂'WX̂)⁻¹,
   q = G/(G−1)·(N−1)/(N−K), K = K1 + k2 + the absorbed degrees of freedom (core ``dof``: fixed
   effects nested in the clusters are not counted; this is reghdfe's ``df_a``, which ivreghdfe
   passes to ivreg2 as ``sdofminus``). t with G−1 df.
3. :func:`first_stage`: each endogenous regressor on [Z C], Wald F of Z (CR1,
   K_fs = L + k2 + absorbed), partial R².
4. :func:`weak_iv_diagnostics` on the data with fixed effects *and* controls partialled out
   (FWL): Kleibergen–Paap rk LM and rk Wald F (ranktest's SVD algorithm; ivreg2's small-sample
   factor for the F), Cragg–Donald F, Stock–Yogo critical values; :func:`anderson_rubin`: the
   Anderson–Rubin test and its inverted confidence set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from nqp_resilience.errors import ConfigError, EstimationError
from nqp_resilience.estimation import large
from nqp_resilience.estimation.core import (
    COLLIN_TOL,
    ON_COLLINEAR,
    SINGLETON_OPTIONS,
    OnCollinear,
    Singletons,
    check_columns,
    check_option,
    cluster_sums,
    demean,
    dof,
    prepare,
    sandwich,
    score_sums,
    screen_columns,
    select_regressors,
    small_sample,
    t_dist,
    wls,
    wmean,
    wresid_many,
    xtwx,
)
from nqp_resilience.estimation.results import AndersonRubin, EstimationResult, FirstStage, IVResults

__all__ = [
    "FirstStageFit",
    "IVDesign",
    "SecondStage",
    "Singletons",
    "anderson_rubin",
    "canonical_correlations",
    "first_stage",
    "iv_design",
    "iv_twfe",
    "kp_rank_test",
    "second_stage",
    "stock_yogo",
    "stock_yogo_table",
    "weak_iv_diagnostics",
]

# Stock & Yogo (2005) critical values for the Cragg–Donald F, "maximal IV size" (5 % Wald test
# of β), as ivreg2 prints them: rows = number of excluded instruments L (1..100), columns = number
# of endogenous regressors K1 (1, 2); "." where L < K1. Copied from the s_ivsize10/15/20/25
# strings of ivreg2's livreg2 Mata library (function s_ivreg210_cdsy in ivreg210.ado, see
# docs/iv.md).
_SY_SIZE = {
    10: """16.38 . 19.93 7.03 22.3 13.43 24.58 16.87 26.87 19.45 29.18 21.68 31.5 23.72 33.84 25.64
        36.19 27.51 38.54 29.32 40.9 31.11 43.27 32.88 45.64 34.62 48.01 36.36 50.39 38.08
        52.77 39.8 55.15 41.51 57.53 43.22 59.92 44.92 62.3 46.62 64.69 48.31 67.07 50.01 69.46 51.7
        71.85 53.39 74.24 55.07 76.62 56.76 79.01 58.45 81.4 60.13 83.79 61.82 86.17 63.51
        88.56 65.19 90.95 66.88 93.33 68.56 95.72 70.25 98.11 71.94 100.5 73.62 102.88 75.31
        105.27 76.99 107.66 78.68 110.04 80.37 112.43 82.05 114.82 83.74 117.21 85.42 119.59 87.11
        121.98 88.8 124.37 90.48 126.75 92.17 129.14 93.85 131.53 95.54 133.92 97.23 136.3 98.91
        138.69 100.6 141.08 102.29 143.47 103.97 145.85 105.66 148.24 107.34 150.63 109.03
        153.01 110.72 155.4 112.4 157.79 114.09 160.18 115.77 162.56 117.46 164.95 119.15
        167.34 120.83 169.72 122.52 172.11 124.2 174.5 125.89 176.89 127.58 179.27 129.26
        181.66 130.95 184.05 132.63 186.44 134.32 188.82 136.01 191.21 137.69 193.6 139.38
        195.98 141.07 198.37 142.75 200.76 144.44 203.15 146.12 205.53 147.81 207.92 149.5
        210.31 151.18 212.69 152.87 215.08 154.55 217.47 156.24 219.86 157.93 222.24 159.61
        224.63 161.3 227.02 162.98 229.41 164.67 231.79 166.36 234.18 168.04 236.57 169.73
        238.95 171.41 241.34 173.1 243.73 174.79 246.12 176.47 248.5 178.16 250.89 179.84
        253.28 181.53""",
    15: """8.96 . 11.59 4.58 12.83 8.18 13.96 9.93 15.09 11.22 16.23 12.33 17.38 13.34 18.54 14.31
        19.71 15.24 20.88 16.16 22.06 17.06 23.24 17.95 24.42 18.84 25.61 19.72 26.80 20.60
        27.99 21.48 29.19 22.35 30.38 23.22 31.58 24.09 32.77 24.96 33.97 25.82 35.17 26.69
        36.37 27.56 37.57 28.42 38.77 29.29 39.97 30.15 41.17 31.02 42.37 31.88 43.57 32.74
        44.78 33.61 45.98 34.47 47.18 35.33 48.38 36.19 49.59 37.06 50.79 37.92 51.99 38.78
        53.19 39.64 54.40 40.50 55.60 41.37 56.80 42.23 58.01 43.09 59.21 43.95 60.41 44.81
        61.61 45.68 62.82 46.54 64.02 47.40 65.22 48.26 66.42 49.12 67.63 49.99 68.83 50.85
        70.03 51.71 71.24 52.57 72.44 53.43 73.64 54.30 74.84 55.16 76.05 56.02 77.25 56.88
        78.45 57.74 79.66 58.61 80.86 59.47 82.06 60.33 83.26 61.19 84.47 62.05 85.67 62.92
        86.87 63.78 88.07 64.64 89.28 65.50 90.48 66.36 91.68 67.22 92.89 68.09 94.09 68.95
        95.29 69.81 96.49 70.67 97.70 71.53 98.90 72.40 100.10 73.26 101.30 74.12 102.51 74.98
        103.71 75.84 104.91 76.71 106.12 77.57 107.32 78.43 108.52 79.29 109.72 80.15 110.93 81.02
        112.13 81.88 113.33 82.74 114.53 83.60 115.74 84.46 116.94 85.33 118.14 86.19 119.35 87.05
        120.55 87.91 121.75 88.77 122.95 89.64 124.16 90.50 125.36 91.36 126.56 92.22 127.76 93.08
        128.97 93.95""",
    20: """6.66 . 8.75 3.95 9.54 6.40 10.26 7.54 10.98 8.38 11.72 9.10 12.48 9.77 13.24 10.41
        14.01 11.03 14.78 11.65 15.56 12.25 16.35 12.86 17.14 13.45 17.93 14.05 18.72 14.65
        19.51 15.24 20.31 15.83 21.10 16.42 21.90 17.02 22.70 17.61 23.50 18.20 24.30 18.79
        25.10 19.38 25.90 19.97 26.71 20.56 27.51 21.15 28.31 21.74 29.12 22.33 29.92 22.92
        30.72 23.51 31.53 24.10 32.33 24.69 33.14 25.28 33.94 25.87 34.75 26.46 35.55 27.05
        36.36 27.64 37.17 28.23 37.97 28.82 38.78 29.41 39.58 30.00 40.39 30.59 41.20 31.18
        42.00 31.77 42.81 32.36 43.62 32.95 44.42 33.54 45.23 34.13 46.03 34.72 46.84 35.31
        47.65 35.90 48.45 36.49 49.26 37.08 50.06 37.67 50.87 38.26 51.68 38.85 52.48 39.44
        53.29 40.02 54.09 40.61 54.90 41.20 55.71 41.79 56.51 42.38 57.32 42.97 58.13 43.56
        58.93 44.15 59.74 44.74 60.54 45.33 61.35 45.92 62.16 46.51 62.96 47.10 63.77 47.69
        64.57 48.28 65.38 48.87 66.19 49.46 66.99 50.05 67.80 50.64 68.60 51.23 69.41 51.82
        70.22 52.41 71.02 53.00 71.83 53.59 72.64 54.18 73.44 54.77 74.25 55.36 75.05 55.95
        75.86 56.54 76.67 57.13 77.47 57.72 78.28 58.31 79.08 58.90 79.89 59.49 80.70 60.08
        81.50 60.67 82.31 61.26 83.12 61.85 83.92 62.44 84.73 63.03 85.53 63.62 86.34 64.21
        87.15 64.80""",
    25: """5.53 . 7.25 3.63 7.80 5.45 8.31 6.28 8.84 6.89 9.38 7.42 9.93 7.91 10.50 8.39
        11.07 8.85 11.65 9.31 12.23 9.77 12.82 10.22 13.41 10.68 14.00 11.13 14.60 11.58
        15.19 12.03 15.79 12.49 16.39 12.94 16.99 13.39 17.60 13.84 18.20 14.29 18.80 14.74
        19.41 15.19 20.01 15.64 20.61 16.10 21.22 16.55 21.83 17.00 22.43 17.45 23.04 17.90
        23.65 18.35 24.25 18.81 24.86 19.26 25.47 19.71 26.08 20.16 26.68 20.61 27.29 21.06
        27.90 21.52 28.51 21.97 29.12 22.42 29.73 22.87 30.33 23.32 30.94 23.78 31.55 24.23
        32.16 24.68 32.77 25.13 33.38 25.58 33.99 26.04 34.60 26.49 35.21 26.94 35.82 27.39
        36.43 27.85 37.04 28.30 37.65 28.75 38.25 29.20 38.86 29.66 39.47 30.11 40.08 30.56
        40.69 31.01 41.30 31.47 41.91 31.92 42.52 32.37 43.13 32.82 43.74 33.27 44.35 33.73
        44.96 34.18 45.57 34.63 46.18 35.08 46.78 35.54 47.39 35.99 48.00 36.44 48.61 36.89
        49.22 37.35 49.83 37.80 50.44 38.25 51.05 38.70 51.66 39.16 52.27 39.61 52.88 40.06
        53.49 40.51 54.10 40.96 54.71 41.42 55.32 41.87 55.92 42.32 56.53 42.77 57.14 43.23
        57.75 43.68 58.36 44.13 58.97 44.58 59.58 45.04 60.19 45.49 60.80 45.94 61.41 46.39
        62.02 46.85 62.63 47.30 63.24 47.75 63.85 48.20 64.45 48.65 65.06 49.11 65.67 49.56
        66.28 50.01""",
}


def stock_yogo_table(size: int) -> np.ndarray:
    """(100, 2) array of the Stock–Yogo maximal-IV-size critical values for ``size`` ∈ {10, 15,
    20, 25} (per cent); row L−1, column K1−1; NaN where ivreg2 has ".")."""
    vals = [math.nan if tok == "." else float(tok) for tok in _SY_SIZE[size].split()]
    return np.array(vals).reshape(-1, 2)


def stock_yogo(n_endog: int, n_instruments: int) -> dict[str, float | None]:
    """Stock–Yogo critical values ivreg2 prints for the Cragg–Donald F (2SLS, maximal IV size).

    Returns ``{"10%": …, "15%": …, "20%": …, "25%": …}``; values are None where ivreg2 prints
    nothing (K1 > 2, L > 100, or L < K1). For K1 = 1, L = 1: 16.38, 8.96, 6.66, 5.53.
    """
    out: dict[str, float | None] = {}
    for size in (10, 15, 20, 25):
        value = None
        if 1 <= n_endog <= 2 and 1 <= n_instruments <= 100:
            v = stock_yogo_table(size)[n_instruments - 1, n_endog - 1]
            value = None if math.isnan(v) else float(v)
        out[f"{size}%"] = value
    return out


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    vals = np.clip(vals, 0.0, None)
    return (vecs * np.sqrt(vals)) @ vecs.T


def canonical_correlations(x: np.ndarray, z: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Canonical correlations (descending) between the columns of x and z (already partialled).

    The singular values of (Z'WZ)^{1/2}' Π̂ (X'WX)^{-1/2} — ranktest's ``kpthat``.
    """
    w = np.ones(len(x)) if w is None else np.asarray(w, dtype=float)
    lz = np.linalg.cholesky(xtwx(z, z, w))
    lx = np.linalg.cholesky(xtwx(x, x, w))
    that = np.linalg.solve(lz, xtwx(z, x, w)) @ np.linalg.inv(lx).T
    return np.linalg.svd(that, compute_uv=False)


def kp_rank_test(
    x: np.ndarray,
    z: np.ndarray,
    w: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
    *,
    wald: bool = False,
    method: Literal["auto", "svd"] = "auto",
) -> tuple[float, int]:
    """Kleibergen–Paap (2006) rk statistic for H0: rank(Π) = K1 − 1 in x = zΠ + v.

    ``x`` (N×K1) and ``z`` (N×L) must already have the exogenous regressors and fixed effects
    partialled out. Follows ranktest 2.0.04 (``s_jstat``/``m_svd``, the code ivreg2 4.1 calls):

    - LM version (``wald=False``): the covariance of the moments is evaluated with e = x
      (no first-stage fit, i.e. under Π = 0); Wald version: e = x − zΠ̂.
    - S = (1/N) Σ_g (Σ_{i∈g} w_i e_i ⊗ z_i)(…)' (cluster) or (1/N) Σ_i w_i² (e_i ⊗ z_i)(…)' (HC);
      no small-sample or centring correction (ivreg2 applies none to the LM statistic and applies
      its own factor to the Wald F, see :func:`iv_twfe`).
    - K1 = 1 (``method="auto"``): rk = g'S⁻¹g·N with g = Z'Wx/N, ranktest's branch for
      H0: rank = 0. Otherwise the SVD algorithm of Kleibergen–Paap eqs. (15)–(21).

    Returns (rk, df) with df = L − K1 + 1; rk is χ²(df) under H0.
    """
    x = np.asarray(x, dtype=float).reshape(len(x), -1)
    z = np.asarray(z, dtype=float).reshape(len(z), -1)
    n, k1 = x.shape
    L = z.shape[1]
    if L < k1:
        raise ValueError(
            f"rank test needs at least as many instruments ({L}) as endogenous regressors ({k1})"
        )
    w = np.ones(n) if w is None else np.asarray(w, dtype=float)
    w = w * n / w.sum()  # ivreg2's wf: weights summing to N (scale-invariant, kept for clarity)
    G = int(clusters.max()) + 1 if clusters is not None else n
    qzz = xtwx(z, z, w) / n
    qzx = xtwx(z, x, w) / n
    pihat = np.linalg.solve(qzz, qzx)
    e = x if not wald else x - z @ pihat
    # rows e_i ⊗ z_i (endogenous index slow, instrument index fast = vec() column order)
    ez = (e[:, :, None] * z[:, None, :]).reshape(n, k1 * L) * w[:, None]
    sums = cluster_sums(ez, clusters, G)
    shat = sums.T @ sums / n
    df = L - k1 + 1
    if k1 == 1 and method == "auto":
        g = qzx[:, 0]
        return float(n * g @ np.linalg.solve(shat, g)), df
    # SVD algorithm (ranktest m_svd with kk = K1 − 1)
    lz = np.linalg.cholesky(qzz)
    lx = np.linalg.cholesky(xtwx(x, x, w) / n)
    ir_x = np.linalg.inv(lx.T)  # luinv(rQyy'): upper-triangular inverse
    ir_z = np.linalg.inv(lz.T)
    that = lz.T @ pihat @ ir_x
    u, _, vt = np.linalg.svd(that, full_matrices=True)
    v = vt.T
    kk = k1 - 1
    u12, u22 = u[:kk, kk:], u[kk:, kk:]
    v12, v22 = v[:kk, kk:], v[kk:, kk:]
    aq = np.vstack([u12, u22]) @ np.linalg.inv(u22) @ _psd_sqrt(u22 @ u22.T)
    bq = _psd_sqrt(v22 @ v22.T) @ np.linalg.inv(v22.T) @ np.vstack([v12, v22]).T
    tr = np.kron(ir_x.T, ir_z.T)
    kpvar = tr @ shat @ tr.T
    proj = np.kron(bq, aq.T)
    lab = proj @ that.reshape(-1, order="F")
    vlab = proj @ kpvar @ proj.T
    return float(n * lab @ np.linalg.solve((vlab + vlab.T) / 2, lab)), df


# --------------------------------------------------------------------------------------------
# Anderson–Rubin test and confidence set
# --------------------------------------------------------------------------------------------


class _ARProblem:
    """Reduced forms of y and X on Z (everything already partialled), for the AR test.

    AR(β0): regress y − Xβ0 on Z and test the L coefficients with the first-stage CR1 variance
    (factor q_fs, K_fs = L + k2 + absorbed) — ivreg2's ``arf`` (F form, F(L, G−1)) and ``archi2``
    (= q_fs·W, the CR0 Wald statistic, χ²(L)).
    """

    def __init__(self, y, x, z, w, clusters, G, q, df2):
        self.L = z.shape[1]
        self.q, self.df2 = q, df2
        b = np.linalg.inv(xtwx(z, z, w))
        self.a_y = b @ xtwx(z, y[:, None], w)[:, 0]
        self.a_x = b @ xtwx(z, x, w)  # (L, K1)
        e_y = y - z @ self.a_y
        e_x = x - z @ self.a_x
        self.s_y = cluster_sums(z * (w * e_y)[:, None], clusters, G)  # (G, L)
        self.s_x = np.stack(
            [cluster_sums(z * (w * e_x[:, j])[:, None], clusters, G) for j in range(x.shape[1])],
            axis=2,
        )  # (G, L, K1)
        self.b = b

    def wald(self, beta0) -> float:
        """CR1 Wald statistic W(β0) (so F = W/L)."""
        beta0 = np.atleast_1d(np.asarray(beta0, dtype=float))
        r = self.a_y - self.a_x @ beta0
        s = self.s_y - self.s_x @ beta0
        v = self.q * self.b @ (s.T @ s) @ self.b
        return float(r @ np.linalg.solve(v, r))

    def test(self, beta0) -> dict:
        stats = _stats()

        W = self.wald(beta0)
        F = W / self.L
        return {
            "F": F,
            "p": float(stats.f.sf(F, self.L, self.df2)),
            "chi2": W * self.q,
            "chi2_p": float(stats.chi2.sf(W * self.q, self.L)),
        }

    def critical_wald(self, level: float) -> float:
        stats = _stats()

        return float(self.L * stats.f.ppf(level, self.L, self.df2))

    def tail_wald(self) -> float:
        """lim W(β0) as |β0| → ∞ (K1 = 1): the first-stage CR1 Wald statistic of Z."""
        s = self.s_x[:, :, 0]
        v = self.q * self.b @ (s.T @ s) @ self.b
        a = self.a_x[:, 0]
        return float(a @ np.linalg.solve(v, a))

    def ci_analytic(self, level: float) -> tuple[list[tuple[float, float]], str]:
        """Exact inversion for L = 1, K1 = 1: {β0 : A β0² + B β0 + C ≤ 0}."""
        c = self.critical_wald(level) * self.q * self.b[0, 0] ** 2
        s_y, s_x = self.s_y[:, 0], self.s_x[:, 0, 0]
        a_y, a_x = float(self.a_y[0]), float(self.a_x[0, 0])
        A = a_x**2 - c * float(s_x @ s_x)
        B = -2.0 * (a_x * a_y - c * float(s_x @ s_y))
        C = a_y**2 - c * float(s_y @ s_y)
        scale = max(abs(A), abs(B), abs(C), 1e-300)
        if abs(A) <= 1e-14 * scale:  # linear boundary (measure-zero case)
            if abs(B) <= 1e-14 * scale:
                return ([(-math.inf, math.inf)], "real_line") if C <= 0 else ([], "empty")
            root = -C / B
            return (
                ([(-math.inf, root)], "half_line") if B > 0 else ([(root, math.inf)], "half_line")
            )
        disc = B * B - 4 * A * C
        if A > 0:
            if disc < 0:
                return [], "empty"
            r = math.sqrt(disc)
            lo, hi = sorted(((-B - r) / (2 * A), (-B + r) / (2 * A)))
            return [(lo, hi)], "bounded"
        if disc <= 0:
            return [(-math.inf, math.inf)], "real_line"
        r = math.sqrt(disc)
        lo, hi = sorted(((-B - r) / (2 * A), (-B + r) / (2 * A)))
        return [(-math.inf, lo), (hi, math.inf)], "union"

    def ci_polynomial(
        self, level: float, center: float, scale: float
    ) -> tuple[list[tuple[float, float]], str]:
        """Exact inversion for any L (K1 = 1). With V(β0) positive definite,
        W(β0) ≤ c ⇔ P(β0) = det([[c, r'], [r, V]]) = det V·(c − r'V⁻¹r) ≥ 0, and P is a polynomial
        of degree ≤ 2L in β0 (r is linear, V quadratic). P is interpolated exactly at 2L + 1
        Chebyshev nodes of β0 = center + scale·t; its real roots split the line into segments whose
        acceptance is decided by W at the midpoints (and by the limit of W for the tails)."""
        from numpy.polynomial import chebyshev as cheb

        from nqp_resilience.scipy_kernels import brentq

        crit = self.critical_wald(level)
        f = lambda b: self.wald(b) - crit  # noqa: E731

        def poly(b: float) -> float:
            r = self.a_y - self.a_x[:, 0] * b
            s = self.s_y - self.s_x[:, :, 0] * b
            v = self.q * self.b @ (s.T @ s) @ self.b
            m = np.block([[np.array([[crit]]), r[None, :]], [r[:, None], v]])
            return float(np.linalg.det(m))

        deg = 2 * self.L
        t = np.cos(np.pi * (np.arange(deg + 1) + 0.5) / (deg + 1))
        coef = cheb.chebfit(t, [poly(center + scale * ti) for ti in t], deg)
        roots = cheb.chebroots(coef)
        real = np.sort(
            center + scale * roots[np.abs(roots.imag) <= 1e-7 * (1 + np.abs(roots))].real
        )
        refined = []
        for r0 in real:  # polish each root on W − c where it changes sign
            d = 1e-6 * (abs(r0) + scale)
            if f(r0 - d) * f(r0 + d) < 0:
                r0 = brentq(f, r0 - d, r0 + d, xtol=1e-14)
            if not refined or r0 - refined[-1] > 1e-10 * (abs(r0) + scale):
                refined.append(float(r0))
        edges = [-math.inf, *refined, math.inf]
        tails_ok = self.tail_wald() <= crit
        accepted = []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            if math.isinf(lo) or math.isinf(hi):
                accepted.append(tails_ok)
            else:
                accepted.append(f((lo + hi) / 2) <= 0)
        intervals: list[tuple[float, float]] = []
        for (lo, hi), ok in zip(zip(edges[:-1], edges[1:], strict=True), accepted, strict=True):
            if ok:
                if intervals and intervals[-1][1] == lo:
                    intervals[-1] = (intervals[-1][0], hi)
                else:
                    intervals.append((lo, hi))
        if not intervals:
            kind = "empty"
        elif intervals == [(-math.inf, math.inf)]:
            kind = "real_line"
        elif all(math.isfinite(a) and math.isfinite(b) for a, b in intervals):
            kind = "bounded" if len(intervals) == 1 else "union"
        else:
            kind = "union" if len(intervals) > 1 else "half_line"
        return intervals, kind

    def ci_grid(self, grid, level: float) -> tuple[list[tuple[float, float]], str]:
        """Inversion over a grid (any L, K1 = 1). Boundaries between an accepted and a rejected
        grid point are refined by root finding. Beyond the grid the set follows from the limit of
        W(β0) as |β0| → ∞ (the first-stage Wald statistic): if that limit is accepted the set is
        unbounded on that side, else it is bounded; in both cases the boundary outside the grid
        is found by doubling the step outward and root finding."""
        from nqp_resilience.scipy_kernels import brentq

        grid = np.unique(np.asarray(grid, dtype=float))
        crit = self.critical_wald(level)
        f = lambda b: self.wald(b) - crit  # noqa: E731
        acc = np.array([f(b) <= 0 for b in grid])
        tails_ok = self.tail_wald() <= crit
        span = max(float(grid[-1] - grid[0]), 1.0)
        truncated = False

        def outward(edge: float, sign: float, want_accept: bool) -> float | None:
            """First point beyond ``edge`` (direction ``sign``) where acceptance == want_accept."""
            for k in range(60):
                cand = edge + sign * span * 2.0**k
                if (f(cand) <= 0) == want_accept:
                    return cand
            return None

        intervals: list[tuple[float, float]] = []
        i = 0
        while i < len(grid):
            if not acc[i]:
                i += 1
                continue
            j = i
            while j + 1 < len(grid) and acc[j + 1]:
                j += 1
            bounds = []
            for idx, nb, sign in ((i, i - 1, -1.0), (j, j + 1, 1.0)):
                if 0 <= nb < len(grid):
                    bounds.append(brentq(f, *sorted((grid[nb], grid[idx])), xtol=1e-12))
                elif tails_ok:
                    bounds.append(sign * math.inf)
                else:
                    out = outward(float(grid[idx]), sign, want_accept=False)
                    truncated |= out is None
                    bounds.append(
                        float(grid[idx])
                        if out is None
                        else brentq(f, *sorted((out, float(grid[idx]))), xtol=1e-12)
                    )
            intervals.append((bounds[0], bounds[1]))
            i = j + 1
        if tails_ok:  # accepted tails not reached by the grid
            if not acc[0]:
                out = outward(float(grid[0]), -1.0, want_accept=True)
                if out is not None:
                    intervals.insert(0, (-math.inf, brentq(f, out, float(grid[0]), xtol=1e-12)))
            if not acc[-1]:
                out = outward(float(grid[-1]), 1.0, want_accept=True)
                if out is not None:
                    intervals.append((brentq(f, float(grid[-1]), out, xtol=1e-12), math.inf))
        if not intervals:
            kind = "empty"
        elif intervals == [(-math.inf, math.inf)]:
            kind = "real_line"
        elif all(math.isfinite(a) and math.isfinite(b) for a, b in intervals):
            kind = "bounded" if len(intervals) == 1 else "union"
        else:
            kind = "union" if len(intervals) > 1 else "half_line"
        if truncated:
            kind += " (truncated at the grid edge)"
        return intervals, kind


# --------------------------------------------------------------------------------------------
# The estimator, in its parts: design, second stage, first stage, diagnostics, Anderson–Rubin
# --------------------------------------------------------------------------------------------


def _as_list(v) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


def _no_within_variation(
    name: str, role: str, raw: np.ndarray, prep: dict, fe_names: list, entity: str | None
):
    """A clear error for a variable that the fixed effects absorb completely."""
    scale = float(np.max(np.abs(raw - raw.mean())))  # invariant to the variable's units and mean
    constant_within = []
    for fname, (codes, n_levels) in zip(fe_names, prep["absorb"], strict=False):
        if fname is None:
            continue
        means = np.bincount(codes, weights=raw, minlength=n_levels) / np.bincount(
            codes, minlength=n_levels
        )
        if np.max(np.abs(raw - means[codes])) <= 1e-9 * scale:
            constant_within.append(fname)
    if constant_within:
        why = (
            f"it does not vary within {constant_within[0]}"
            + (" (it is time-invariant)" if constant_within[0] == entity else "")
            + f", so the {constant_within[0]} fixed effect absorbs it"
        )
    else:
        why = f"it is a combination of the fixed effects ({', '.join(f for f in fe_names if f)})"
    hint = (
        "interact it with a time-varying series (e.g. a trend or a national shock), or drop "
        "the fixed effect that absorbs it"
        if role == "instrument"
        else "check the variable, or drop the fixed effect that absorbs it"
    )
    raise ConfigError(
        name,
        f"{role} '{name}' has no within variation after the fixed effects are absorbed: {why}",
        hint=hint,
        source="iv_twfe",
    )


@dataclass
class IVDesign:
    """The residualised, rescaled IV design every stage works on (built by :func:`iv_design`).

    Columns are the FE-residualised variables divided by their weighted RMS (``s_*``), so every
    statistic is computed in units-free form and scaled back at the end: a coefficient of x on
    y in data units is the scaled one times s_y/s_x.

    Attributes
    ----------
    y, endogenous, instruments, controls : names (controls: those kept, in order)
    prep : dict of :func:`~nqp_resilience.estimation.core.prepare`
    n, k1, L, k2 : observations, endogenous regressors, excluded instruments, controls
    w : (n,) weights (ones without weights)
    raw_y, mean_y : outcome before the within transformation and its weighted mean (TSS)
    yt, xt, zt, ct : scaled residualised outcome, endogenous, instruments, controls
    s_y, s_x, s_z, s_c : their scales (weighted RMS)
    X, Z : [xt ct] and [zt ct]
    zz_inv : (Z'WZ)⁻¹ (the instrument set passed the collinearity check of
        :func:`~nqp_resilience.estimation.core.wls`)
    xc, zc, yc : xt, zt, yt with the controls partialled out as well (FWL)
    clustered : bool
    omitted, notes : controls omitted and why
    r_factor : on the large-sample path, the R factor of [C Z X y] (see
        :func:`~nqp_resilience.estimation.large.iv_partial`), else None
    """

    y: str
    endogenous: list
    instruments: list
    controls: list
    prep: dict
    n: int
    k1: int
    L: int
    k2: int
    w: np.ndarray
    raw_y: np.ndarray
    mean_y: float
    yt: np.ndarray
    xt: np.ndarray
    zt: np.ndarray
    ct: np.ndarray
    s_y: float
    s_x: np.ndarray
    s_z: np.ndarray
    s_c: np.ndarray
    X: np.ndarray
    Z: np.ndarray
    zz_inv: np.ndarray
    xc: np.ndarray
    zc: np.ndarray
    yc: np.ndarray
    clustered: bool
    omitted: list
    notes: list
    r_factor: np.ndarray | None = None

    @property
    def unit2(self) -> np.ndarray:
        """Scaled → data-unit factors of the second-stage coefficients (endogenous, controls)."""
        return self.s_y / np.concatenate([self.s_x, self.s_c])


def iv_design(
    df,
    y: str,
    endog,
    instrument,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str | None = "city_code",
    *,
    weights: str | None = None,
    singletons: Singletons = "drop",
    on_collinear: OnCollinear = "omit",
) -> IVDesign:
    """Check the roles, prepare the sample, absorb the fixed effects, screen the regressors and
    instruments and rescale: the :class:`IVDesign` of :func:`iv_twfe` (same arguments).

    Raises
    ------
    OptionError, ConfigError, UnknownVariableError, EstimationError
        As :func:`iv_twfe` documents.
    """
    check_option(on_collinear, ON_COLLINEAR, "on_collinear", "iv_twfe")
    check_option(singletons, SINGLETON_OPTIONS, "singletons", "iv_twfe")
    endogs, instruments, ctrl = _as_list(endog), _as_list(instrument), _as_list(controls)
    ctrl = [c for c in ctrl if c not in endogs]
    k1, L, k2 = len(endogs), len(instruments), len(ctrl)
    if k1 == 0 or L == 0:
        raise ConfigError(
            "instrument" if L == 0 else "endog",
            "an IV regression needs at least one endogenous regressor and one excluded instrument",
            source="iv_twfe",
        )
    if L < k1:
        raise ConfigError(
            "instrument",
            f"{k1} endogenous regressors but only {L} excluded "
            "instrument(s): the equation is not identified",
            source="iv_twfe",
        )
    overlap = (set(instruments) & set(endogs + ctrl + [y])) | (set(endogs + ctrl) & {y})
    if overlap:
        raise ConfigError(
            "instrument",
            f"{sorted(overlap)} appear in more than one role (outcome, "
            "endogenous, instrument, control)",
            source="iv_twfe",
        )
    fe_names = [entity, time]
    fes = [f for f in fe_names if f is not None]
    roles = {
        y: "outcome",
        **{v: "endogenous regressor" for v in endogs},
        **{v: "instrument" for v in instruments},
        **{v: "control" for v in ctrl},
        **{f: "fixed effect" for f in fes},
        cluster: "cluster",
        weights: "weights",
    }
    check_columns(df, roles, "iv_twfe")

    variables = [y, *endogs, *instruments, *ctrl]
    prep = prepare(df, variables, fes, cluster, weights, singletons=singletons)
    data = prep["X"]
    n = data.shape[0]
    if n == 0:
        raise EstimationError(
            "iv_twfe: no complete observations for this IV specification",
            hint="check the sample filter and the missing values of the variables used",
        )
    fe_labels = [f for f in fe_names if f is not None]
    if not prep["absorb"]:  # no fixed effects: partial out the constant (ivreg2 partial(_cons))
        prep["absorb"] = [(np.zeros(n, dtype=np.int64), 1)]
        fe_labels = [None]
    w = np.ones(n) if prep["w"] is None else prep["w"]
    tilde = demean(data, prep["absorb"], prep["w"])

    # on the large-sample path one Gram matrix classifies every subset of columns below
    gram = large.GramScreen(tilde, data, w) if large.is_large(n) else None

    # the outcome must keep some variation once the fixed effects are absorbed (relative test)
    # (only the outcome's mean is used: on the large-sample path only that column is averaged)
    mean = wmean(data if gram is None else data[:, :1], w)
    if np.ptp(data[:, 0]) == 0:
        raise ConfigError(
            y, f"outcome '{y}' is constant in the estimation sample", source="iv_twfe"
        )
    if np.sum(w * tilde[:, 0] ** 2) <= COLLIN_TOL * np.sum(w * (data[:, 0] - mean[0]) ** 2):
        _no_within_variation(y, "outcome", data[:, 0], prep, fe_labels, entity)
    # endogenous regressors (must survive) and controls (omitted if absorbed or collinear), in order
    ix_x = list(range(1, 1 + k1))
    ix_z = list(range(1 + k1, 1 + k1 + L))
    ix_c = list(range(1 + k1 + L, 1 + k1 + L + k2))
    status = None if gram is None else gram.statuses(ix_x + ix_c, COLLIN_TOL)
    kept2, omitted, notes = select_regressors(
        tilde[:, ix_x + ix_c] if gram is None else None,
        data[:, ix_x + ix_c] if gram is None or any(st != "ok" for st, _ in status) else None,
        w,
        endogs + ctrl,
        k1,
        prep,
        on_collinear,
        roles=("endogenous regressor", "control"),
        source="iv_twfe",
        status=status,
    )
    ix_c = [ix_c[j - k1] for j in kept2 if j >= k1]
    ctrl = [variables[j] for j in ix_c]
    k2 = len(ctrl)
    # excluded instruments: absorbed -> error naming the fixed effect; collinear with the
    # controls or the instruments before it -> error (a redundant instrument is a spec mistake)
    zstatus = (
        screen_columns(tilde[:, ix_c + ix_z], data[:, ix_c + ix_z], w)
        if gram is None
        else gram.statuses(ix_c + ix_z, COLLIN_TOL)
    )
    zcols = ctrl + instruments
    for j, (st, partners) in enumerate(zstatus):
        name = zcols[j]
        if st == "ok" or j < k2:  # controls were screened above (among the regressors)
            continue
        if st in ("constant", "absorbed"):
            if st == "constant":
                raise ConfigError(
                    name,
                    f"instrument '{name}' is constant in the estimation sample",
                    source="iv_twfe",
                )
            _no_within_variation(name, "instrument", data[:, ix_z[j - k2]], prep, fe_labels, entity)
        with_ = ", ".join(zcols[i] for i in partners) or "the controls and other instruments"
        raise EstimationError(
            f"iv_twfe: instrument '{name}' is collinear with {with_} (after the fixed effects)",
            hint=f"remove '{name}' from the instruments (or the variables it duplicates)",
            variable=name,
        )

    # every statistic is computed on columns scaled to unit weighted RMS (exact invariance to the
    # units of each variable); coefficients and SEs are scaled back at the end
    used = [0] + ix_x + ix_z + ix_c
    if gram is None:
        scale = np.sqrt(np.average(tilde[:, used] ** 2, axis=0, weights=w))
    else:
        scale = np.sqrt(gram.mean_squares[used])
    scale = np.where(scale > 0, scale, 1.0)
    # (the reference path keeps the copy: its memory layout decides the rounding of the products
    # below, and the default outputs were made with it; tilde is not used after this)
    in_place = gram is not None and used == list(range(tilde.shape[1]))
    ts = tilde if in_place else tilde[:, used]
    ts /= scale
    yt, xt = ts[:, 0], ts[:, 1 : 1 + k1]
    zt, ct = ts[:, 1 + k1 : 1 + k1 + L], ts[:, 1 + k1 + L :]
    Z = np.column_stack([zt, ct])
    fast = large.iv_partial(zt, ct, xt, yt, w) if gram is not None else None
    r_factor = None
    if fast is not None:
        zz_inv, xc, zc, yc, r_factor = fast
    else:
        _, zz_inv = wls(Z, yt, w, instruments + ctrl)  # collinearity check of the instruments
        cmat = ct if k2 else None
        xc, zc, yc = wresid_many([xt, zt, yt], cmat, w)
    return IVDesign(
        y=y,
        endogenous=endogs,
        instruments=instruments,
        controls=ctrl,
        prep=prep,
        n=n,
        k1=k1,
        L=L,
        k2=k2,
        w=w,
        raw_y=data[:, 0],
        mean_y=mean[0],
        yt=yt,
        xt=xt,
        zt=zt,
        ct=ct,
        s_y=scale[0],
        s_x=scale[1 : 1 + k1],
        s_z=scale[1 + k1 : 1 + k1 + L],
        s_c=scale[1 + k1 + L :],
        X=np.column_stack([xt, ct]),
        Z=Z,
        zz_inv=zz_inv,
        xc=xc,
        zc=zc,
        yc=yc,
        clustered=cluster is not None,
        omitted=omitted,
        notes=notes,
        r_factor=r_factor,
    )


@dataclass
class SecondStage:
    """2SLS fit in scaled units (see :class:`IVDesign`; ``beta``/``se`` times ``d.unit2`` are
    in data units).

    Attributes
    ----------
    beta, se : (k1 + k2,) coefficients and standard errors (endogenous, then controls)
    V : (k1 + k2, k1 + k2) CR1 (or HC1) variance
    G, K : clusters and degrees of freedom (K = k1 + k2 + absorbed levels)
    clusters : cluster codes (0..n−1 without clustering)
    df : G − 1 clustered, N − K otherwise (t tests)
    rss, tss, tss_within : data-unit sums of squares of the structural residuals y − Xβ, of y
        around its weighted mean, and of the demeaned y
    """

    beta: np.ndarray
    se: np.ndarray
    V: np.ndarray
    G: int
    K: int
    clusters: np.ndarray
    df: int
    rss: float
    tss: float
    tss_within: float


def second_stage(d: IVDesign) -> SecondStage:
    """2SLS with the controls as included instruments: β = (X̂'WX̂)⁻¹X̂'Wy, X̂ = P_[Z C] [X C], and
    the CR1 variance q·(X̂'WX̂)⁻¹ Σ_g s_g s_g' (X̂'WX̂)⁻¹ with s_g = Σ_{i∈g} w_i x̂_i u_i,
    u = y − Xβ (:func:`~nqp_resilience.estimation.core.sandwich`, K from
    :func:`~nqp_resilience.estimation.core.dof`)."""
    w = d.w
    names2 = d.endogenous + d.controls
    fast = None if d.r_factor is None else large.iv_second_stage(d.r_factor, d.k2, d.L, d.k1, w)
    if fast is not None:
        beta, bread, gamma = fast
        # x̂ = [C Z]·Γ; d.Z holds [Z C]: the rows of Γ in that order
        gamma = np.vstack([gamma[d.k2 :], gamma[: d.k2]])
        u = d.yt - d.X @ beta
        G, K2, clusters = dof(d.prep, d.k1 + d.k2, d.n, d.clustered)
        parts = score_sums(d.Z, u, w, clusters, G) @ gamma
        V = small_sample(G, d.n, K2) * bread @ (parts.T @ parts) @ bread
    else:
        xhat = d.Z @ (d.zz_inv @ xtwx(d.Z, d.X, w))
        try:
            beta, bread = wls(xhat, d.yt, w, names2)
        except EstimationError as exc:
            raise EstimationError(
                f"iv_twfe: the first-stage fitted values are collinear ({exc.problem}); the "
                "instruments do not identify the endogenous regressors",
                hint="check that each endogenous regressor has an instrument that moves it",
            ) from exc
        u = d.yt - d.X @ beta
        G, K2, clusters = dof(d.prep, d.k1 + d.k2, d.n, d.clustered)
        V = sandwich(xhat, u, w, bread, clusters, G, d.n, K2)
    return SecondStage(
        beta=beta,
        se=np.sqrt(np.diag(V)),
        V=V,
        G=G,
        K=K2,
        clusters=clusters,
        df=(G - 1) if d.clustered else (d.n - K2),
        rss=float(np.sum(w * u**2)) * d.s_y**2,
        tss=float(np.sum(w * (d.raw_y - d.mean_y) ** 2)),
        tss_within=float(np.sum(w * d.yt**2)) * d.s_y**2,
    )


@dataclass
class FirstStageFit:
    """First stages of every endogenous regressor and their degrees of freedom.

    Attributes
    ----------
    by_endog : dict
        Endogenous regressor → :class:`~nqp_resilience.estimation.results.FirstStage` (data
        units).
    K : int
        K_fs = L + k2 + absorbed levels (CR1 factor of the first stage, KP and AR statistics).
    G : int
    clusters : cluster codes (0..n−1 without clustering)
    df : G − 1 clustered, N − K_fs otherwise
    """

    by_endog: dict
    K: int
    G: int
    clusters: np.ndarray
    df: int


def first_stage(d: IVDesign) -> FirstStageFit:
    """Each endogenous regressor on [Z C]: the coefficients of the excluded instruments, their
    CR1 standard errors (K_fs = L + k2 + absorbed), the Wald F = π'V⁻¹π / L with its p-value from
    F(L, df), and the partial R² of Z (controls and fixed effects partialled out)."""
    stats = _stats()
    w, L = d.w, d.L
    G, K_fs, clusters = dof(d.prep, L + d.k2, d.n, d.clustered)
    df_fs = (G - 1) if d.clustered else (d.n - K_fs)
    r, k2, m = d.r_factor, d.k2, d.L + d.k2
    if r is None:
        pi_all = d.zz_inv @ xtwx(d.Z, d.xt, w)  # (L + k2, K1)
    else:  # from the R factor of [C Z X y]: π = R_CZ⁻¹R_CZ,X, rows in [Z C] order
        pi_all = np.linalg.solve(r[:m, :m], r[:m, m : m + d.k1])
        pi_all = np.vstack([pi_all[k2:], pi_all[:k2]])
    out = {}
    for j, xname in enumerate(d.endogenous):
        v_j = d.xt[:, j] - d.Z @ pi_all[:, j]
        Vfs = sandwich(d.Z, v_j, w, d.zz_inv, clusters, G, d.n, K_fs)
        pz = pi_all[:L, j]
        Wfs = float(pz @ np.linalg.solve(Vfs[:L, :L], pz))
        se_z = np.sqrt(np.diag(Vfs)[:L])
        unit = d.s_x[j] / d.s_z
        if r is None:
            xc = d.xc[:, j]
            fit = d.zc @ np.linalg.lstsq(d.zc * np.sqrt(w)[:, None], xc * np.sqrt(w), rcond=None)[0]
            partial_r2 = float(1.0 - np.sum(w * (xc - fit) ** 2) / np.sum(w * xc**2))
        else:  # ‖M_[C Z] x‖² / ‖M_C x‖² from the column of x in R
            col = r[k2 : m + d.k1, m + j]
            partial_r2 = float(1.0 - np.sum(col[d.L :] ** 2) / np.sum(col**2))
        out[xname] = FirstStage(
            coef={z: float(c) for z, c in zip(d.instruments, pz * unit, strict=True)},
            se={z: float(s) for z, s in zip(d.instruments, se_z * unit, strict=True)},
            F=Wfs / L,
            F_p=float(stats.f.sf(Wfs / L, L, df_fs)),
            F_df=[L, int(df_fs)],
            partial_r2=partial_r2,
        )
    return FirstStageFit(by_endog=out, K=int(K_fs), G=G, clusters=clusters, df=int(df_fs))


def weak_iv_diagnostics(d: IVDesign, fs: FirstStageFit) -> dict:
    """Kleibergen–Paap rk LM and rk Wald F, canonical correlations and the Cragg–Donald F on the
    data with fixed effects and controls partialled out (FWL).

    Returns
    -------
    dict
        ``kp_lm``, ``kp_lm_df``, ``kp_lm_p`` (χ²), ``kp_wald_chi2``, ``kp_f`` (ivreg2 4.1:
        rkf = χ²/(N−1)·(N − K_fs)·(G−1)/G / L clustered, χ²/N·(N − K_fs)/L robust),
        ``canonical_correlations``, ``cd_f`` = min_j ρ_j²/(1 − ρ_j²)·(N − K_fs)/L and
        ``stock_yogo`` (critical values of the Cragg–Donald F).
    """
    stats = _stats()
    n, L, K_fs, G = d.n, d.L, fs.K, fs.G
    kp_cl = fs.clusters if d.clustered else None
    kp_lm, kp_df = kp_rank_test(d.xc, d.zc, d.w, kp_cl, wald=False)
    kp_wald, _ = kp_rank_test(d.xc, d.zc, d.w, kp_cl, wald=True)
    # ivreg2 4.1: rkf = chi2/(N−1)·(N − iv1_ct − sdofminus)·(G−1)/G / L1 (cluster)
    #                  = chi2/N·(N − iv1_ct − sdofminus − dofminus) / L1 (robust); here
    # iv1_ct + sdofminus = K_fs (instruments incl. controls + absorbed levels), dofminus = 0.
    if d.clustered:
        kp_f = kp_wald / (n - 1) * (n - K_fs) * (G - 1) / G / L
    else:
        kp_f = kp_wald / n * (n - K_fs) / L
    cc = canonical_correlations(d.xc, d.zc, d.w)[: d.k1]
    cd = float(np.min(cc**2 / (1.0 - cc**2)))
    return {
        "kp_lm": kp_lm,
        "kp_lm_df": kp_df,
        "kp_lm_p": float(stats.chi2.sf(kp_lm, kp_df)),
        "kp_f": float(kp_f),
        "kp_wald_chi2": kp_wald,
        "cd_f": float(cd * (n - K_fs) / L),
        "canonical_correlations": [float(c) for c in cc],
        "stock_yogo": stock_yogo(d.k1, L),
    }


def anderson_rubin(
    d: IVDesign, fs: FirstStageFit, ss: SecondStage, *, level: float = 0.95, grid=None
) -> AndersonRubin:
    """Anderson–Rubin test of β = 0 (first-stage CR1 factor q_fs, K_fs) and, with one endogenous
    regressor, its inverted confidence set at ``level``: exact (closed form for one instrument,
    real roots of a degree-2L polynomial otherwise) or over ``grid`` (data units). Computed in
    scaled units, β0 = β0_data · s_x / s_y; the set is returned in data units."""
    n, G, K_fs = d.n, fs.G, fs.K
    q_fs = (G / (G - 1)) * ((n - 1) / (n - K_fs)) if d.clustered else n / (n - K_fs)
    ar = _ARProblem(
        d.yc,
        d.xc,
        d.zc,
        d.w,
        fs.clusters if d.clustered else None,
        G,
        q_fs,
        (G - 1) if d.clustered else (n - K_fs),
    )
    ar0 = ar.test(np.zeros(d.k1))
    ar_ci, ar_kind, ar_method = None, "not computed (more than one endogenous regressor)", None
    b_unit = float(d.unit2[0])
    if d.k1 == 1:
        if grid is not None:
            ar_ci, ar_kind = ar.ci_grid(np.asarray(grid, dtype=float) / b_unit, level)
            ar_method = "grid"
        elif d.L == 1:
            ar_ci, ar_kind = ar.ci_analytic(level)
            ar_method = "analytic"
        else:
            ar_ci, ar_kind = ar.ci_polynomial(
                level, float(ss.beta[0]), 10.0 * float(ss.se[0]) or 1.0
            )
            ar_method = "polynomial"
    if ar_ci is not None:
        ar_ci = [(float(lo) * b_unit, float(hi) * b_unit) for lo, hi in ar_ci]
    return AndersonRubin(
        stat=ar0["F"],
        p=ar0["p"],
        df=[d.L, int(ar.df2)],
        chi2=ar0["chi2"],
        chi2_p=ar0["chi2_p"],
        ci=ar_ci,
        ci_kind=ar_kind,
        ci_level=level,
        ci_method=ar_method,
    )


def iv_twfe(
    df,
    y: str,
    endog,
    instrument,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str | None = "city_code",
    *,
    weights: str | None = None,
    singletons: Singletons = "drop",
    ar_grid=None,
    ar_level: float = 0.95,
    on_collinear: OnCollinear = "omit",
) -> EstimationResult:
    """2SLS with absorbed fixed effects, CR1 clustered SEs and weak-IV diagnostics (ivreghdfe).

    Parameters
    ----------
    df : DataFrame or mapping of column name -> array
    y : outcome
    endog : endogenous regressor (str) or list; the first is the reported one
    instrument : excluded instrument (str) or list (at least as many as endogenous regressors)
    controls : included exogenous regressors (list or None)
    entity, time : fixed-effect columns; None drops that fixed effect (with none at all the
        constant is partialled out)
    cluster : cluster column; None gives heteroskedasticity-robust (HC1) inference and ivreg2's
        ``robust`` versions of the statistics
    weights : analytic weights column (ivreg2 ``[aw=]``), or None
    singletons : ``"drop"`` (reghdfe/ivreghdfe default) or ``"keep"``
    ar_grid : values of β0 over which to invert the Anderson–Rubin test instead of the exact
        inversion (default None: closed form for one instrument, the real roots of a degree-2L
        polynomial otherwise; both exact, see docs/iv.md)
    ar_level : confidence level of the AR set (0.95)
    on_collinear : ``"omit"`` (default, as reghdfe/ivreghdfe) drops a control absorbed by the
        fixed effects or collinear with the regressors before it (endogenous first, then the
        controls in order) and lists it in ``extra["omitted"]`` and ``extra["notes"]``;
        ``"error"`` raises instead. An absorbed or collinear endogenous regressor or excluded
        instrument is always an error naming it.

    Returns
    -------
    EstimationResult
        ``coef, se, t, p, ci`` of the first endogenous regressor (t with G − 1 df); ``nobs``,
        ``n_clusters``; ``r2`` = 1 − RSS/TSS with RSS of the structural residuals y − Xβ
        (actual, not fitted, X) and TSS around the weighted mean of y (reghdfe's ``r2``; may be
        negative for 2SLS); ``r2_within`` = 1 − RSS/Σw ỹ² (ivreghdfe's ``e(r2)``, the centred
        R² of the demeaned second stage); ``iv`` (:class:`~nqp_resilience.estimation.results.
        IVResults`) with the first stage and the diagnostics, repeated in ``extra`` under the keys
        listed in docs/iv.md; ``vcov`` of the endogenous regressors and controls.

    Notes
    -----
    The parts are public: :func:`iv_design` (sample, fixed effects, screening, scaling),
    :func:`second_stage`, :func:`first_stage`, :func:`weak_iv_diagnostics` and
    :func:`anderson_rubin`.
    """
    d = iv_design(
        df,
        y,
        endog,
        instrument,
        controls,
        entity,
        time,
        cluster,
        weights=weights,
        singletons=singletons,
        on_collinear=on_collinear,
    )
    ss = second_stage(d)
    fs = first_stage(d)
    diag = weak_iv_diagnostics(d, fs)
    ar = anderson_rubin(d, fs, ss, level=ar_level, grid=ar_grid)

    names2 = d.endogenous + d.controls
    unit2 = d.unit2
    t0 = float(ss.beta[0] / ss.se[0]) if ss.se[0] > 0 else math.nan
    p0, qt = t_dist(t0, ss.df)
    beta_d, se_d = ss.beta * unit2, ss.se * unit2
    params = {nm: float(b) for nm, b in zip(names2, beta_d, strict=True)}
    bse = {nm: float(s) for nm, s in zip(names2, se_d, strict=True)}
    tvals = {
        nm: float(b / s) if s > 0 else math.nan
        for nm, b, s in zip(names2, ss.beta, ss.se, strict=True)
    }
    iv = IVResults(
        endogenous=d.endogenous,
        instruments=d.instruments,
        first_stage=fs.by_endog,
        anderson_rubin=ar,
        **diag,
    )
    extra = {
        **iv.to_extra(),
        "df_k": int(ss.K),
        "df_k_first_stage": int(fs.K),
        "absorbed_dof": int(ss.K - d.k1 - d.k2),
        "t_stats": tvals,
        "p_values": {nm: t_dist(tv, ss.df)[0] for nm, tv in tvals.items()},
        "rss": ss.rss,
        "omitted": d.omitted,
    }
    if d.notes:
        extra["notes"] = d.notes
    return EstimationResult(
        coef=float(beta_d[0]),
        se=float(se_d[0]),
        t=t0,
        p=p0,
        ci=(float(beta_d[0] - qt * se_d[0]), float(beta_d[0] + qt * se_d[0])),
        nobs=int(d.n),
        n_clusters=int(ss.G) if d.clustered else None,
        r2=1.0 - ss.rss / ss.tss if ss.tss > 0 else math.nan,
        r2_within=1.0 - ss.rss / ss.tss_within if ss.tss_within > 0 else math.nan,
        regressor=d.endogenous[0],
        params=params,
        bse=bse,
        df_resid=int(ss.df),
        vcov_type="CR1" if d.clustered else "HC1",
        extra=extra,
        estimator="iv_twfe",
        dependent=y,
        fixed_effects=list(d.prep["fe_names"]),
        cluster_var=cluster,
        controls=list(d.controls),
        vcov_values=ss.V * np.outer(unit2, unit2),
        vcov_names=names2,
        iv=iv,
    )


def _stats():
    """The three distribution functions used here, ``scipy.special``'s (loaded by
    :mod:`nqp_resilience.scipy_kernels`): ``scipy.stats`` costs about a second to import, which
    a specification job would pay every time."""
    from types import SimpleNamespace

    from nqp_resilience.scipy_kernels import special

    chdtrc, fdtrc, fdtri = special("chdtrc", "fdtrc", "fdtri")

    return SimpleNamespace(
        f=SimpleNamespace(
            sf=lambda x, d1, d2: fdtrc(d1, d2, x), ppf=lambda q, d1, d2: fdtri(d1, d2, q)
        ),
        chi2=SimpleNamespace(sf=lambda x, k: chdtrc(k, x)),
    )
