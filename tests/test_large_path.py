"""The large-sample path of the estimation core gives the reference path's results.

Every case is estimated twice on the same data: with the reference arithmetic (the path taken
below ``large.LARGE_N`` rows, which makes the default outputs) and with the large-sample path
forced (``LARGE_N = 0``). Coefficients, standard errors, the full variance matrix and every
statistic must agree to 1e-10 relative; statuses, notes and counts must be equal. The data
vary: balanced panels in sorted and shuffled row order, unbalanced panels, weights, group
trends, absorbed / collinear / constant controls, HC1, IV with one and two instruments, and
the simulator seeds and planted values differ per case.
"""

from __future__ import annotations

import numpy as np
import pytest

from nqp_resilience.estimation import core, large
from nqp_resilience.estimation.iv import iv_twfe
from nqp_resilience.estimation.ols import twfe

RTOL = 1e-10


def panel(seed, n_ids=120, n_t=9, *, shuffle=False, drop=0.0, beta=0.07):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), n_t) * 7 + 1000  # sparse, offset labels
    t = np.tile(np.arange(2010, 2010 + n_t), n_ids)
    a_i = rng.normal(size=n_ids)[np.repeat(np.arange(n_ids), n_t)]
    z = rng.normal(size=ids.size) + a_i
    x = 0.6 * z + rng.normal(size=ids.size) + a_i
    c1 = rng.normal(size=ids.size) * 1e3 + 5e6  # large mean (population in persons)
    c2 = rng.normal(size=ids.size) + 0.3 * x
    g_t = rng.normal(size=n_t)[np.tile(np.arange(n_t), n_ids)]
    y = beta * x + 1e-4 * c1 + 0.05 * c2 + a_i + g_t + rng.normal(size=ids.size)
    d = {
        "id": ids,
        "t": t,
        "x": x,
        "z": z,
        "z2": rng.normal(size=ids.size) + 0.2 * x,
        "c1": c1,
        "c2": c2,
        "y": y,
        "w": rng.uniform(0.5, 2.0, size=ids.size),
        "region": (ids // 70) % 3,  # constant within id: absorbed
        "const": np.full(ids.size, 3.0),
        "prov": ids % 11,
    }
    d["dup"] = 2.0 * d["c2"] - d["x"]  # collinear with x and c2
    keep = np.ones(ids.size, dtype=bool)
    if drop:
        keep = rng.uniform(size=ids.size) >= drop
    order = rng.permutation(int(keep.sum())) if shuffle else np.arange(int(keep.sum()))
    return {k: v[keep][order] for k, v in d.items()}


def both(monkeypatch, fn, *args, **kwargs):
    monkeypatch.setattr(large, "LARGE_N", 10**12)
    ref = fn(*args, **kwargs)
    monkeypatch.setattr(large, "LARGE_N", 0)
    fast = fn(*args, **kwargs)
    return ref, fast


def close(a, b, what):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = np.maximum(np.abs(a), 1e-300)
    err = np.max(np.abs(a - b) / np.maximum(scale, np.max(np.abs(a)) * 1e-6)) if a.size else 0
    assert err <= RTOL, f"{what}: relative difference {err:.2e}"


def same_result(ref, fast):
    assert list(ref.params) == list(fast.params)
    close(list(ref.params.values()), list(fast.params.values()), "params")
    close(list(ref.bse.values()), list(fast.bse.values()), "bse")
    close(ref.vcov_values, fast.vcov_values, "vcov")
    for attr in ("coef", "se", "t", "p", "r2", "r2_within"):
        close(getattr(ref, attr), getattr(fast, attr), attr)
    close(ref.ci, fast.ci, "ci")
    assert (ref.nobs, ref.n_clusters, ref.df_resid) == (fast.nobs, fast.n_clusters, fast.df_resid)
    assert ref.extra.get("omitted") == fast.extra.get("omitted")
    assert ref.extra.get("notes") == fast.extra.get("notes")
    assert ref.extra.get("df_k") == fast.extra.get("df_k")


OLS_CASES = {
    "balanced sorted": (dict(seed=1), {}),
    "balanced shuffled": (dict(seed=2, shuffle=True), {}),
    "unbalanced": (dict(seed=3, drop=0.15, shuffle=True), {}),
    "weighted": (dict(seed=4, shuffle=True), {"weights": "w"}),
    "trends": (dict(seed=5, drop=0.05), {"trends": "id"}),
    "HC1": (dict(seed=6, shuffle=True), {"cluster": None}),
    "three-way": (dict(seed=7), {"extra_fe": ["prov"]}),
    "cluster by another variable": (dict(seed=8, beta=-0.2), {"cluster": "prov"}),
}


@pytest.mark.parametrize("case", sorted(OLS_CASES))
def test_twfe_large_path_equals_reference(monkeypatch, case):
    spec, opts = OLS_CASES[case]
    d = panel(**spec)
    kw = {"cluster": "id", **opts}
    ref, fast = both(
        monkeypatch, twfe, d, "y", "x", ["c1", "c2", "region", "const", "dup"], "id", "t", **kw
    )
    same_result(ref, fast)
    assert ref.extra["omitted"] == ["region", "const", "dup"]


@pytest.mark.parametrize("seed", [11, 12])
@pytest.mark.parametrize("instruments", [["z"], ["z", "z2"]])
@pytest.mark.parametrize("shuffle", [False, True])
def test_iv_large_path_equals_reference(monkeypatch, seed, instruments, shuffle):
    d = panel(seed, shuffle=shuffle, drop=0.1 if seed == 12 else 0.0)
    ref, fast = both(
        monkeypatch, iv_twfe, d, "y", "x", instruments, ["c1", "c2", "region"], "id", "t", "id"
    )
    same_result(ref, fast)
    for key in ("kp_lm", "kp_f", "cd_f", "ar_stat", "ar_p"):
        if key in ref.extra:
            close(ref.extra[key], fast.extra[key], key)
    fs_ref, fs_fast = ref.iv.first_stage["x"], fast.iv.first_stage["x"]
    close(list(fs_ref.coef.values()), list(fs_fast.coef.values()), "first-stage coef")
    close(list(fs_ref.se.values()), list(fs_fast.se.values()), "first-stage se")
    close([fs_ref.F, fs_ref.partial_r2], [fs_fast.F, fs_fast.partial_r2], "first-stage F, R2")


IV_CASES = {
    "weighted": (dict(seed=13, shuffle=True), dict(cluster="id", weights="w")),
    "HC1": (dict(seed=14), dict(cluster=None)),
    "cluster by another variable": (dict(seed=15, drop=0.05), dict(cluster="prov")),
    "two endogenous regressors": (dict(seed=16), dict(cluster="id", endog=["x", "c2"])),
}


@pytest.mark.parametrize("case", sorted(IV_CASES))
def test_iv_large_path_equals_reference_other_designs(monkeypatch, case):
    """The 2SLS from the R factor (second stage, first-stage coefficients and partial R²) and
    the sorted-cluster score sums, against the reference path."""
    spec, opts = IV_CASES[case]
    opts = dict(opts)
    endog = opts.pop("endog", "x")
    cluster = opts.pop("cluster")
    controls = ["c1", "region"] + ([] if "c2" in endog else ["c2"])
    d = panel(**spec)
    ref, fast = both(
        monkeypatch, iv_twfe, d, "y", endog, ["z", "z2"], controls, "id", "t", cluster, **opts
    )
    same_result(ref, fast)
    for name in ref.iv.first_stage:
        fs_ref, fs_fast = ref.iv.first_stage[name], fast.iv.first_stage[name]
        close(list(fs_ref.coef.values()), list(fs_fast.coef.values()), "first-stage coef")
        close(list(fs_ref.se.values()), list(fs_fast.se.values()), "first-stage se")
        close([fs_ref.F, fs_ref.partial_r2], [fs_fast.F, fs_fast.partial_r2], "F, R2")


def test_contiguous_sums_equal_the_sums_by_code():
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(50), rng.integers(1, 6, size=50))
    x, e = rng.normal(size=(len(g), 4)), rng.normal(size=len(g))
    ref = core.group_sums(x * e[:, None], g, 50)
    np.testing.assert_allclose(large.contiguous_sums(x, e, g, 50), ref, rtol=1e-13, atol=1e-13)
    assert large.contiguous_sums(x, e, g[::-1].copy(), 50) is None  # not ascending
    assert large.contiguous_sums(x, e, np.where(g == 7, 8, g), 50) is None  # a code missing
    shuffled = g[rng.permutation(len(g))]
    assert large.contiguous_sums(x, e, shuffled, 50) is None


