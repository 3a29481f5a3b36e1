"""The low-rank form of the wild bootstraps' cluster sums (estimation/cross_sums.py): the same
per-draw statistics as the reference path (demeaning every bootstrap cluster's indicator
column) to 1e-10, the brute-force p-values, the cases where it must decline, and the size at
which the workflow switches to it."""

from __future__ import annotations

import numpy as np
import pytest

from nqp_resilience.estimation import cross_sums as CS
from nqp_resilience.estimation.bootstrap import wild_cluster_bootstrap, wild_problem
from nqp_resilience.estimation.iv_bootstrap import (
    wild_restricted_efficient_bootstrap,
    wre_problem,
)

REFERENCE, LOW_RANK = 1 << 62, 0  # LOW_RANK_FROM that forces either path


def _panel(n_city, n_year, seed, n_prov=7, drop=1):
    from test_bootstrap import _panel as base

    df = base(n_city, n_year, 0.15, seed=seed, n_prov=n_prov).iloc[drop:].reset_index(drop=True)
    rng = np.random.default_rng(seed + 1000)
    df["z"] = 0.6 * df["x"] + rng.normal(size=len(df))
    df["z2"] = 0.3 * df["x"] + rng.normal(size=len(df))
    df["c2"] = rng.normal(size=len(df)) + 0.2 * df["year"]
    df["w"] = rng.uniform(0.5, 2.0, size=len(df))
    df["region"] = df["city"] % 3
    return df


def _both(monkeypatch, make):
    """The problem and its statistics on the reference path, then in low-rank form."""
    out = []
    for threshold in (REFERENCE, LOW_RANK):
        monkeypatch.setattr(CS, "LOW_RANK_FROM", threshold)
        problem = make()
        out.append((problem, problem.stats()))
    return out


def _close_stats(ref, low):
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-300)
    assert np.max(np.abs(ref - low) / scale) < 1e-10


OLS_CASES = {
    "city clusters": dict(),
    "province bootstrap clusters": dict(bootstrap_cluster="prov"),
    "city trends": dict(trends="city"),
    "no controls": dict(controls=[]),
    "province clusters": dict(cluster="prov"),
    # a model cluster meets many bootstrap clusters: the statistics come from T·v, not the
    # expanded sums of ols_block_stats
    "province clusters, city bootstrap clusters": dict(cluster="prov", bootstrap_cluster="city"),
    "region-by-year effects": dict(extra_fe=["region_year"]),
}


@pytest.mark.parametrize("case", list(OLS_CASES))
@pytest.mark.parametrize("seed", [3, 17])
def test_ols_statistics_equal_the_reference_path(monkeypatch, case, seed):
    df = _panel(40, 7, seed)
    df["region_year"] = df["region"] * 10_000 + df["year"]
    kw = dict(OLS_CASES[case])
    controls = kw.pop("controls", ["c", "c2"])
    cluster = kw.pop("cluster", "city")

    def make():
        return wild_problem(df, "y", "x", controls, "city", "year", cluster, 999, seed, **kw)

    (ref, s_ref), (low, s_low) = _both(monkeypatch, make)
    _close_stats(s_ref, s_low)
    for key, value in ref.scalars.items():
        assert low.scalars[key] == pytest.approx(value, rel=1e-10, abs=1e-14), key


@pytest.mark.parametrize(
    ("case", "expanded"),
    [("city clusters", True), ("province bootstrap clusters", True), ("city trends", True)]
    + [("province clusters, city bootstrap clusters", False)],
)
def test_which_low_rank_designs_take_the_expanded_sums(monkeypatch, case, expanded):
    """ols_block_stats applies where each model cluster meets one bootstrap cluster."""
    from nqp_resilience.estimation import bootstrap as B

    made = []
    real = B.ols_block_stats
    monkeypatch.setattr(B, "ols_block_stats", lambda *a: made.append(real(*a)) or made[-1])
    monkeypatch.setattr(CS, "LOW_RANK_FROM", LOW_RANK)
    kw = dict(OLS_CASES[case])
    cluster = kw.pop("cluster", "city")
    problem = wild_problem(_panel(30, 6, 8), "y", "x", ["c"], "city", "year", cluster, 999, 8, **kw)
    assert len(made) == 1 and (made[0] is not None) == expanded
    assert problem.stats().shape == (5, problem.B)


