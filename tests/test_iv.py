"""Fixed-effects 2SLS (ivreghdfe-style) against pyfixest, published Stata ivreg2 output,
independent matrix formulas and a small Monte Carlo.

Every test states its tolerance and the source of the reference numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation import core as fe
from nqp_resilience.estimation.iv import (
    canonical_correlations,
    iv_twfe,
    kp_rank_test,
    stock_yogo,
    stock_yogo_table,
)

DATA = Path(__file__).parent / "data" / "iv"
CONTROLS_CARD = ["exper", "expersq", "black", "south"]


def _panel(n_ids=80, n_t=8, seed=0, pi=0.7, unbalanced=False):
    """y = 0.5·x + 0.3·c1 − 0.2·c2 + a_i + g_t + e; x = pi·z + 0.3·c1 + a_i + g_t + v; e and v
    correlated (x endogenous), cluster-level shocks in e; z correlated with a_i; z2 a second
    (valid) instrument; w analytic weights."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), n_t)
    t = np.tile(np.arange(n_t), n_ids)
    a, g = rng.normal(size=n_ids)[ids], rng.normal(size=n_t)[t]
    z = rng.normal(size=ids.size) + 0.5 * a
    z2 = rng.normal(size=ids.size) + 0.3 * g
    v = rng.normal(size=ids.size)
    c1, c2 = rng.normal(size=ids.size), rng.normal(size=ids.size)
    x = pi * z + 0.4 * z2 + 0.3 * c1 + a + g + v
    e = 0.6 * v + rng.normal(size=ids.size) + rng.normal(size=n_ids)[ids]
    y = 0.5 * x + 0.3 * c1 - 0.2 * c2 + a + g + e
    df = pd.DataFrame(
        {
            "id": ids,
            "t": t,
            "y": y,
            "x": x,
            "z": z,
            "z2": z2,
            "c1": c1,
            "c2": c2,
            "w": rng.uniform(0.2, 3.0, ids.size),
            "region": ids % 13,
        }
    )
    if unbalanced:
        df = df.sample(frac=0.85, random_state=1).sort_values(["id", "t"]).reset_index(drop=True)
    return df


def _card():
    """Card (1995) data, see tests/data/iv/README.md; lwage rebuilt as float32(log(wage))."""
    d = pd.read_csv(DATA / "card.csv")
    d["lwage"] = np.log(d["wage"].to_numpy(dtype=float)).astype(np.float32).astype(float)
    d["expersq"] = d["exper"] ** 2
    return d


# ---------------------------------------------------------------------------------------------
# (b) reference tests: pyfixest
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("unbalanced", [False, True])
@pytest.mark.parametrize("weights", [None, "w"])
def test_coef_se_match_pyfixest_crv1(unbalanced, weights):
    """pyfixest 0.60 ``feols("y ~ c1 + c2 | id + t | x ~ z", vcov={"CRV1": "id"})`` (default ssc:
    K counts FE levels not nested in the clusters, like reghdfe/ivreghdfe).
    Tolerance: relative 1e-6 on every coefficient and SE; observed ≤ 1e-10."""
    pf = pytest.importorskip("pyfixest")
    df = _panel(unbalanced=unbalanced)
    res = iv_twfe(df, "y", "x", "z", ["c1", "c2"], "id", "t", "id", weights=weights)
    m = pf.feols("y ~ c1 + c2 | id + t | x ~ z", data=df, vcov={"CRV1": "id"}, weights=weights)
    for name in ("x", "c1", "c2"):
        assert res.params[name] == pytest.approx(m.coef()[name], rel=1e-6)
        assert res.bse[name] == pytest.approx(m.se()[name], rel=1e-6)
    assert res.coef == res.params["x"] and res.se == res.bse["x"]
    assert res.nobs == m._N and res.n_clusters == df["id"].nunique()
    assert res.df_resid == res.n_clusters - 1
    lo, hi = res.ci
    assert (lo + hi) / 2 == pytest.approx(res.coef) and res.t == pytest.approx(res.coef / res.se)