def test_balanced_pairs_detects_only_complete_panels():
    g1 = np.repeat(np.arange(4), 3)
    g2 = np.tile(np.arange(3), 4)
    order = large.balanced_pairs([(g1, 4), (g2, 3)], None)
    assert order is not None and np.array_equal(order, np.arange(12))
    perm = np.random.default_rng(0).permutation(12)
    order = large.balanced_pairs([(g1[perm], 4), (g2[perm], 3)], None)
    assert np.array_equal(g1[perm][order], g1) and np.array_equal(g2[perm][order], g2)
    dup = g2.copy()
    dup[1] = 0  # cell (0, 0) twice, (0, 1) never
    assert large.balanced_pairs([(g1, 4), (dup, 3)], None) is None
    assert large.balanced_pairs([(g1, 4), (g2, 3)], np.ones(12)) is None  # weights
    assert large.balanced_pairs([(g1, 4)], None) is None
    assert large.balanced_pairs([(g1[:-1], 4), (g2[:-1], 3)], None) is None


def test_demean_balanced_equals_alternating_projections(monkeypatch):
    d = panel(21, n_ids=50, n_t=7, shuffle=True)
    g1, l1 = core.codes(d["id"])
    g2, l2 = core.codes(d["t"])
    x = np.column_stack([d["y"], d["x"], d["c1"]])
    ref, fast = both(monkeypatch, core.demean, x, [(g1, l1), (g2, l2)])
    scale = np.abs(x - x.mean(axis=0)).max(axis=0)
    assert np.max(np.abs(ref - fast) / scale) < 1e-13


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_screen_gram_equals_gram_schmidt(monkeypatch, seed):
    rng = np.random.default_rng(seed)
    n = 500
    raw = rng.normal(size=(n, 6))
    raw[:, 2] = 4.0  # constant
    raw[:, 4] = raw[:, 0] - 2 * raw[:, 1] + 1e-7 * rng.normal(size=n)  # collinear within tol
    raw[:, 5] = raw[:, 3] * 1e6  # collinear, other scale
    tilde = raw - raw.mean(axis=0)
    tilde[:, 1] *= 1e-4  # mostly absorbed, but above the tolerance
    w = rng.uniform(0.1, 3.0, size=n)
    for weights in (w, np.ones(n)):
        ref, fast = both(monkeypatch, core.screen_columns, tilde, raw, weights)
        assert ref == fast
        assert [s for s, _ in ref] == ["ok", "ok", "constant", "ok", "collinear", "collinear"]


