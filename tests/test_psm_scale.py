"""The O(N log N) matching engine of nqp_resilience.estimation.matching against the quadratic
loops it replaced (docs/psm.md).

The reference below is the previous implementation of the matching loops, copied verbatim:
psmatch2's ``match_pscore`` walk (``_reference_walk``) and the per-unit kernel loop (in
``_reference_match``). The sorted, binary-search and prefix-sum engine must give the same
``Matching`` fields and the same ATT, SE, ATU and ATE to 1e-12 (absolute for weights, which lie
in [0, a few]; relative for outcomes and large weights) on random problems: continuous scores,
scores on a grid (heavy ties, distances exactly equal to the caliper or bandwidth), calipers,
``ate``, common support on and off, and matches that reach the last control (the walk turns).
A last test runs the fast path at N = 200,000 and checks that the weights add up.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nqp_resilience.estimation import matching as P

TOL = 1e-12
KERNELS = ["epan", "uniform", "biweight", "tricube", "normal"]


# ------------------------------------------------------------------------------------------
# Reference: the previous implementation of the matching loops
# ------------------------------------------------------------------------------------------


def _reference_walk(p_from: np.ndarray, p_to: np.ndarray, caliper: float, ties: bool) -> list:
    """psmatch2's ``match_pscore`` (with replacement, one neighbour) on two sorted score arrays."""
    J = len(p_to)
    out = []
    jmatch, forward = 0, True
    last = J - 1
    for i, pi in enumerate(p_from):
        if J == 0:
            out.append([])
            continue
        j = jmatch
        dif1 = abs(pi - p_to[j])
        while 0 <= j < last:
            j = j + 1 if forward else j - 1
            if j < 0 or j > last:
                break
            dif0, dif1 = dif1, abs(pi - p_to[j])
            if dif1 > dif0:
                j = last
            if dif1 < dif0:
                jmatch = j
        best = abs(pi - p_to[jmatch])
        if best < caliper:
            found = [jmatch]
            if ties:
                k = jmatch + 1 if forward else jmatch - 1
                while 0 <= k <= last and abs(pi - p_to[k]) <= best:
                    found.append(k)
                    k = k + 1 if forward else k - 1
            out.append(found)
        else:
            out.append([])
        if jmatch == last and i < len(p_from) - 1:
            forward = False
    return out


def _reference_kernel(dif: np.ndarray, kernel: str, h: float) -> np.ndarray:
    u = dif / h
    inside = np.abs(dif) <= h
    if kernel == "epan":
        k = 1.0 - u * u
    elif kernel == "uniform":
        k = np.ones_like(u)
    elif kernel == "biweight":
        k = (1.0 - u * u) ** 2
    elif kernel == "tricube":
        k = (1.0 - np.abs(u) ** 3) ** 3
    else:
        return np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    return np.where(inside, k, np.nan)


