"""The WRE bootstrap for 2SLS (estimation/iv_bootstrap.py): the closed form against the whole IV
regression rerun with explicit dummies on every draw, agreement with iv_twfe, determinism,
errors and recovery."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from nqp_resilience import iv_twfe, wild_restricted_efficient_bootstrap
from nqp_resilience.errors import EstimationError, ProjectError
from nqp_resilience.estimation.bootstrap import TIE_TOL
from nqp_resilience.estimation.core import OptionError


def _panel(n_city: int, n_year: int, beta: float, seed: int, pi: float = 1.0):
    rng = np.random.default_rng(seed)
    n = n_city * n_year
    city = np.repeat(np.arange(n_city), n_year)
    year = np.tile(np.arange(2010, 2010 + n_year), n_city)
    ce, ye = rng.normal(size=n_city), rng.normal(size=n_year)
    z, z2, c = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    shock = rng.normal(size=n_city)[city]
    u = shock + rng.normal(size=n)
    x = pi * z + 0.3 * z2 + 0.5 * ce[city] + 0.3 * ye[year - 2010] + 0.6 * u + rng.normal(size=n)
    y = beta * x + 0.2 * c + ce[city] + ye[year - 2010] + u
    df = pd.DataFrame({"city": city, "year": year, "x": x, "z": z, "z2": z2, "c": c, "y": y})
    return df.iloc[1:].reset_index(drop=True)  # unbalanced: year effects not orthogonal


def _p(tstar, t, p_type):
    tol = TIE_TOL * max(1.0, abs(t))
    if p_type == "symmetric":
        return float(np.mean(np.abs(tstar) >= abs(t) - tol))
    return float(min(1.0, 2 * min(np.mean(tstar <= t + tol), np.mean(tstar >= t - tol))))


def _brute(df, null, p_type, instruments=("z",)):
    """WRE p-value by rerunning 2SLS with explicit dummies (lstsq) for every Rademacher draw."""
    n_year = df["year"].nunique()
    W = np.column_stack(
        [
            df["c"],
            pd.get_dummies(df["city"]).to_numpy(float),
            pd.get_dummies(df["year"]).to_numpy(float)[:, 1:],
        ]
    )
    Z = df[list(instruments)].to_numpy(float)
    H = np.column_stack([Z, W])
    y, x = df["y"].to_numpy(), df["x"].to_numpy()
    cl = df["city"].to_numpy()
    n, G, L = len(y), len(np.unique(cl)), Z.shape[1]
    q = G / (G - 1) * (n - 1) / (n - (2 + n_year))

    def ls(a, b):
        return np.linalg.lstsq(a, b, rcond=None)[0]

    def fit(ys, xs):  # 2SLS coefficient of x and its CR1 se
        xh = H @ ls(H, xs)
        Xh = np.column_stack([xh, W])
        coef = ls(Xh, ys)
        u = ys - np.column_stack([xs, W]) @ coef
        r = np.linalg.pinv(Xh)[0]
        sc = np.zeros(G)
        np.add.at(sc, cl, r * u)
        return coef[0], np.sqrt(q * np.sum(sc**2))

    b, se = fit(y, x)
    t = (b - null) / se
    ur = y - null * x
    ur = ur - W @ ls(W, ur)
    rf = ls(np.column_stack([Z, W, ur]), x)
    fitted = Z @ rf[:L] + W @ rf[L:-1]
    vr = x - fitted  # includes δ̃ũ
    tstar = []
    for v in itertools.product([-1.0, 1.0], repeat=G):
        vi = np.array(v)[cl]
        xs = fitted + vr * vi
        ys = null * xs + ur * vi
        bs, ses = fit(ys, xs)
        tstar.append((bs - null) / ses)
    return _p(np.array(tstar), t, p_type)


def _wre(df, instruments=("z",), **kw):
    args = dict(reps=9999, seed=1)
    args.update(kw)
    reps, seed = args.pop("reps"), args.pop("seed")
    return wild_restricted_efficient_bootstrap(
        df, "y", "x", list(instruments), ["c"], "city", "year", "city", reps, seed, **args
    )


@pytest.mark.parametrize("p_type", ["symmetric", "equal-tailed"])
@pytest.mark.parametrize("instruments", [("z",), ("z", "z2")])
def test_enumeration_equals_brute_force(p_type, instruments):
    df = _panel(7, 5, 0.2, seed=3, pi=0.6)
    res = _wre(df, instruments, p_type=p_type, reps=999)
    assert res.extra["enumerated"] and res.extra["reps"] == 2**7
    assert res.extra["variant"] == "wre"
    assert abs(res.extra["bootstrap_p"] - _brute(df, 0.0, p_type, instruments)) < 1e-10
    for null in (0.3, res.coef + 1.5 * res.se, res.coef - 2.5 * res.se):
        fast = _wre(df, instruments, p_type=p_type, null=null, reps=999).extra["bootstrap_p"]
        assert abs(fast - _brute(df, null, p_type, instruments)) < 1e-10, null
    lo, hi = res.extra["bootstrap_ci"]
    assert lo < res.coef < hi
    if instruments == ("z",) and p_type == "symmetric":
        for end, side in ((lo, -1), (hi, 1)):
            d = 1e-7 * max(1.0, abs(end))
            assert _brute(df, end - side * d, p_type, instruments) >= 0.05
            assert _brute(df, end + side * d, p_type, instruments) < 0.05


def test_t_and_se_equal_iv_twfe():
    df = _panel(30, 6, 0.3, seed=7)
    ref = iv_twfe(df, "y", "x", "z", ["c"], "city", "year", "city")
    res = _wre(df, reps=199)
    assert abs(res.coef - ref.coef) < 1e-12 and abs(res.se - ref.se) < 1e-12
    assert abs(res.t - ref.t) < 1e-12 and abs(res.p - ref.p) < 1e-12
    assert res.ci == pytest.approx(ref.ci, abs=1e-12)
    assert (res.nobs, res.n_clusters) == (ref.nobs, ref.n_clusters)


def test_determinism_and_streams():
    df = _panel(25, 5, 0.1, seed=11)
    a = _wre(df, reps=999, seed=4)
    b = _wre(df, reps=999, seed=4)
    assert a.extra == b.extra
    assert not a.extra["enumerated"] and a.extra["reps"] == 999 and a.extra["seed"] == 4
    c = _wre(df, reps=999, seed=4, stream="iv_relief")
    assert c.extra["bootstrap_ci"] != a.extra["bootstrap_ci"]
    for w in ("webb", "mammen", "normal"):
        r = _wre(df, reps=199, seed=4, weights=w, null=0.1)
        assert r.extra["weights"] == w and 0 < r.extra["bootstrap_p"] <= 1


def test_errors():
    df = _panel(8, 4, 0.2, seed=2)
    with pytest.raises(EstimationError, match="reps"):
        _wre(df, reps=98)
    for kw, choice in (("weights", "webb"), ("p_type", "equal-tailed")):
        with pytest.raises(OptionError, match=choice) as info:
            _wre(df, **{kw: "nope"})
        assert isinstance(info.value, ProjectError) and info.value.hint
    df["one"] = 1
    with pytest.raises(EstimationError, match="two bootstrap clusters"):
        _wre(df, bootstrap_cluster="one")
    with pytest.raises(EstimationError, match="two clusters"):
        wild_restricted_efficient_bootstrap(df, "y", "x", "z", ["c"], "city", "year", "one", 99, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovery(seed):
    null_true = _wre(_panel(40, 8, 0.0, seed=seed), reps=999, seed=seed)
    assert null_true.extra["bootstrap_p"] > 0.01
    big = _wre(_panel(40, 8, 0.5, seed=seed), reps=999, seed=seed)
    assert big.extra["bootstrap_p"] < 0.01
    lo, hi = big.extra["bootstrap_ci"]
    assert lo < 0.5 < hi