@pytest.mark.parametrize(
    "values",
    [
        np.array([5, 3, 3, 9, -2, 5]),
        np.array([2010.0, 2012.0, 2010.0, 2011.0]),
        np.array([1.5, 1.5, 2.0]),  # not integral: sorted-unique path
        np.array([0, 10**12, 5]),  # wide range: sorted-unique path
        np.array(["b", "a", "b"]),
        np.arange(0, 3000, 3, dtype=np.uint32),
    ],
)
def test_codes_equal_sorted_unique(values):
    got, n_levels = core.codes(values)
    uniq, inv = np.unique(values, return_inverse=True)
    assert n_levels == len(uniq)
    assert got.dtype == np.int64 and np.array_equal(got, inv.reshape(-1))


def test_group_sums_same_bits_per_column_and_flattened():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 40, size=5000)
    x = rng.normal(size=(5000, 20)) * np.logspace(-3, 3, 20)
    wide = core.group_sums(x, g, 40)
    narrow = np.column_stack([core.group_sums(x[:, j : j + 1], g, 40) for j in range(20)])
    assert np.array_equal(wide, narrow)
    ref = np.zeros((40, 20))
    np.add.at(ref, g, x)
    assert np.array_equal(wide, ref)


def test_lstsq_tall_rank_deficient_falls_back():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1000, 3))
    x[:, 2] = x[:, 0] + x[:, 1]
    assert large.lstsq_tall(x, rng.normal(size=(1000, 1))) is None
    with pytest.raises(core.EstimationError, match="collinear"):
        core.wls(x, rng.normal(size=1000), np.ones(1000), ["a", "b", "c"])


@pytest.mark.parametrize("gap", [1e-1, 1e-2, 1e-4])
def test_tall_qr_matches_householder_on_ill_conditioned_designs(gap):
    """CholQR2's R equals Householder's up to the signs of its rows, to a few ulps times the
    condition number; the least-squares coefficients agree within the conditioning bound
    (their own error is of order cond² · eps for a design with a large residual)."""
    rng = np.random.default_rng(9)
    n = 20_000
    base = rng.normal(size=n)
    x = np.column_stack([base, base + gap * rng.normal(size=n), rng.normal(size=n) * 1e5])
    y = x @ np.array([1.0, -2.0, 3e-5]) + rng.normal(size=n)
    a = x / np.linalg.norm(x, axis=0)
    cond = np.linalg.cond(a)
    r_house = np.linalg.qr(a, mode="r")
    r_house *= np.sign(np.diag(r_house))[:, None]
    r_chol = large.tall_qr(a)
    assert np.max(np.abs(r_chol - r_house)) <= 50 * cond * np.finfo(float).eps
    coef = large.lstsq_tall(x, y[:, None])[0][:, 0]
    ref = np.linalg.lstsq(x, y, rcond=None)[0]
    assert np.max(np.abs(coef - ref) / np.abs(ref)) <= 50 * cond**2 * np.finfo(float).eps
    # beyond the collinearity tolerance the large path declines, and the reference path names it
    x[:, 1] = base + 1e-7 * rng.normal(size=n)
    assert large.lstsq_tall(x, y[:, None]) is None