@pytest.mark.parametrize("weights", [None, "w"])
def test_first_stage_matches_pyfixest(weights):
    """pyfixest's ``IV_Diag()`` first-stage F (``_f_stat_1st_stage``) is the Wald test of the
    excluded instruments in its first-stage ``feols`` fitted with the *same* vcov as the IV model:
    with ``{"CRV1": "id"}`` it is the CR1 cluster-robust F, with ``"iid"`` the classical F. Like is
    compared with like: CR1 → ``first_stage_F`` (and ``kp_f``, equal for one endogenous
    regressor); iid → ``cd_f`` (the Cragg–Donald F equals the classical first-stage F for one
    endogenous regressor; with ``cluster=None`` the absorbed dof are the same as pyfixest's).
    First-stage coefficient/SE vs pyfixest's first-stage model. Tolerance: relative 1e-6."""
    pf = pytest.importorskip("pyfixest")
    df = _panel(seed=3)
    m = pf.feols("y ~ c1 + c2 | id + t | x ~ z + z2", data=df, vcov={"CRV1": "id"}, weights=weights)
    m.IV_Diag()
    res = iv_twfe(df, "y", "x", ["z", "z2"], ["c1", "c2"], "id", "t", "id", weights=weights)
    assert res.extra["first_stage_F"] == pytest.approx(m._f_stat_1st_stage, rel=1e-6)
    assert res.extra["kp_f"] == pytest.approx(m._f_stat_1st_stage, rel=1e-6)
    fs = m._model_1st_stage
    assert res.extra["first_stage_coef"] == pytest.approx(fs.coef()["z"], rel=1e-6)
    assert res.extra["first_stage_se"] == pytest.approx(fs.se()["z"], rel=1e-6)
    assert res.extra["first_stage"]["x"]["se"]["z2"] == pytest.approx(fs.se()["z2"], rel=1e-6)

    m_iid = pf.feols("y ~ c1 + c2 | id + t | x ~ z + z2", data=df, vcov="iid", weights=weights)
    m_iid.IV_Diag()
    res_hc = iv_twfe(df, "y", "x", ["z", "z2"], ["c1", "c2"], "id", "t", None, weights=weights)
    assert res_hc.extra["cd_f"] == pytest.approx(m_iid._f_stat_1st_stage, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# (b) reference tests: published Stata ivreg2 output
# ---------------------------------------------------------------------------------------------

# Stata ivreg2 4.1 results exported by the R package ivreg2r's benchmark generators
# (GitHub restatr/ivreg2r, tests/stata-benchmarks/): see tests/data/iv/README.md.
# card_just_id_diagnostics_hc1.csv + card_just_id_coef_hc1.csv, commit 8b9278784a76:
#   ivreg2 lwage exper expersq black south (educ = nearc4), first robust endog(educ)
STATA_CARD_JUSTID_HC = {
    "idstat": 36.29487536068563,
    "iddf": 1,
    "idp": 1.69609260939e-09,
    "widstat": 36.95573706485129,
    "cdf": 35.19636422812735,
    "arf": 41.21740462352992,
    "archi2": 41.29972966605362,
    "r2": -0.1343134882993313,
    "b_educ": 0.2213902429585039,
    "se_educ_hc0": 0.0403033688719513,
}
# card_overid_diagnostics_hc1.csv, commit 8b9278784a76:
#   ivreg2 lwage exper expersq black south (educ = nearc2 nearc4), first robust endog(educ)
STATA_CARD_OVERID_HC = {
    "idstat": 40.07919463212782,
    "iddf": 2,
    "widstat": 20.42000777158254,
    "cdf": 19.68298484786327,
    "arf": 27.85140644476052,
    "archi2": 55.8326562762099,
}
# card_pw_diagnostics_cl.csv + card_pw_coef_cl_small.csv, commit 89139bdc7acc
# (generate-weight-type-fixtures.do; region = reg661*1 + … + reg669*9, 9 clusters):
#   ivreg2 lwage exper expersq black south (educ = nearc4 nearc2) [pw=weight], first endog(educ)
#          cluster(region) [small]
STATA_CARD_PW_CL = {
    "idstat": 5.133281919011773,
    "iddf": 2,
    "idp": 0.0767930636852286,
    "widstat": 13.82920510284544,
    "cdf": 19.44475613604169,
    "arf": 15.3444530981263,
    "arfp": 0.0018281597436333,
    "ardf_r": 8,
    "archi2": 34.59400052866785,
    "N_clust": 9,
    "r2": -0.4987624670245479,
    "b_educ": 0.2666133736442258,
    "se_educ_cl_small": 0.0702877940082479,
}

# Statistics built from educ and the instruments only are exact functions of integer data
# (observed agreement ~1e-15); those involving lwage inherit a float32 storage difference of the
# Stata copy (README), observed ≤ 3e-7 relative.
TOL_EXACT, TOL_LWAGE = 1e-9, 2e-6


def test_kp_matches_stata_card_robust():
    """Kleibergen–Paap rk LM / rk Wald F (heteroskedasticity-robust), Cragg–Donald F, AR test and
    the 2SLS estimate on Card, just-identified. Source: STATA_CARD_JUSTID_HC above. ivreg2 prints
    these with %8.3f; we require relative 1e-9 (KP, CD) and 2e-6 (lwage-dependent)."""
    d = _card()
    res = iv_twfe(d, "lwage", "educ", "nearc4", CONTROLS_CARD, None, None, None)
    ref, e = STATA_CARD_JUSTID_HC, res.extra
    assert e["kp_lm"] == pytest.approx(ref["idstat"], rel=TOL_EXACT)
    assert e["kp_lm_df"] == ref["iddf"]
    assert e["kp_lm_p"] == pytest.approx(ref["idp"], rel=1e-6)
    assert e["kp_f"] == pytest.approx(ref["widstat"], rel=TOL_EXACT)
    assert e["cd_f"] == pytest.approx(ref["cdf"], rel=TOL_EXACT)
    assert e["ar_stat"] == pytest.approx(ref["arf"], rel=TOL_LWAGE)
    assert e["ar_chi2"] == pytest.approx(ref["archi2"], rel=TOL_LWAGE)
    assert res.coef == pytest.approx(ref["b_educ"], rel=TOL_LWAGE)
    # ivreg2 without `small` reports HC0; ours is HC1 (reghdfe): the ratio is sqrt(N/(N-K)), K = 6
    assert res.se == pytest.approx(ref["se_educ_hc0"] * math.sqrt(3010 / 3004), rel=TOL_LWAGE)
    # no fixed effects: overall and within R² are both ivreg2's centred R²
    assert res.r2 == pytest.approx(ref["r2"], rel=TOL_LWAGE)
    assert res.r2_within == pytest.approx(ref["r2"], rel=TOL_LWAGE)
    assert e["stock_yogo"] == {"10%": 16.38, "15%": 8.96, "20%": 6.66, "25%": 5.53}


def test_kp_matches_stata_card_robust_overidentified():
    """As above with two instruments (rank test with 2 df). Source: STATA_CARD_OVERID_HC."""
    d = _card()
    res = iv_twfe(d, "lwage", "educ", ["nearc2", "nearc4"], CONTROLS_CARD, None, None, None)
    ref, e = STATA_CARD_OVERID_HC, res.extra
    assert e["kp_lm"] == pytest.approx(ref["idstat"], rel=TOL_EXACT)
    assert e["kp_lm_df"] == ref["iddf"]
    assert e["kp_f"] == pytest.approx(ref["widstat"], rel=TOL_EXACT)
    assert e["cd_f"] == pytest.approx(ref["cdf"], rel=TOL_EXACT)
    assert e["ar_stat"] == pytest.approx(ref["arf"], rel=TOL_LWAGE)
    assert e["ar_chi2"] == pytest.approx(ref["archi2"], rel=TOL_LWAGE)
    assert e["ar_df"] == [2, 3003]
    assert e["stock_yogo"] == {"10%": 19.93, "15%": 11.59, "20%": 8.75, "25%": 7.25}


def test_kp_matches_stata_card_weighted_cluster():
    """Cluster-robust KP statistics with ivreg2's cluster dof factor, with analytic weights
    ([pw=] is [aw=] + robust in ivreg2), 9 clusters. Source: STATA_CARD_PW_CL above.
    Tolerance: relative 1e-9 (KP, CD), 2e-6 (coefficient, SE, AR, R²)."""
    d = _card()
    res = iv_twfe(
        d,
        "lwage",
        "educ",
        ["nearc4", "nearc2"],
        CONTROLS_CARD,
        None,
        None,
        "region",
        weights="weight",
    )
    ref, e = STATA_CARD_PW_CL, res.extra
    assert res.n_clusters == ref["N_clust"] and res.df_resid == ref["N_clust"] - 1
    assert e["kp_lm"] == pytest.approx(ref["idstat"], rel=TOL_EXACT)
    assert e["kp_lm_p"] == pytest.approx(ref["idp"], rel=1e-8)
    assert e["kp_f"] == pytest.approx(ref["widstat"], rel=TOL_EXACT)
    assert e["cd_f"] == pytest.approx(ref["cdf"], rel=TOL_EXACT)
    assert e["ar_stat"] == pytest.approx(ref["arf"], rel=TOL_LWAGE)
    assert e["ar_p"] == pytest.approx(ref["arfp"], rel=1e-5)
    assert e["ar_df"] == [2, ref["ardf_r"]]
    assert e["ar_chi2"] == pytest.approx(ref["archi2"], rel=TOL_LWAGE)
    # CR1 with q = G/(G−1)·(N−1)/(N−K) is ivreg2's `small` cluster VCE
    assert res.coef == pytest.approx(ref["b_educ"], rel=TOL_LWAGE)
    assert res.se == pytest.approx(ref["se_educ_cl_small"], rel=TOL_LWAGE)
    assert res.r2 == pytest.approx(ref["r2"], rel=TOL_LWAGE)


# ---------------------------------------------------------------------------------------------
# (a) identities and independent formulas
# ---------------------------------------------------------------------------------------------


def _partialled(df, y, x, zs, controls, fes, w=None):
    """Independent FWL: demean with fe.demean, then partial the controls by least squares."""
    prep = fe.prepare(df, [y, x, *zs, *controls], fes, "id", w)
    ww = np.ones(len(prep["X"])) if prep["w"] is None else prep["w"]
    til = fe.demean(prep["X"], prep["absorb"], prep["w"])
    c = til[:, 2 + len(zs) :]
    sw = np.sqrt(ww)[:, None]
    coef = np.linalg.lstsq(c * sw, til[:, : 2 + len(zs)] * sw, rcond=None)[0]
    r = til[:, : 2 + len(zs)] - c @ coef
    return r[:, 0], r[:, 1], r[:, 2:], ww, prep["cluster"]


@pytest.mark.parametrize("weights", [None, "w"])
def test_rk_wald_equals_first_stage_cluster_wald(weights):
    """For one endogenous regressor the rk Wald statistic *is* the cluster-robust Wald test of the
    excluded instruments in the first stage: ranktest's chi2 = π̂'V0⁻¹π̂ with V0 the CR0 sandwich,
    and ivreg2's factor (G−1)/G·(N−K)/(N−1) turns it into the CR1 F that reghdfe reports.
    Checked against a direct numpy computation. Tolerance: relative 1e-10."""
    df = _panel(seed=5)
    res = iv_twfe(df, "y", "x", ["z", "z2"], ["c1", "c2"], "id", "t", "id", weights=weights)
    _, x, z, w, cl = _partialled(df, "y", "x", ["z", "z2"], ["c1", "c2"], ["id", "t"], weights)
    bread = np.linalg.inv(z.T @ (z * w[:, None]))
    pi = bread @ z.T @ (w * x)
    v = x - z @ pi
    s = np.zeros((cl.max() + 1, 2))
    np.add.at(s, cl, z * (w * v)[:, None])
    V0 = bread @ s.T @ s @ bread
    wald0 = pi @ np.linalg.solve(V0, pi)
    assert res.extra["kp_wald_chi2"] == pytest.approx(wald0, rel=1e-10)
    assert res.extra["kp_f"] == pytest.approx(res.extra["first_stage_F"], rel=1e-10)
    n, G, K = res.nobs, res.n_clusters, res.extra["df_k_first_stage"]
    assert res.extra["first_stage_F"] == pytest.approx(
        wald0 / 2 * (G - 1) / G * (n - K) / (n - 1), rel=1e-10
    )


def test_kp_lm_direct_formula_and_svd_path():
    """KP rk LM for one endogenous regressor = uncentred cluster-robust score statistic
    (Z'Wx)'[Σ_g s_g s_g']⁻¹(Z'Wx), s_g = Σ_{i∈g} w_i z_i x_i (ranktest's rank-0 branch); the
    general SVD algorithm (Kleibergen–Paap eqs. 15–21) gives the same number for K1 = 1, in both
    LM and Wald versions, clustered and heteroskedastic. Tolerance: relative 1e-9."""
    df = _panel(seed=6)
    _, x, z, w, cl = _partialled(df, "y", "x", ["z", "z2"], ["c1"], ["id", "t"], "w")
    res = iv_twfe(df, "y", "x", ["z", "z2"], ["c1"], "id", "t", "id", weights="w")
    s = np.zeros((cl.max() + 1, 2))
    np.add.at(s, cl, z * (w * x)[:, None])
    g = z.T @ (w * x)
    assert res.extra["kp_lm"] == pytest.approx(g @ np.linalg.solve(s.T @ s, g), rel=1e-9)
    for clusters in (cl, None):
        for wald in (False, True):
            a = kp_rank_test(x, z, w, clusters, wald=wald)[0]
            b = kp_rank_test(x, z, w, clusters, wald=wald, method="svd")[0]
            assert a == pytest.approx(b, rel=1e-9)


def test_kp_multi_endogenous_invariance():
    """Two endogenous regressors (the bonus case): the rk statistics are invariant to nonsingular
    linear transformations of the endogenous regressors and of the instruments (a defining
    property of the KP statistic), the underidentification df is L − K1 + 1, and a design whose
    second endogenous regressor is not identified has a small statistic. Tolerance: 1e-8."""
    rng = np.random.default_rng(11)
    n, G = 600, 40
    cl = rng.integers(0, G, n)
    z = rng.normal(size=(n, 4))
    x = z @ np.array([[1.0, 0.2], [0.5, 0.8], [0.0, 0.4], [0.3, 0.0]]) + rng.normal(size=(n, 2))
    w = rng.uniform(0.5, 2.0, n)
    A = np.array([[1.0, 2.0], [-0.5, 1.5]])
    B = rng.normal(size=(4, 4)) + 3 * np.eye(4)
    for wald in (False, True):
        for clusters in (cl, None):
            base, df_ = kp_rank_test(x, z, w, clusters, wald=wald)
            assert df_ == 3
            assert kp_rank_test(x @ A, z @ B, w, clusters, wald=wald)[0] == pytest.approx(
                base, rel=1e-8
            )
    x_bad = np.column_stack([x[:, 0], 2 * x[:, 0] + 0.01 * (z @ np.ones(4)) + rng.normal(size=n)])
    assert kp_rank_test(x_bad, z, w, cl)[0] < kp_rank_test(x, z, w, cl)[0] / 5

    df = pd.DataFrame(
        {
            "y": x @ np.array([0.5, -0.3]) + rng.normal(size=n),
            "x1": x[:, 0],
            "x2": x[:, 1],
            **{f"z{j}": z[:, j] for j in range(4)},
            "g": cl,
        }
    )
    res = iv_twfe(df, "y", ["x1", "x2"], [f"z{j}" for j in range(4)], None, None, None, "g")
    assert res.regressor == "x1" and set(res.params) == {"x1", "x2"}
    assert res.extra["kp_lm_df"] == 3 and res.extra["stock_yogo"]["10%"] == 16.87
    assert res.extra["ar_ci"] is None and 0 <= res.extra["ar_p"] <= 1


def test_absorbed_fe_equal_dummies_up_to_dof():
    """Absorbing the entity FE or including entity dummies as controls gives the same 2SLS
    estimate and the same KP LM (it has no dof factor); KP F, CD F and the first-stage F differ
    exactly by (N − K_abs)/(N − K_dummies), the absorbed count excluding the FE nested in the
    clusters (ivreghdfe's sdofminus = reghdfe's df_a). Tolerance: relative 1e-8."""
    df = _panel(n_ids=30, n_t=6, seed=8)
    dummies = pd.get_dummies(df["id"], prefix="d", drop_first=True, dtype=float)
    dd = pd.concat([df, dummies], axis=1)
    res_abs = iv_twfe(df, "y", "x", ["z", "z2"], ["c1"], "id", None, "id")
    res_dum = iv_twfe(dd, "y", "x", ["z", "z2"], ["c1", *dummies.columns], None, None, "id")
    assert res_abs.coef == pytest.approx(res_dum.coef, rel=1e-8)
    assert res_abs.extra["kp_lm"] == pytest.approx(res_dum.extra["kp_lm"], rel=1e-8)
    n = res_abs.nobs
    assert res_abs.extra["df_k_first_stage"] == 2 + 1 + 1  # id nested in the clusters: absorbs 1
    ratio = (n - res_abs.extra["df_k_first_stage"]) / (n - res_dum.extra["df_k_first_stage"])
    for key in ("kp_f", "cd_f", "first_stage_F"):
        assert res_abs.extra[key] == pytest.approx(res_dum.extra[key] * ratio, rel=1e-8)
    assert res_abs.extra["partial_r2"] == pytest.approx(res_dum.extra["partial_r2"], rel=1e-8)


def test_r2_definitions():
    """r2 = 1 − RSS/TSS (structural residuals y − Xβ̂ net of the fixed effects, TSS around the
    mean: reghdfe's r2), r2_within = 1 − RSS/Σỹ² (ivreghdfe's e(r2)); checked with an LSDV
    regression of y − Xβ̂ on the dummies. Partial R² = canonical correlation² for K1 = 1.
    Tolerance: 1e-9."""
    df = _panel(n_ids=25, n_t=5, seed=9)
    res = iv_twfe(df, "y", "x", "z", ["c1", "c2"], "id", "t", "id")
    resid0 = (
        df["y"] - res.coef * df["x"] - res.params["c1"] * df["c1"] - res.params["c2"] * df["c2"]
    )
    D = (
        pd.get_dummies(df[["id", "t"]].astype(str), drop_first=True, dtype=float)
        .assign(const=1.0)
        .to_numpy()
    )
    u = resid0 - D @ np.linalg.lstsq(D, resid0, rcond=None)[0]
    rss = float(u @ u)
    ytil = fe.demean(df[["y"]].to_numpy(float), fe.prepare(df, ["y"], ["id", "t"], None)["absorb"])[
        :, 0
    ]
    assert res.r2 == pytest.approx(
        1 - rss / float(((df["y"] - df["y"].mean()) ** 2).sum()), rel=1e-9
    )
    assert res.r2_within == pytest.approx(1 - rss / float(ytil @ ytil), rel=1e-9)
    _, x, z, w, _ = _partialled(df, "y", "x", ["z"], ["c1", "c2"], ["id", "t"])
    assert res.extra["partial_r2"] == pytest.approx(
        canonical_correlations(x[:, None], z, w)[0] ** 2, rel=1e-9
    )


# ---------------------------------------------------------------------------------------------
# Anderson–Rubin
# ---------------------------------------------------------------------------------------------


def _ar_design(seed, G=30, T=6, pi=0.6, beta=0.5, rho=0.6):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(G), T)
    a = rng.normal(size=G)[ids]
    z = rng.normal(size=ids.size) + rng.normal(size=G)[ids]
    v = rng.normal(size=ids.size)
    x = pi * z + a + v
    u = (
        rho * v
        + math.sqrt(1 - rho**2) * rng.normal(size=ids.size)
        + 0.5 * rng.normal(size=G)[ids] * rng.normal(size=ids.size)
    )
    return pd.DataFrame(
        {"id": ids, "y": beta * x + a + u, "x": x, "z": z, "z2": rng.normal(size=ids.size)}
    )