def _reference_match(
    data,
    method,
    *,
    caliper=None,
    bandwidth=0.06,
    kernel="epan",
    common_support=True,
    ties=False,
    ate=False,
) -> P.Matching:
    """The previous ``match`` from the common support on, for given scores ``data["p"]``."""
    t, p, y = data["t"], data["p"], data["y"]
    n = len(t)
    sample = np.isfinite(t) & np.isfinite(p) & np.isfinite(y)
    idx = np.flatnonzero(sample)
    ts, ps, ys = t[idx], p[idx], y[idx]
    sup = np.ones(len(idx), dtype=bool)
    is_t = ts == 1
    if common_support:
        lo, hi = ps[~is_t].min(), ps[~is_t].max()
        sup[is_t & ((ps < lo) | (ps > hi))] = False
        if ate:
            lo, hi = ps[is_t].min(), ps[is_t].max()
            sup[~is_t & ((ps < lo) | (ps > hi))] = False
    wt = np.zeros(len(idx))
    wt[is_t & sup] = 0.0 if ate else 1.0
    mout = np.full(len(idx), np.nan)
    n1 = np.full(len(idx), np.nan)
    nn = np.full(len(idx), np.nan)
    pos = np.arange(len(idx))
    if method == "nearest":
        cal = math.inf if caliper is None else float(caliper)
        nn[sup] = 0.0

        def one_way(frm_mask, to_mask):
            frm = pos[frm_mask][np.lexsort((pos[frm_mask], ps[frm_mask]))]
            to = pos[to_mask][np.lexsort((pos[to_mask], ps[to_mask]))]
            for i, found in zip(frm, _reference_walk(ps[frm], ps[to], cal, ties), strict=True):
                if not found:
                    sup[i] = False
                    continue
                m = len(found)
                acc = 0.0
                for k in found:
                    wt[to[k]] += 1.0 / m
                    acc += ys[to[k]] / m
                mout[i] = acc
                n1[i] = idx[to[found[0]]]
                nn[i] = m

        t_pool, c_pool = is_t & sup, ~is_t & sup
        if ate:
            one_way(c_pool, t_pool)
        one_way(t_pool, c_pool)
    else:
        h = float(bandwidth)
        if method == "radius":
            kern, h = "uniform", 0.01 if caliper is None else float(caliper)
        else:
            kern = kernel
        passes = [(~is_t, is_t)] if ate else []
        passes.append((is_t, ~is_t))
        for frm_mask, to_mask in passes:
            frm, pool = pos[frm_mask & sup], pos[to_mask & sup]
            for i in frm:
                k = _reference_kernel(ps[pool] - ps[i], kern, h)
                total = np.nansum(k)
                ok = np.isfinite(k)
                if total == 0 or not ok.any():
                    sup[i] = False
                    continue
                w = k[ok] / total
                wt[pool[ok]] += w
                mout[i] = np.sum(w * ys[pool[ok]]) / np.sum(w)
    weight_clean = np.where((wt == 0) | ~sup, np.nan, wt)
    att_w = np.where(is_t, sup.astype(float), np.where(sup, wt, 0.0))
    mout[~sup] = np.nan

    def full(v, fill=np.nan):
        out = np.full(n, fill, dtype=float)
        out[idx] = v
        return out

    pdif = np.full(len(idx), np.nan)
    if method == "nearest":
        has = np.isfinite(n1) & sup
        row_of = np.full(n, -1)
        row_of[idx] = pos
        pdif[has] = np.abs(ps[has] - ps[row_of[n1[has].astype(int)]])
    return P.Matching(
        sample=sample,
        pscore=full(ps),
        treated=full(ts),
        support=full(sup.astype(float)),
        weight=full(weight_clean),
        n1=full(n1),
        nn=full(nn),
        pdif=full(pdif),
        matched_outcome=full(mout),
        att_weight=full(att_w, 0.0),
        options={"ate": ate},
    )


# ------------------------------------------------------------------------------------------
# Random problems
# ------------------------------------------------------------------------------------------


def _problem(seed: int, n: int, grid: int | None = None, spread: float = 1.0):
    """Scores from two overlapping beta distributions (treated higher), optionally rounded to
    multiples of 1/grid (ties; distances that are exact multiples of the grid step); outcomes
    of mixed sign and scale; a few rows with a missing outcome."""
    rng = np.random.default_rng(seed)
    t = (rng.uniform(size=n) < 0.45).astype(float)
    p = np.where(t == 1, rng.beta(3, 2, n), rng.beta(2, 3, n)) * spread
    if grid:
        p = np.round(p * grid) / grid
    y = 50.0 + 20.0 * p + rng.normal(size=n) * (1 + 5 * rng.uniform(size=n))
    y[rng.uniform(size=n) < 0.02] = np.nan
    return {"t": t, "p": p, "y": y}


