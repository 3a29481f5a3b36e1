"""Fixed-effects OLS (reghdfe-style CR1) against independent engines and planted effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.estimation.ols import EstimationError, drop_singletons, twfe

pf = pytest.importorskip("pyfixest")


def _panel(n_ids=60, n_t=8, seed=0, beta=0.5, unbalanced=False):
    """y = beta·x + 0.3·c1 − 0.2·c2 + a_i + g_t + e with x correlated with a_i."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), n_t)
    t = np.tile(np.arange(n_t), n_ids)
    a = rng.normal(size=n_ids)[ids]
    g = rng.normal(size=n_t)[t]
    x = 0.8 * a + rng.normal(size=ids.size)
    c1, c2 = rng.normal(size=ids.size), rng.normal(size=ids.size) + 0.3 * x
    cl_shock = rng.normal(size=n_ids)[ids] * rng.normal(size=ids.size) * 0.5
    y = beta * x + 0.3 * c1 - 0.2 * c2 + a + g + rng.normal(size=ids.size) + cl_shock
    df = pd.DataFrame(
        {
            "id": ids.astype(str),
            "t": t,
            "y": y,
            "x": x,
            "c1": c1,
            "c2": c2,
            "w": rng.uniform(0.2, 3.0, ids.size),
            "region": (ids % 7).astype(str),
        }
    )
    if unbalanced:
        df = df.sample(frac=0.85, random_state=1).sort_values(["id", "t"]).reset_index(drop=True)
    return df


@pytest.mark.parametrize("unbalanced", [False, True])
@pytest.mark.parametrize("weights", [None, "w"])
def test_twfe_matches_pyfixest_crv1(unbalanced, weights):
    """Tolerance: relative 1e-6 on coefficients and SEs (issue acceptance); observed ~1e-12."""
    df = _panel(unbalanced=unbalanced)
    res = twfe(df, "y", "x", ["c1", "c2"], "id", "t", "id", weights=weights)
    m = pf.feols("y ~ x + c1 + c2 | id + t", data=df, vcov={"CRV1": "id"}, weights=weights)
    for name in ("x", "c1", "c2"):
        assert res.params[name] == pytest.approx(m.coef()[name], rel=1e-6)
        assert res.bse[name] == pytest.approx(m.se()[name], rel=1e-6)
    assert res.nobs == m._N
    assert res.r2 == pytest.approx(m._r2, rel=1e-6)
    assert res.r2_within == pytest.approx(m._r2_within, rel=1e-6)
    assert res.p == pytest.approx(m.pvalue()["x"], rel=1e-6)
    lo, hi = m.confint().loc["x"]
    assert res.ci == pytest.approx((lo, hi), rel=1e-6)


def test_one_way_and_cluster_not_nested():
    """City FE only; and clustering by a coarser unit (region) in which year FE are not nested."""
    df = _panel()
    res = twfe(df, "y", "x", ["c1"], "id", None, "id")
    m = pf.feols("y ~ x + c1 | id", data=df, vcov={"CRV1": "id"})
    assert res.se == pytest.approx(m.se()["x"], rel=1e-6)
    res = twfe(df, "y", "x", ["c1"], "id", "t", "region")
    m = pf.feols("y ~ x + c1 | id + t", data=df, vcov={"CRV1": "region"})
    assert res.coef == pytest.approx(m.coef()["x"], rel=1e-6)
    assert res.se == pytest.approx(m.se()["x"], rel=1e-6)


def test_reghdfe_small_sample_factor_by_hand():
    """K = k + T with city and year FE clustered by city (city FE nested, not counted):
    the CR1 factor is G/(G−1)·(N−1)/(N−K); compare with statsmodels on explicit dummies,
    whose K counts every dummy, by undoing the two factors."""
    import statsmodels.api as sm

    df = _panel(n_ids=30, n_t=5)
    res = twfe(df, "y", "x", [], "id", "t", "id")
    X = pd.get_dummies(
        df[["x", "id", "t"]].astype({"t": str}), columns=["id", "t"], drop_first=True, dtype=float
    )
    ols = sm.OLS(df["y"], sm.add_constant(X)).fit(
        cov_type="cluster", cov_kwds={"groups": df["id"].astype(int)}
    )
    n = len(df)
    k_sm = X.shape[1] + 1  # every dummy + constant
    k_hdfe = 1 + 5  # x + (T − 1) year effects + constant
    ratio = ((n - 1) / (n - k_hdfe)) / ((n - 1) / (n - k_sm))
    assert res.coef == pytest.approx(ols.params["x"], rel=1e-9)
    assert res.se == pytest.approx(ols.bse["x"] * np.sqrt(ratio), rel=1e-9)
    assert res.extra["df_k"] == k_hdfe