def test_ar_ci_strong_iv_contains_estimate_and_matches_grid():
    """Strong IV, one instrument: the analytic AR set is one bounded interval around the 2SLS
    estimate (where AR = 0 exactly), its endpoints have W(β0) = critical value, and a user grid
    inverts to the same interval (tolerance 1e-6 absolute; the grid is root-refined).
    Two instruments: the exactly inverted set is bounded and contains the 2SLS estimate."""
    from scipy import stats

    df = _ar_design(1)
    res = iv_twfe(df, "y", "x", "z", None, "id", None, "id")
    e = res.extra
    assert e["ar_ci_kind"] == "bounded" and e["ar_ci_method"] == "analytic"
    ((lo, hi),) = e["ar_ci"]
    assert lo < res.coef < hi
    grid = np.linspace(res.coef - 3, res.coef + 3, 601)
    res_g = iv_twfe(df, "y", "x", "z", None, "id", None, "id", ar_grid=grid)
    ((glo, ghi),) = res_g.extra["ar_ci"]
    assert (glo, ghi) == pytest.approx((lo, hi), abs=1e-6)
    # a grid narrower than the set: the boundaries are found outside it (no truncation)
    narrow = iv_twfe(
        df, "y", "x", "z", None, "id", None, "id", ar_grid=[res.coef - 0.01, res.coef + 0.01]
    )
    assert narrow.extra["ar_ci_kind"] == "bounded"
    assert narrow.extra["ar_ci"][0] == pytest.approx((lo, hi), abs=1e-6)
    # at the endpoints the AR F equals the 95 % critical value of F(1, G−1)
    d = df.assign(y_lo=df["y"] - lo * df["x"])
    at_lo = iv_twfe(d, "y_lo", "x", "z", None, "id", None, "id").extra
    assert at_lo["ar_stat"] == pytest.approx(stats.f.ppf(0.95, 1, 29), rel=1e-6)

    res2 = iv_twfe(df, "y", "x", ["z", "z2"], None, "id", None, "id")
    assert res2.extra["ar_ci_method"] == "polynomial" and res2.extra["ar_ci_kind"] == "bounded"
    ((lo2, hi2),) = res2.extra["ar_ci"]
    assert lo2 < res2.coef < hi2