@pytest.mark.parametrize("seed", [4, 31])
def test_unbalanced_panel_with_trends_and_controls_in_any_units(monkeypatch, seed):
    """A third of the city-years missing, city trends (partialled by iteration) and controls in
    persons and in shares: the null directions of the partialling stay out of the basis and the
    controls' units do not matter."""
    rng = np.random.default_rng(seed)
    df = _panel(60, 9, seed, drop=0)
    df = df[rng.uniform(size=len(df)) > 0.33].reset_index(drop=True)
    df["persons"] = 1e6 * df["c"] + 3e7
    df["share"] = 1e-3 * df["c2"]

    def make():
        return wild_problem(
            df, "y", "x", ["persons", "share"], "city", "year", "city", 999, seed,
            trends="city", bootstrap_cluster="prov",
        )  # fmt: skip

    (_, s_ref), (_, s_low) = _both(monkeypatch, make)
    _close_stats(s_ref, s_low)


@pytest.mark.parametrize(
    "instruments,cluster,bcluster,expanded",
    [
        ("z", "city", None, True),
        ("z", "city", "prov", True),
        ("z", "prov", "city", False),  # a cluster meets many bootstrap clusters
        (["z", "z2"], "city", None, False),  # two instruments: the sources differ in A
        (["z", "z2"], "city", "prov", False),
    ],
)
def test_wre_statistics_equal_the_reference_path(
    monkeypatch, instruments, cluster, bcluster, expanded
):
    """The low-rank WRE statistics equal the reference path to 1e-10, from the expanded Gram
    sums (low_rank_gram) where they apply and from the low-rank products elsewhere."""
    from nqp_resilience.estimation import iv_bootstrap as IB

    df = _panel(36, 6, 5)
    made = []
    real = IB.low_rank_gram
    monkeypatch.setattr(IB, "low_rank_gram", lambda *a: made.append(real(*a)) or made[-1])

    def make():
        return wre_problem(
            df, "y", "x", instruments, ["c", "c2"], "city", "year", cluster, 999, 5,
            bootstrap_cluster=bcluster,
        )  # fmt: skip

    (_, s_ref), (_, s_low) = _both(monkeypatch, make)
    _close_stats(s_ref, s_low)
    assert any(m is not None for m in made) == expanded


def test_p_values_and_confidence_sets_are_the_same(monkeypatch):
    df = _panel(50, 6, 11)
    results = []
    for threshold in (REFERENCE, LOW_RANK):
        monkeypatch.setattr(CS, "LOW_RANK_FROM", threshold)
        ols = wild_cluster_bootstrap(df, "y", "x", ["c"], "city", "year", "city", 1999, 4)
        wre = wild_restricted_efficient_bootstrap(
            df, "y", "x", "z", ["c"], "city", "year", "city", 1999, 4
        )
        results.append((ols, wre))
    for ref, low in zip(*results, strict=True):
        assert low.extra["bootstrap_p"] == pytest.approx(ref.extra["bootstrap_p"], abs=1e-12)
        assert low.extra["bootstrap_ci"] == pytest.approx(ref.extra["bootstrap_ci"], rel=1e-9)
        assert low.coef == ref.coef and low.se == ref.se