def test_city_trends_match_explicit_dummies():
    """City-specific linear trends = city dummies × t as regressors (statsmodels, same estimate)."""
    import statsmodels.api as sm

    df = _panel(n_ids=20, n_t=6, seed=4)
    res = twfe(df, "y", "x", ["c1"], "id", "t", "id", trends="id")
    D = pd.get_dummies(df["id"], dtype=float)
    trends = D.mul(df["t"], axis=0).add_prefix("tr_")
    T = pd.get_dummies(df["t"].astype(str), dtype=float, drop_first=True).add_prefix("yr_")
    X = pd.concat([df[["x", "c1"]], D, trends, T], axis=1)
    ols = sm.OLS(df["y"], X).fit()  # rank-deficient by design (dummies + year effects): pinv
    assert res.coef == pytest.approx(ols.params["x"], rel=1e-8)


def test_planted_effect_is_recovered():
    df = _panel(n_ids=300, n_t=10, seed=11, beta=0.7)
    res = twfe(df, "y", "x", ["c1", "c2"], "id", "t", "id")
    assert abs(res.coef - 0.7) < 2 * res.se
    assert res.params["c1"] == pytest.approx(0.3, abs=3 * res.bse["c1"])


def test_singletons_are_dropped_like_reghdfe():
    groups = [np.array([0, 0, 1, 2, 2, 3]), np.array([0, 1, 0, 1, 1, 2])]
    # pass 1: id 1 (obs 2) and id 3 (obs 5) are singletons; t = 2 (obs 5) too.
    # pass 2: t = 0 now holds only obs 0 -> dropped; pass 3: id 0 holds only obs 1 -> dropped.
    # Left: obs 3 and 4 (id 2, t 1), as reghdfe's iterative rule gives.
    np.testing.assert_array_equal(drop_singletons(groups), [False, False, False, True, True, False])
    df = _panel(n_ids=20, n_t=4)
    extra = pd.DataFrame(
        {
            "id": ["lonely"],
            "t": [0],
            "y": [1.0],
            "x": [0.5],
            "c1": [0.0],
            "c2": [0.0],
            "w": [1.0],
            "region": ["0"],
        }
    )
    df2 = pd.concat([df, extra], ignore_index=True)
    dropped = twfe(df2, "y", "x", [], "id", "t", "id")
    kept = twfe(df2, "y", "x", [], "id", "t", "id", singletons="keep")
    assert dropped.nobs == len(df) and kept.nobs == len(df) + 1
    assert dropped.coef == pytest.approx(kept.coef, rel=1e-9)  # a singleton does not move the slope


def test_regressor_absorbed_by_fe_is_an_error():
    df = _panel()
    df["const_in_id"] = df["id"].astype(int) * 1.0
    with pytest.raises(EstimationError, match="no variation left"):
        twfe(df, "y", "const_in_id", [], "id", "t", "id")


def test_constant_like_reghdfe():
    """reghdfe's _cons = ȳ − x̄'β on the estimation sample."""
    df = _panel()
    res = twfe(df, "y", "x", ["c1"], "id", "t", "id")
    expected = (
        df["y"].mean() - res.params["x"] * df["x"].mean() - res.params["c1"] * df["c1"].mean()
    )
    assert res.params["_cons"] == pytest.approx(expected, rel=1e-10)
    assert res.bse["_cons"] > 0


def test_no_fixed_effects_is_ols_with_intercept():
    """entity=None, time=None: OLS with an intercept, CR1 as Stata's regress, vce(cluster)."""
    import statsmodels.api as sm

    df = _panel(n_ids=40, n_t=5, seed=8)
    df["y"] = df["y"] + 3.0
    res = twfe(df, "y", "x", ["c1"], None, None, "id")
    ols = sm.OLS(df["y"], sm.add_constant(df[["x", "c1"]])).fit(
        cov_type="cluster", cov_kwds={"groups": df["id"].astype(int)}
    )
    assert res.coef == pytest.approx(ols.params["x"], rel=1e-9)
    assert res.se == pytest.approx(ols.bse["x"], rel=1e-9)  # K = 3 in both
    assert res.params["_cons"] == pytest.approx(ols.params["const"], rel=1e-9)


def test_rows_with_missing_cluster_are_dropped():
    df = _panel(n_ids=30, n_t=4)
    df["cl"] = df["id"].astype(object)
    df.loc[:5, "cl"] = None
    res = twfe(df, "y", "x", [], "id", "t", "cl")
    assert res.nobs < len(df)