def test_ar_ci_coverage_monte_carlo():
    """Coverage of the 95 % cluster-robust AR set for the true β = 0.5 in 300 simulated panels
    (30 clusters × 6 periods, entity FE, strong instrument). Deterministic seeds; observed 0.970.
    Acceptance band [0.92, 0.99] (±3 binomial SE around 0.95, conservative side allowed)."""
    hits = 0
    for seed in range(300):
        ((lo, hi),) = iv_twfe(_ar_design(seed), "y", "x", "z", None, "id", None, "id").extra[
            "ar_ci"
        ]
        hits += lo <= 0.5 <= hi
    assert 0.92 <= hits / 300 <= 0.99


def test_ar_ci_weak_iv_reports_unbounded_sets():
    """Weak instrument (first-stage coefficient 0.15): the AR set is unbounded (a union of two
    rays or the whole line) exactly when the first-stage F is below the F(1, G−1) critical value,
    and is then reported with infinite endpoints; the true β stays inside. The exact inversions
    agree with each other and with a fine grid: for L = 1 closed form = polynomial roots; for
    L = 2 polynomial roots = grid over [−30, 30] (step 0.01, root-refined). Tolerance 1e-6."""
    from scipy import stats

    from nqp_resilience.estimation.iv import _ARProblem

    kinds, kinds2 = set(), set()
    crit = stats.f.ppf(0.95, 1, 29)
    for seed in range(12):
        df = _ar_design(seed, pi=0.15)
        res = iv_twfe(df, "y", "x", "z", None, "id", None, "id")
        e = res.extra
        bounded = e["first_stage_F"] > crit
        assert (e["ar_ci_kind"] in ("bounded", "empty")) == bounded
        if not bounded:
            assert e["ar_ci_kind"] in ("union", "real_line")
            assert e["ar_ci"][0][0] == -math.inf and e["ar_ci"][-1][1] == math.inf
            assert any(lo <= 0.5 <= hi for lo, hi in e["ar_ci"])
        kinds.add(e["ar_ci_kind"])
        # closed form vs polynomial roots on the same (partialled) problem
        _, x, z, w, cl = _partialled(df, "y", "x", ["z"], [], ["id"])
        yv = _partialled(df, "x", "y", ["z"], [], ["id"])[1]
        prob = _ARProblem(yv, x[:, None], z, w, cl, 30, 30 / 29 * (len(x) - 1) / (len(x) - 2), 29)
        poly, kind_p = prob.ci_polynomial(0.95, res.coef, 10 * res.se)
        assert kind_p == e["ar_ci_kind"] and np.allclose(poly, e["ar_ci"], atol=1e-6)
        # two instruments: polynomial roots (default) vs a fine grid
        e2 = iv_twfe(df, "y", "x", ["z", "z2"], None, "id", None, "id").extra
        g2 = iv_twfe(
            df, "y", "x", ["z", "z2"], None, "id", None, "id", ar_grid=np.linspace(-30, 30, 6001)
        ).extra
        assert e2["ar_ci_method"] == "polynomial" and g2["ar_ci_kind"] == e2["ar_ci_kind"]
        assert np.allclose(g2["ar_ci"], e2["ar_ci"], atol=1e-6)
        kinds2.add(e2["ar_ci_kind"])
    assert {"union", "real_line", "bounded"} <= kinds and {
        "union",
        "real_line",
        "bounded",
    } <= kinds2