def _assert_same(new: P.Matching, ref: P.Matching, y):
    for name in ("sample", "support", "n1", "nn"):
        np.testing.assert_array_equal(getattr(new, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(np.isnan(new.weight), np.isnan(ref.weight), err_msg="weight")
    for name in ("pscore", "treated", "pdif"):
        np.testing.assert_allclose(
            getattr(new, name), getattr(ref, name), rtol=0, atol=0, equal_nan=True, err_msg=name
        )
    for name in ("weight", "att_weight"):
        a, b = getattr(new, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True, err_msg=name)
    scale = float(np.nanmax(np.abs(y)))
    np.testing.assert_allclose(
        new.matched_outcome,
        ref.matched_outcome,
        rtol=TOL,
        atol=TOL * scale,
        equal_nan=True,
        err_msg="matched_outcome",
    )
    if np.any((new.treated == 1) & (new.support == 1)):
        e_new, e_ref = P._effects(new, y), P._effects(ref, y)
        assert e_new.keys() == e_ref.keys()
        for key in e_new:
            assert e_new[key] == pytest.approx(e_ref[key], rel=TOL, abs=TOL * scale, nan_ok=True), (
                key
            )


def _compare(data, method, **kw):
    new = P.match(data, "t", None, method, outcome="y", pscore="p", **kw)
    ref = _reference_match(data, method, **kw)
    _assert_same(new, ref, data["y"])
    return new


# ------------------------------------------------------------------------------------------
# Nearest neighbour
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("grid", [None, 16, 100, 1000])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("ate", [False, True])
def test_nearest_equals_reference(seed, grid, ties, ate):
    n = [60, 400, 2500][seed % 3]
    data = _problem(seed, n, grid)
    for common_support in (True, False):
        for caliper in (None, 0.01, 1 / 16, 0.0025):
            _compare(
                data, "nearest", caliper=caliper, ties=ties, ate=ate, common_support=common_support
            )


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ties", [False, True])
def test_nearest_walk_turns_at_the_last_control(seed, ties):
    """Treated above the highest control (no common support): the match reaches the last control
    and psmatch2's scan turns backwards; with ties it then takes every control within the
    distance to the last one. Also a single control, and distinct scores far from a unit that
    round to the same distance."""
    rng = np.random.default_rng(100 + seed)
    n = 300
    t = (rng.uniform(size=n) < 0.5).astype(float)
    p = np.round(rng.uniform(size=n) * 40) / 40
    p[t == 0] *= 0.7  # controls lower: many treated lie above the last control
    y = rng.normal(size=n) * 10
    data = {"t": t, "p": p, "y": y}
    for ate in (False, True):
        for caliper in (None, 0.2):
            _compare(data, "nearest", ties=ties, ate=ate, common_support=False, caliper=caliper)
    one = {k: np.concatenate([v[t == 1][:20], v[t == 0][:1]]) for k, v in data.items()}
    _compare(one, "nearest", ties=ties, common_support=False)
    far = {
        "t": np.array([0, 0, 0, 1, 1, 0.0]),
        "p": np.array([1e-20, 2e-20, 3e-20, 0.9, 0.95, 0.97]),
        "y": np.arange(6.0),
    }
    _compare(far, "nearest", ties=ties, common_support=False)


# ------------------------------------------------------------------------------------------
# Radius and kernel
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("grid", [None, 64, 100])
@pytest.mark.parametrize("ate", [False, True])
def test_radius_equals_reference(seed, grid, ate):
    n = [80, 600, 3000][seed % 3]
    data = _problem(seed, n, grid)
    for common_support in (True, False):
        for caliper in (None, 0.001, 3 / 64, 0.03, 0.25):
            _compare(data, "radius", caliper=caliper, ate=ate, common_support=common_support)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("grid", [None, 64, 100])
@pytest.mark.parametrize("ate", [False, True])
def test_kernel_equals_reference(seed, kernel, grid, ate):
    n = [80, 600, 2000][seed % 3]
    data = _problem(seed, n, grid)
    for common_support in (True, False):
        for bandwidth in (0.06, 1 / 32, 0.01, 0.5):
            _compare(
                data,
                "kernel",
                kernel=kernel,
                bandwidth=bandwidth,
                ate=ate,
                common_support=common_support,
            )


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_sparse_edges_and_offsets(kernel):
    """Controls sitting exactly at, or a rounding away from, the bandwidth of a treated unit
    (zero and tiny kernel weights, units going off support), sparse data, scores far from 0
    (cancellation in the moments) and a bandwidth tiny next to the scores."""
    h = 1 / 16
    base = np.array([0.25, 0.25 + h, 0.25 - h, 0.5, 0.5 + h * (1 - 1e-15), 0.75, 0.75 + 2 * h])
    t = np.array([1, 0, 0, 1, 0, 1, 0.0])
    data = {"t": t, "p": base, "y": np.arange(7.0)}
    _compare(data, "kernel", kernel=kernel, bandwidth=h, common_support=False)
    _compare(data, "kernel", kernel=kernel, bandwidth=h, common_support=False, ate=True)
    rng = np.random.default_rng(7)
    for offset, bandwidth in ((1e3, 0.06), (0.0, 1e-9), (-5.0, 0.3)):
        p = offset + rng.uniform(size=500) * (100 * bandwidth)
        data = {"t": (rng.uniform(size=500) < 0.5).astype(float), "p": p, "y": rng.normal(size=500)}
        _compare(data, "kernel", kernel=kernel, bandwidth=bandwidth)
        _compare(data, "kernel", kernel=kernel, bandwidth=bandwidth, ate=True)


def test_psm_att_equals_reference():
    """The ATT table through psm() (the public entry) on one problem per method."""
    data = _problem(11, 1500, 200)
    for method, kw in (
        ("nearest", {"ties": True}),
        ("radius", {"caliper": 0.02}),
        ("kernel", {"kernel": "epan"}),
    ):
        r = P.psm(data, "t", None, "y", method, pscore="p", balance=False, **kw)
        ref = _reference_match(data, method, **kw)
        eff = P._effects(ref, data["y"])
        assert r.att == pytest.approx(eff["att"], rel=TOL, abs=TOL)
        assert r.att_se == pytest.approx(eff["att_se"], rel=TOL, abs=TOL)


def test_prefix_sums_are_compensated():
    """The running sums add in order (what the compensation assumes) and a window sum far into
    a large running total keeps the precision of the window."""
    rng = np.random.default_rng(3)
    x = rng.uniform(size=100_000) * 1e6
    s = np.cumsum(x)
    np.testing.assert_array_equal(s[1:], s[:-1] + x[1:])
    x[50_000:50_010] = rng.uniform(size=10) * 1e-6
    pref = P._prefix(x)
    got = P._range_sum(pref, np.array([50_000]), np.array([50_010]))[0]
    assert got == pytest.approx(math.fsum(x[50_000:50_010]), rel=1e-12)


# ------------------------------------------------------------------------------------------
# Scale
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, kw",
    [("radius", {"caliper": 0.01}), ("kernel", {"kernel": "epan"}), ("nearest", {"ties": True})],
)
def test_fast_path_at_200k(method, kw):
    """N = 200,000: the fast path completes (the previous loops took minutes here) and each
    treated unit on support hands out a total weight of 1. No timing is asserted."""
    rng = np.random.default_rng(0)
    n = 200_000
    t = (rng.uniform(size=n) < 0.4).astype(float)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + 0.8 * t)))
    y = p + rng.normal(size=n)
    m = P.match({"t": t, "p": p, "y": y}, "t", None, method, outcome="y", pscore="p", **kw)
    n1 = int(((m.treated == 1) & (m.support == 1)).sum())
    assert n1 > 0.9 * (t == 1).sum()
    assert m.att_weight[t == 0].sum() == pytest.approx(n1, rel=1e-10)
    assert np.nansum(m.weight[t == 0]) == pytest.approx(n1, rel=1e-10)
    assert np.all(np.isfinite(m.matched_outcome[(t == 1) & (m.support == 1)]))