@pytest.mark.parametrize("case", ["full", "collinear", "nearly", "tiny column"])
def test_matrix_rank_large_path_equals_svd(monkeypatch, case):
    from nqp_resilience.estimation import matching

    rng = np.random.default_rng(17)
    a = rng.normal(size=(3000, 4))
    a[:, 3] = 1.0
    if case == "collinear":
        a[:, 2] = a[:, 0] - 3.0 * a[:, 1]
    elif case == "nearly":
        a[:, 2] = a[:, 0] + 1e-9 * rng.normal(size=3000)
    elif case == "tiny column":
        a[:, 2] *= 1e-12
    a /= np.linalg.norm(a, axis=0)
    ref, fast = both(monkeypatch, matching._matrix_rank, a)
    assert ref == fast == np.linalg.matrix_rank(a)


def test_psm_large_path_equals_reference(monkeypatch):
    from nqp_resilience.estimation.matching import psm

    rng = np.random.default_rng(23)
    n = 4000
    data = {f"x{k}": rng.normal(size=n) for k in range(3)}
    xb = -0.3 + 0.5 * data["x0"] - 0.4 * data["x1"] + 0.2 * data["x2"]
    data["t"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-xb))).astype(float)
    data["y"] = 1.0 + 0.4 * data["t"] + data["x0"] + rng.normal(size=n)
    ref, fast = both(monkeypatch, psm, data, "t", ["x0", "x1", "x2"], "y", "nearest")
    close(ref.coef, fast.coef, "ATT")
    close(ref.se, fast.se, "SE")


@pytest.mark.parametrize("case", ["independent", "collinear", "nearly", "constant", "units"])
def test_psm_covariate_screen_large_path_equals_reference(monkeypatch, case):
    """Stata's _rmcoll order on the large-sample path: one rank check of all the covariates when
    they are clearly independent, otherwise the covariate-by-covariate loop."""
    from nqp_resilience.estimation import matching

    rng = np.random.default_rng(29)
    X = rng.normal(size=(3000, 5))
    if case == "collinear":
        X[:, 3] = X[:, 0] - 2.0 * X[:, 1]
    elif case == "nearly":
        X[:, 2] = X[:, 4] + 1e-12 * rng.normal(size=3000)
    elif case == "constant":
        X[:, 1] = 7.0
    elif case == "units":
        X[:, 0] *= 1e9
        X[:, 4] *= 1e-6
    ref, fast = both(monkeypatch, matching._independent_columns, X, [0, 1, 2, 3, 4])
    assert ref == fast
    expected_omitted = {"independent": [], "units": [], "collinear": [3], "nearly": [4]}
    assert ref[1] == expected_omitted.get(case, [1])


@pytest.mark.parametrize("instruments", [None, ["z"], ["z", "z2"]])
def test_bootstrap_projections_in_blocks_equal_one_block(monkeypatch, instruments):
    """The bootstrap builds its projected cluster columns in blocks of bootstrap clusters when
    one matrix would be large (county panels); the p-value, the bootstrap distribution and the
    confidence set are those of one block."""
    from nqp_resilience.estimation import bootstrap as B
    from nqp_resilience.estimation.bootstrap import wild_cluster_bootstrap
    from nqp_resilience.estimation.iv_bootstrap import wild_restricted_efficient_bootstrap

    d = panel(31, n_ids=40, n_t=6, drop=0.05)

    def run():
        if instruments is None:
            return wild_cluster_bootstrap(d, "y", "x", ["c2"], "id", "t", "id", 999, 7)
        return wild_restricted_efficient_bootstrap(
            d, "y", "x", instruments, ["c2"], "id", "t", "id", 999, 7
        )

    one = run()
    monkeypatch.setattr(B, "PROJECTION_BLOCK", 240 * 3 * 2)  # a few clusters per block
    assert len(B.cluster_blocks(240, 40, 3 * 2)) > 5
    blocks = run()
    close(one.extra["bootstrap_p"], blocks.extra["bootstrap_p"], "bootstrap p")
    close(one.extra["bootstrap_ci"], blocks.extra["bootstrap_ci"], "bootstrap CI")
    close(one.coef, blocks.coef, "coef")
    assert 0.0 < one.extra["bootstrap_p"] <= 1.0


def test_column_means_and_centred_squares():
    rng = np.random.default_rng(41)
    x = rng.normal(size=(200_003, 5)) * [1.0, 1e3, 1e-3, 5.0, 2.0] + [0.0, 5e6, 1.0, -3.0, 1e9]
    np.testing.assert_allclose(large.column_means(x), x.mean(axis=0), rtol=1e-14)
    cen = x - x.mean(axis=0)
    np.testing.assert_allclose(
        large._centred_squares(x, rows=65_536), np.einsum("ij,ij->j", cen, cen), rtol=1e-12
    )