# ---------------------------------------------------------------------------------------------
# Stock–Yogo table, errors
# ---------------------------------------------------------------------------------------------


def test_stock_yogo_table_transcription():
    """The four maximal-IV-size tables (ivreg2's s_ivsize10/15/20/25): 100 rows × (K1 = 1, 2),
    known entries, every column strictly increasing, and from row 11 on near-linear (second
    differences ≤ 0.025; the published two-decimal rounding gives at most 0.02), which catches a
    mistyped value anywhere in the long tail."""
    assert stock_yogo(1, 1) == {"10%": 16.38, "15%": 8.96, "20%": 6.66, "25%": 5.53}
    assert stock_yogo(2, 2) == {"10%": 7.03, "15%": 4.58, "20%": 3.95, "25%": 3.63}
    assert stock_yogo(2, 1) == {"10%": None, "15%": None, "20%": None, "25%": None}
    assert stock_yogo(3, 5)["10%"] is None and stock_yogo(1, 101)["25%"] is None
    assert stock_yogo(1, 100)["10%"] == 253.28 and stock_yogo(2, 100)["25%"] == 50.01
    assert stock_yogo(2, 3)["10%"] == 13.43 and stock_yogo(1, 5)["15%"] == 15.09
    assert stock_yogo(2, 7)["20%"] == 9.77 and stock_yogo(1, 9)["25%"] == 11.07
    for size in (10, 15, 20, 25):
        tab = stock_yogo_table(size)
        assert tab.shape == (100, 2) and np.isnan(tab[0, 1]) and not np.isnan(tab[1:]).any()
        for col, start in ((0, 2), (1, 3)):
            d1 = np.diff(tab[start - 1 :, col])
            assert (d1 > 0).all() and np.abs(np.diff(d1))[10:].max() <= 0.025