@pytest.mark.parametrize("trends", [False, True])
def test_low_rank_equals_the_regression_rerun_on_every_draw(monkeypatch, trends):
    from test_bootstrap import _brute

    monkeypatch.setattr(CS, "LOW_RANK_FROM", LOW_RANK)
    df = _panel(8, 5, 3, drop=0).iloc[1:].reset_index(drop=True)
    res = wild_cluster_bootstrap(
        df, "y", "x", ["c"], "city", "year", "city", 9999, 1, null=0.1,
        trends="city" if trends else None,
    )  # fmt: skip
    assert res.extra["enumerated"]
    brute = _brute(df, 0.1, "wcr", "symmetric", trends=trends)
    assert abs(res.extra["bootstrap_p"] - brute) < 1e-10


def _sums(df, absorb, trends=None):
    """cross_sums of x on a toy design: clusters = bootstrap clusters = city."""
    from nqp_resilience.estimation.core import codes

    city, G = codes(df["city"].to_numpy())
    a = df["x"].to_numpy() - df.groupby("city")["x"].transform("mean").to_numpy()
    return CS.cross_sums(a, a[:, None], city, G, city, G, absorb, trends, None)


def test_declines_where_the_closed_form_does_not_hold(monkeypatch):
    from nqp_resilience.estimation.core import codes

    df = _panel(20, 5, 2)
    city, year = codes(df["city"].to_numpy()), codes(df["year"].to_numpy())
    assert _sums(df, [city]) is not None
    # no absorbed effect nested in the clusters
    assert _sums(df, [year]) is None
    # a trend group that is not nested in the clusters
    assert _sums(df, [city], (year[0], year[1], df["year"].to_numpy(float))) is None
    # more non-nested levels than the cap
    monkeypatch.setattr(CS, "MAX_LOW_RANK", 3)
    assert _sums(df, [city, year]) is None
    # weights: the reference path
    assert not CS.low_rank_applies(10**6, 10**4, 1, np.full(10**6, 2.0))
    assert CS.low_rank_applies(10**6, 10**4, 1, np.ones(10**6))


def test_declining_falls_back_to_the_reference_path(monkeypatch):
    df = _panel(30, 5, 8)

    def make():
        return wild_problem(df, "y", "x", ["c"], "city", "year", "city", 499, 2)

    monkeypatch.setattr(CS, "MAX_LOW_RANK", 1)  # the year dummies alone exceed it
    (_, s_ref), (_, s_low) = _both(monkeypatch, make)
    np.testing.assert_array_equal(s_ref, s_low)


def test_the_study_keeps_the_reference_path_and_county_panels_switch():
    # the study: 2,769 rows, 277 city clusters, 3 sources (WRE, one instrument)
    assert not CS.low_rank_applies(2769, 277, 3)
    assert not CS.low_rank_applies(2769, 277, 1)
    # a county panel: 2,800 units × 20 years
    assert CS.low_rank_applies(56_000, 2800, 1)


def test_cross_sums_object_behaves_as_the_dense_matrix(monkeypatch):
    from nqp_resilience.estimation.core import codes

    df = _panel(25, 6, 9)
    from nqp_resilience.estimation.core import demean

    (city, G), (prov, Gp) = codes(df["city"].to_numpy()), codes(df["prov"].to_numpy())
    absorb = [(city, G), codes(df["year"].to_numpy())]
    a = demean(df[["x"]].to_numpy(), absorb)[:, 0]
    (T,) = CS.cross_sums(a, a[:, None], city, G, prov, Gp, absorb, None, None)
    dense = T.toarray()
    assert dense.shape == (G, Gp)
    v = np.random.default_rng(0).choice([-1.0, 1.0], size=(Gp, 16))
    np.testing.assert_allclose(T @ v, dense @ v, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(T.sum(axis=0), dense.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(T.sum(axis=1), dense.sum(axis=1), rtol=1e-12, atol=1e-12)
    # the same matrix built the reference way: Σ_{i∈h} a_i [M(a∘1_g)]_i
    E = np.zeros((len(a), Gp))
    E[np.arange(len(a)), prov] = a
    ME = demean(E, absorb)
    ref = np.zeros((G, Gp))
    np.add.at(ref, city, a[:, None] * ME)
    np.testing.assert_allclose(dense, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
