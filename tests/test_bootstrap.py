"""The wild cluster bootstrap (estimation/bootstrap.py): the closed form against the regression
rerun on every draw, determinism, options and errors, agreement with twfe, recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from nqp_resilience import twfe, wild_cluster_bootstrap
from nqp_resilience.errors import EstimationError, ProjectError
from nqp_resilience.estimation.bootstrap import TIE_TOL
from nqp_resilience.estimation.core import OptionError


def _panel(n_city: int, n_year: int, beta: float, seed: int, n_prov: int | None = None):
    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(n_city), n_year)
    year = np.tile(np.arange(2010, 2010 + n_year), n_city)
    ce, ye = rng.normal(size=n_city), rng.normal(size=n_year)
    shock = rng.normal(size=n_city)[city]  # within-cluster correlation
    x = 0.5 * ce[city] + 0.3 * ye[year - 2010] + rng.normal(size=len(city)) + 0.5 * shock
    c = rng.normal(size=len(city))
    y = beta * x + 0.2 * c + ce[city] + ye[year - 2010] + shock + rng.normal(size=len(city))
    df = pd.DataFrame({"city": city, "year": year, "x": x, "c": c, "y": y})
    if n_prov is not None:
        df["prov"] = df["city"] % n_prov
    return df.iloc[1:].reset_index(drop=True)  # unbalanced: the year effects are not orthogonal


def _p(tstar, t, p_type):
    tol = TIE_TOL * max(1.0, abs(t))
    if p_type == "symmetric":
        return float(np.mean(np.abs(tstar) >= abs(t) - tol))
    return float(min(1.0, 2 * min(np.mean(tstar <= t + tol), np.mean(tstar >= t - tol))))


def _brute(df, null, variant, p_type, bcl="city", trends=False):
    """p-value by rerunning the regression with explicit dummies (and city trends) for every
    Rademacher draw."""
    n_year = df["year"].nunique()
    cities = pd.get_dummies(df["city"]).to_numpy(float)
    years = pd.get_dummies(df["year"]).to_numpy(float)[:, 1:]
    X = np.column_stack([df["x"], df["c"], cities, years])
    if trends:  # city-specific slopes in the year (nested in the city clusters: K unchanged);
        # the first city's slope is collinear with the year effects (Σ slopes = year)
        X = np.column_stack([X, (cities * (df["year"].to_numpy(float) - 2010)[:, None])[:, 1:]])
    Xr = X[:, 1:]
    y, x = df["y"].to_numpy(), df["x"].to_numpy()
    cl = df["city"].to_numpy()
    bcodes = pd.factorize(df[bcl])[0]
    n, G = len(y), len(np.unique(cl))
    q = G / (G - 1) * (n - 1) / (n - (2 + n_year))
    r = np.linalg.inv(X.T @ X)[0] @ X.T  # β_x = r·y

    def fit(Y):  # Y (n, B): β_x and CR1 se of every column
        coef = np.linalg.lstsq(X, Y, rcond=None)[0]
        E = Y - X @ coef
        sc = np.zeros((G, Y.shape[1]))
        np.add.at(sc, cl, r[:, None] * E)
        return coef[0], np.sqrt(q * (sc**2).sum(0))

    b, se = fit(y[:, None])
    t = (b[0] - null) / se[0]
    Gb = len(np.unique(bcodes))
    v = np.array(list(itertools.product([-1.0, 1.0], repeat=Gb))).T[bcodes]  # (n, 2^Gb)
    if variant == "wcr":
        yr = y - null * x
        fr = Xr @ np.linalg.lstsq(Xr, yr, rcond=None)[0]
        bs, ses = fit((null * x + fr)[:, None] + (yr - fr)[:, None] * v)
        tstar = (bs - null) / ses
    else:
        f = X @ np.linalg.lstsq(X, y, rcond=None)[0]
        bs, ses = fit(f[:, None] + (y - f)[:, None] * v)
        tstar = (bs - b[0]) / ses
    return _p(tstar, t, p_type)


def _wcb(df, **kw):
    args = dict(reps=9999, seed=1)
    args.update(kw)
    reps, seed = args.pop("reps"), args.pop("seed")
    return wild_cluster_bootstrap(df, "y", "x", ["c"], "city", "year", "city", reps, seed, **args)


@pytest.mark.parametrize("variant", ["wcr", "wcu"])
@pytest.mark.parametrize("p_type", ["symmetric", "equal-tailed"])
def test_enumeration_equals_brute_force(variant, p_type):
    df = _panel(8, 5, 0.2, seed=3)
    res = _wcb(df, variant=variant, p_type=p_type)
    assert res.extra["enumerated"] and res.extra["reps"] == 2**8
    for null in (0.0, 0.1, res.coef + 1.5 * res.se, res.coef - 2.5 * res.se):
        fast = res.extra["bootstrap_p"] if null == 0.0 else None
        if fast is None:
            fast = _wcb(df, variant=variant, p_type=p_type, null=null).extra["bootstrap_p"]
        assert abs(fast - _brute(df, null, variant, p_type)) < 1e-10, null
    alpha = 1 - 0.95
    lo, hi = res.extra["bootstrap_ci"]
    assert lo < res.coef < hi
    for end, side in ((lo, -1), (hi, 1)):
        d = 1e-8 * max(1.0, abs(end))
        assert _brute(df, end - side * d, variant, p_type) >= alpha  # inside: not rejected
        assert _brute(df, end + side * d, variant, p_type) < alpha  # outside: rejected


def test_coarser_bootstrap_cluster_equals_brute_force():
    df = _panel(12, 4, 0.2, seed=5, n_prov=5)
    for variant in ("wcr", "wcu"):
        res = _wcb(df, variant=variant, null=0.05, bootstrap_cluster="prov", reps=99)
        assert res.extra["enumerated"] and res.extra["reps"] == 32
        assert res.n_clusters == 12 and res.extra["bootstrap_clusters"] == 5
        brute = _brute(df, 0.05, variant, "symmetric", bcl="prov")
        assert abs(res.extra["bootstrap_p"] - brute) < 1e-10


def test_city_trends_equal_brute_force():
    df = _panel(9, 6, 0.2, seed=13)
    for variant in ("wcr", "wcu"):
        res = _wcb(df, variant=variant, null=0.1, trends="city")
        assert res.extra["enumerated"]
        brute = _brute(df, 0.1, variant, "symmetric", trends=True)
        assert abs(res.extra["bootstrap_p"] - brute) < 1e-10
    ref = twfe(df, "y", "x", ["c"], "city", "year", "city", trends="city")
    assert abs(res.coef - ref.coef) < 1e-12 and abs(res.se - ref.se) < 1e-12


def test_t_and_se_equal_twfe():
    df = _panel(30, 6, 0.3, seed=7)
    ref = twfe(df, "y", "x", ["c"], "city", "year", "city")
    res = _wcb(df, reps=199)
    assert abs(res.coef - ref.coef) < 1e-12 and abs(res.se - ref.se) < 1e-12
    assert abs(res.t - ref.t) < 1e-12 and abs(res.p - ref.p) < 1e-12
    assert res.ci == pytest.approx(ref.ci, abs=1e-12)
    assert (res.nobs, res.n_clusters) == (ref.nobs, ref.n_clusters)


def test_determinism_and_streams():
    df = _panel(25, 5, 0.1, seed=11)
    a = _wcb(df, reps=2500, seed=4)
    b = _wcb(df, reps=2500, seed=4)
    assert a.extra == b.extra
    assert not a.extra["enumerated"] and a.extra["reps"] == 2500
    assert a.extra["p"] == a.extra["bootstrap_p"] and a.extra["ci"] == a.extra["bootstrap_ci"]
    c = _wcb(df, reps=2500, seed=4, stream="baseline")  # another spec: other draws
    assert c.extra["stream"] == "baseline" and c.extra["bootstrap_ci"] != a.extra["bootstrap_ci"]
    assert _wcb(df, reps=2500, seed=4, stream="baseline").extra == c.extra
    d = _wcb(df, reps=2500, seed=5)
    assert d.extra["seed"] == 5 and d.extra["bootstrap_ci"] != a.extra["bootstrap_ci"]
    for w in ("webb", "mammen", "normal"):
        r = _wcb(df, reps=499, seed=4, weights=w)
        assert r.extra["weights"] == w and 0 < r.extra["bootstrap_p"] <= 1


def test_reps_seed_and_enumeration_rule():
    df = _panel(7, 4, 0.2, seed=2)
    assert _wcb(df, reps=128).extra["enumerated"]  # 2^7 ≤ 128
    r = _wcb(df, reps=127)
    assert not r.extra["enumerated"] and r.extra["reps"] == 127
    e1, e2 = _wcb(df, reps=999, seed=1), _wcb(df, reps=999, seed=2)
    assert e1.extra["bootstrap_p"] == e2.extra["bootstrap_p"]  # enumeration ignores the seed
    assert e1.extra["bootstrap_ci"] == e2.extra["bootstrap_ci"]


def test_errors():
    df = _panel(8, 4, 0.2, seed=2)
    with pytest.raises(EstimationError, match="reps"):
        _wcb(df, reps=98)
    for kw, choice in (("weights", "webb"), ("variant", "wcu"), ("p_type", "equal-tailed")):
        with pytest.raises(OptionError, match=choice) as info:
            _wcb(df, **{kw: "nope"})
        assert isinstance(info.value, ProjectError) and info.value.hint
    df["one"] = 1
    with pytest.raises(EstimationError, match="two bootstrap clusters"):
        _wcb(df, bootstrap_cluster="one")
    df["prov"] = (df["city"] % 3).astype(float)
    df.loc[5, "prov"] = np.nan
    with pytest.raises(EstimationError, match="missing") as info:
        _wcb(df, bootstrap_cluster="prov")
    assert info.value.hint


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovery(seed):
    null_true = _wcb(_panel(40, 8, 0.0, seed=seed), reps=999, seed=seed)
    assert null_true.extra["bootstrap_p"] > 0.01
    big = _wcb(_panel(40, 8, 0.5, seed=seed), reps=999, seed=seed)
    assert big.extra["bootstrap_p"] < 0.01
    lo, hi = big.extra["bootstrap_ci"]
    assert lo < 0.5 < hi


def test_regressor_list_webb_enumeration_and_result_object():
    df = _panel(20, 5, 0.2, seed=3)
    a = _wcb(df, reps=199)
    b = wild_cluster_bootstrap(df, "y", ["x", "c"], None, "city", "year", "city", 199, 1)
    assert b.extra["bootstrap_p"] == a.extra["bootstrap_p"]
    assert b.extra["bootstrap_ci"] == pytest.approx(a.extra["bootstrap_ci"], rel=1e-10)
    assert "wild_cluster_bootstrap" in repr(a) and "CR1" in a.summary()
    w = _wcb(_panel(3, 6, 0.2, seed=1), weights="webb", reps=999)
    assert w.extra["enumerated"] and w.extra["reps"] == 6**3