def test_time_invariant_instrument_with_entity_fe_raises():
    """A time-invariant instrument (like the paper's Relief) is absorbed by the entity FE: clear
    ConfigError naming the instrument and saying it has no within variation."""
    df = _panel(n_ids=20, n_t=5, seed=2)
    df["relief"] = df["id"].map(dict(enumerate(np.random.default_rng(0).uniform(0, 3, 20))))
    with pytest.raises(
        ConfigError, match=r"instrument 'relief' has no within variation.*time-invariant"
    ):
        iv_twfe(df, "y", "x", "relief", ["c1"], "id", "t", "id")
    # without the entity FE it is a valid instrument
    res = iv_twfe(df.assign(x=df["x"] + df["relief"]), "y", "x", "relief", ["c1"], None, "t", "id")
    assert math.isfinite(res.coef)


def test_bad_specifications_raise():
    df = _panel(n_ids=10, n_t=4, seed=4)
    with pytest.raises(ConfigError, match="not identified"):
        iv_twfe(df, "y", ["x", "c1"], "z", None, "id", "t", "id")
    with pytest.raises(ConfigError, match="not in the data"):
        iv_twfe(df, "y", "x", "nope", None, "id", "t", "id")
    with pytest.raises(ConfigError, match="more than one role"):
        iv_twfe(df, "y", "x", ["z", "x"], None, "id", "t", "id")
    with pytest.raises(ValueError, match="singletons"):
        iv_twfe(df, "y", "x", "z", None, "id", "t", "id", singletons="maybe")
