"""Estimators on data in real units: scale invariance, omitted controls, mobility groups, missing
values of the nullable dtypes, and user errors that name the variable.

References: pyfixest (which control is dropped), statsmodels OLS on explicit dummies (the
small-sample factor with disconnected fixed effects), and exact algebra (affine rescaling).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nqp_resilience.errors import EstimationError, ProjectError, UnknownVariableError
from nqp_resilience.estimation.iv import iv_twfe
from nqp_resilience.estimation.ols import connected_components, twfe

pf = pytest.importorskip("pyfixest")


def _panel(n_ids=50, n_t=8, seed=0, unbalanced=True):
    """y = 0.5·x + 0.3·c1 − 0.2·c2 + a_i + g_t + e; x endogenous, instrumented by z."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), n_t)
    t = np.tile(np.arange(n_t), n_ids)
    a, g = rng.normal(size=n_ids)[ids], rng.normal(size=n_t)[t]
    z = rng.normal(size=ids.size) + 0.5 * a
    v = rng.normal(size=ids.size)
    c1, c2 = rng.normal(size=ids.size), rng.normal(size=ids.size)
    x = 0.8 * z + 0.3 * c1 + a + g + v
    e = 0.5 * v + rng.normal(size=ids.size) + 0.5 * rng.normal(size=n_ids)[ids]
    y = 0.5 * x + 0.3 * c1 - 0.2 * c2 + a + g + e
    df = pd.DataFrame(
        {
            "id": ids,
            "t": t,
            "y": y,
            "x": x,
            "z": z,
            "c1": c1,
            "c2": c2,
            "w": rng.uniform(0.2, 3.0, ids.size),
            "region": ids % 9,
        }
    )
    if unbalanced:
        df = df.sample(frac=0.9, random_state=seed).sort_values(["id", "t"]).reset_index(drop=True)
    return df


DF = _panel()
SD = {c: float(DF[c].std()) for c in ("y", "x", "z", "c1", "c2")}


def _close(got, want, scale, rel=1e-8):
    """|got − want| ≤ rel·(|want| + scale): relative, with a floor for coefficients near zero."""
    assert abs(got - want) <= rel * (abs(want) + scale), (got, want)


# --------------------------------------------------------------------------------------------
# 1. Real units: large means and scales
# --------------------------------------------------------------------------------------------


def test_population_in_persons_and_a_tiny_share_are_estimated():
    """A regressor in persons (mean 5e6) next to a share in 1e-4 units: the unscaled Gram matrix
    has condition number ~1e22, but the model is well posed (same t statistics as in
    standardised units)."""
    df = DF.assign(pop=5e6 + 3e6 * DF["x"], share=1e-4 * DF["c1"], gdp=2e8 + 1e7 * DF["c2"])
    base = twfe(DF, "y", "x", ["c1", "c2"], "id", "t", "id")
    res = twfe(df, "y", "pop", ["share", "gdp"], "id", "t", "id")
    assert res.extra["omitted"] == []
    _close(res.coef, base.coef / 3e6, 0)
    _close(res.params["share"], base.params["c1"] / 1e-4, 0)
    _close(res.t, base.t, 0)
    iv0 = iv_twfe(DF, "y", "x", "z", ["c1"], "id", "t", "id")
    iv = iv_twfe(df.assign(zz=1e9 + 1e7 * DF["z"]), "y", "pop", "zz", ["share"], "id", "t", "id")
    _close(iv.coef, iv0.coef / 3e6, 0)
    _close(iv.extra["kp_f"], iv0.extra["kp_f"], 0)


_AFFINE = dict(
    var=st.sampled_from(["y", "x", "c1", "c2", "w"]),
    log_a=st.floats(-9, 9),
    shift=st.floats(-1e3, 1e3),
    negative=st.booleans(),
)


def _transform(var, log_a, shift, negative):
    """x → a·x + b with b = shift·a·sd(x) (weights: w → |a|·w)."""
    a = 10.0**log_a * (-1.0 if negative and var != "w" else 1.0)
    b = 0.0 if var == "w" else shift * a * SD[var]
    return DF.assign(**{var: a * DF[var] + b}), a, b


TW_BASE = twfe(DF, "y", "x", ["c1", "c2"], "id", "t", "id", weights="w")


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(**_AFFINE)
def test_twfe_is_equivariant_under_affine_rescaling(var, log_a, shift, negative):
    df, a, b = _transform(var, log_a, shift, negative)
    res = twfe(df, "y", "x", ["c1", "c2"], "id", "t", "id", weights="w")
    base = TW_BASE
    assert res.extra["omitted"] == [] and res.nobs == base.nobs
    for name in ("x", "c1", "c2"):
        factor = a if var == "y" else (1.0 / a if var == name else 1.0)
        _close(res.params[name], factor * base.params[name], abs(factor) * base.bse[name])
        _close(res.bse[name], abs(factor) * base.bse[name], 0)
        _close(
            res.extra["t_stats"][name],
            math.copysign(1.0, factor) * base.extra["t_stats"][name],
            1.0,
        )
    for stat in ("r2", "r2_within"):
        _close(getattr(res, stat), getattr(base, stat), 1.0)
    if var == "y":
        want = a * base.params["_cons"] + b
    elif var == "w":
        want = base.params["_cons"]
    else:
        want = base.params["_cons"] - base.params[var] * b / a
    _close(res.params["_cons"], want, abs(b) + abs(a if var == "y" else 1.0) * base.bse["_cons"])


IV_BASE = iv_twfe(DF, "y", "x", "z", ["c1", "c2"], "id", "t", "id", weights="w")


@settings(
    max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    var=st.sampled_from(["y", "x", "z", "c1", "w"]),
    log_a=st.floats(-9, 9),
    shift=st.floats(-1e3, 1e3),
    negative=st.booleans(),
)
def test_iv_twfe_is_equivariant_under_affine_rescaling(var, log_a, shift, negative):
    df, a, b = _transform(var, log_a, shift, negative)
    res = iv_twfe(df, "y", "x", "z", ["c1", "c2"], "id", "t", "id", weights="w")
    base, e, e0 = IV_BASE, res.extra, IV_BASE.extra
    for name in ("x", "c1", "c2"):
        factor = a if var == "y" else (1.0 / a if var == name else 1.0)
        _close(res.params[name], factor * base.params[name], abs(factor) * base.bse[name])
        _close(res.bse[name], abs(factor) * base.bse[name], 0)
    fs = {"x": a, "z": 1.0 / a}.get(var, 1.0)
    _close(e["first_stage_coef"], fs * e0["first_stage_coef"], abs(fs) * e0["first_stage_se"])
    _close(e["first_stage_se"], abs(fs) * e0["first_stage_se"], 0)
    for stat in ("first_stage_F", "kp_lm", "kp_f", "cd_f", "ar_stat", "partial_r2"):
        _close(e[stat], e0[stat], 0)
    _close(res.r2_within, base.r2_within, 1.0)
    ci_factor = {"y": a, "x": 1.0 / a}.get(var, 1.0)
    want = sorted(ci_factor * v for v in e0["ar_ci"][0])
    got = sorted(e["ar_ci"][0])
    for g_, w_ in zip(got, want, strict=True):
        _close(g_, w_, abs(ci_factor) * base.se)


def test_convergence_is_judged_relative_to_each_column():
    """Unbalanced two-way panel, outcome in units of 1e-9: the alternating projections must still
    converge to the same relative precision (an absolute floor of 1 would stop them at once)."""
    df = _panel(n_ids=40, n_t=6, seed=3, unbalanced=True)
    small = twfe(df.assign(y=1e-9 * df["y"], x=1e-9 * df["x"]), "y", "x", ["c1"], "id", "t", "id")
    base = twfe(df, "y", "x", ["c1"], "id", "t", "id")
    _close(small.coef, base.coef, 0, rel=1e-9)
    _close(small.params["c1"], 1e-9 * base.params["c1"], 0, rel=1e-9)


# --------------------------------------------------------------------------------------------
# 2. Omitted controls, as reghdfe/pyfixest
# --------------------------------------------------------------------------------------------


def _pyfixest_dropped(df, fml):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols(fml, data=df, vcov={"CRV1": "id"})
    return list(m._collin_vars), m


@pytest.mark.parametrize(
    "controls,design",
    [
        (["c1", "c2", "c3"], "combination"),  # c3 = c1 + 2·c2
        (["c3", "c1", "c2"], "combination"),  # order decides: c2 goes
        (["c1", "cc", "c2"], "constant within city"),
        (["c1", "c2", "c1dup"], "duplicate"),
        (["c1dup", "c1", "c2"], "duplicate"),
    ],
)
def test_omitted_control_agrees_with_pyfixest(controls, design):
    rng = np.random.default_rng(5)
    df = DF.assign(
        c3=DF["c1"] + 2.0 * DF["c2"],
        c1dup=DF["c1"],
        cc=DF["id"].map(dict(enumerate(rng.normal(size=50)))),
    )
    res = twfe(df, "y", "x", controls, "id", "t", "id")
    dropped, m = _pyfixest_dropped(df, "y ~ x + " + " + ".join(controls) + " | id + t")
    assert res.extra["omitted"] == dropped and len(dropped) == 1
    assert dropped[0] not in res.params
    for name in m.coef().index:
        assert res.params[name] == pytest.approx(m.coef()[name], rel=1e-8)
        assert res.bse[name] == pytest.approx(m.se()[name], rel=1e-8)
    assert res.extra["notes"][0].startswith(f"{dropped[0]} omitted: ")
    if design == "constant within city":
        assert "does not vary within id" in res.extra["notes"][0]
    else:
        assert "collinear with" in res.extra["notes"][0]
    with pytest.raises(EstimationError, match=f"control '{dropped[0]}' cannot be estimated") as err:
        twfe(df, "y", "x", controls, "id", "t", "id", on_collinear="error")
    assert isinstance(err.value, ProjectError) and "on_collinear" in err.value.hint


def test_core_regressor_absorbed_or_collinear_is_an_error_naming_it():
    df = DF.assign(x2=2.0 * DF["x"] + 1.0, xc=DF["id"] * 0.5)
    with pytest.raises(EstimationError, match="regressor 'x2'.*collinear with x"):
        twfe(df, "y", ["x", "x2"], ["c1"], "id", "t", "id")
    with pytest.raises(EstimationError, match="regressor 'xc'.*does not vary within id"):
        twfe(df, "y", "xc", ["c1"], "id", "t", "id")
    with pytest.raises(EstimationError, match="endogenous regressor 'xc'.*does not vary within id"):
        iv_twfe(df, "y", "xc", "z", ["c1"], "id", "t", "id")


def test_iv_omits_a_duplicated_control_like_pyfixest():
    df = DF.assign(c1dup=DF["c1"])
    res = iv_twfe(df, "y", "x", "z", ["c1", "c2", "c1dup"], "id", "t", "id")
    ref = iv_twfe(df, "y", "x", "z", ["c1", "c2"], "id", "t", "id")
    assert res.extra["omitted"] == ["c1dup"] and "c1dup omitted" in res.extra["notes"][0]
    assert res.coef == pytest.approx(ref.coef, rel=1e-10) and res.se == pytest.approx(
        ref.se, rel=1e-10
    )
    assert res.extra["kp_f"] == pytest.approx(ref.extra["kp_f"], rel=1e-10)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = pf.feols("y ~ c1 + c2 + c1dup | id + t | x ~ z", data=df, vcov={"CRV1": "id"})
    assert "c1dup" in m._collin_vars
    assert res.coef == pytest.approx(m.coef()["x"], rel=1e-8)
    with pytest.raises(EstimationError, match="control 'c1dup'"):
        iv_twfe(df, "y", "x", "z", ["c1", "c2", "c1dup"], "id", "t", "id", on_collinear="error")


def test_iv_redundant_instrument_is_an_error_naming_it():
    df = DF.assign(z2=3.0 * DF["z"] - DF["c1"])
    with pytest.raises(EstimationError, match="instrument 'z2' is collinear with c1, z"):
        iv_twfe(df, "y", "x", ["z", "z2"], ["c1"], "id", "t", "id")


def test_spec_record_carries_the_omitted_controls():
    from nqp_resilience.estimation.specs import estimate

    rng = np.random.default_rng(2)
    data = {
        "city_code": DF["id"].to_numpy(),
        "year": DF["t"].to_numpy(),
        "Resil": DF["y"].to_numpy(),
        "Nqp": DF["x"].to_numpy(),
        "GDP": DF["c1"].to_numpy(),
        "GOV": DF["c1"].to_numpy() * 2.0,
        "ADM": DF["id"].map(dict(enumerate(rng.normal(size=50)))).to_numpy(),
    }
    spec = {
        "id": "s",
        "table": 3,
        "estimator": "ols_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        "controls": ["GDP", "GOV", "ADM"],
    }
    record = estimate(spec, data, [])
    assert record["extra"]["omitted"] == ["GOV", "ADM"]
    assert record["omitted"] == ["GOV", "ADM"] and len(record["notes"]) == 2
    with pytest.raises(EstimationError, match="GOV"):
        estimate({**spec, "on_collinear": "error"}, data, [])


# --------------------------------------------------------------------------------------------
# 3. Mobility groups (disconnected city–year graph)
# --------------------------------------------------------------------------------------------


def _two_blocks(seed=4):
    """Cities 0–19 observed in years 0–4, cities 20–39 in years 5–9: two mobility groups."""
    rng = np.random.default_rng(seed)
    rows = [(i, t) for i in range(40) for t in (range(5) if i < 20 else range(5, 10))]
    df = pd.DataFrame(rows, columns=["id", "t"])
    n = len(df)
    df["x"] = rng.normal(size=n) + rng.normal(size=40)[df["id"]]
    df["y"] = (
        0.4 * df["x"]
        + rng.normal(size=40)[df["id"]]
        + rng.normal(size=10)[df["t"]]
        + rng.normal(size=n)
    )
    df["cl"] = (df["id"] * 3 + df["t"]) % 11  # clusters in which neither FE is nested
    return df


def _dummies_ols(df, cov_type, groups=None):
    import statsmodels.api as sm

    X = pd.get_dummies(
        df[["x", "id", "t"]].astype({"id": str, "t": str}),
        columns=["id", "t"],
        drop_first=True,
        dtype=float,
    )
    kw = {"cov_kwds": {"groups": groups}} if groups is not None else {}
    fit = sm.OLS(df["y"], sm.add_constant(X)).fit(cov_type=cov_type, **kw)
    return fit, int(np.linalg.matrix_rank(sm.add_constant(X).to_numpy()))


def test_mobility_groups_reduce_k_like_reghdfe():
    """K = k + (L_city − 0) + (L_year − M) with M = 2 components: 1 + 40 + 8 = 49, the rank of
    the dummy design; statsmodels (pinv, df from the rank) then gives the same HC1 and CR1 SEs."""
    df = _two_blocks()
    assert connected_components(df["id"].to_numpy(), df["t"].to_numpy(), 40, 10) == 2
    hc = twfe(df, "y", "x", [], "id", "t", None)
    ols, rank = _dummies_ols(df, "HC1")
    assert rank == 49 and hc.extra["df_k"] == 49
    assert hc.coef == pytest.approx(ols.params["x"], rel=1e-9)
    assert hc.se == pytest.approx(ols.bse["x"], rel=1e-9)
    cr = twfe(df, "y", "x", [], "id", "t", "cl")
    ols_cl, _ = _dummies_ols(df, "cluster", df["cl"].to_numpy())
    assert cr.extra["df_k"] == 49
    # statsmodels' cluster correction counts the 50 columns of the dummy design, not its rank
    n = len(df)
    assert cr.se == pytest.approx(ols_cl.bse["x"] * math.sqrt((n - 50) / (n - 49)), rel=1e-9)
    # city FE nested in city clusters: reghdfe counts only the year levels (the first non-nested
    # set has no redundant level), K = 1 + 10, whatever the components
    nested = twfe(df, "y", "x", [], "id", "t", "id")
    assert nested.extra["df_k"] == 11
    ols_id, _ = _dummies_ols(df, "cluster", df["id"].to_numpy())
    assert nested.se == pytest.approx(ols_id.bse["x"] * math.sqrt((n - 50) / (n - 11)), rel=1e-9)
    iv = iv_twfe(
        df.assign(z=df["x"] + np.random.default_rng(0).normal(size=n)),
        "y",
        "x",
        "z",
        [],
        "id",
        "t",
        None,
    )
    assert iv.extra["df_k"] == 49


def test_connected_components_match_scipy():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as cc

    rng = np.random.default_rng(9)
    for _ in range(30):
        m = int(rng.integers(1, 60))
        a = np.unique(rng.integers(0, 30, m), return_inverse=True)[1]
        b = np.unique(rng.integers(0, 30, m), return_inverse=True)[1]
        na, nb = int(a.max()) + 1, int(b.max()) + 1
        g = coo_matrix((np.ones(m), (a, b + na)), shape=(na + nb, na + nb))
        assert connected_components(a, b, na, nb) == cc(g, directed=False)[0]


# --------------------------------------------------------------------------------------------
# 4. One cluster; nullable dtypes
# --------------------------------------------------------------------------------------------


def test_one_cluster_is_a_project_error():
    df = DF.assign(one="A")
    with pytest.raises(EstimationError, match="at least two clusters") as err:
        twfe(df, "y", "x", ["c1"], "id", "t", "one")
    assert isinstance(err.value, ProjectError) and err.value.hint
    with pytest.raises(EstimationError, match="at least two clusters"):
        iv_twfe(df, "y", "x", "z", ["c1"], "id", "t", "one")


def test_nullable_dtypes_are_deleted_listwise():
    df = DF.copy()
    rows = [3, 17, 40, 41, 100]
    nul = df.assign(
        y=df["y"].astype("Float64"),
        c1=df["c1"].astype("Float64"),
        flag=(df["c2"] > 0).astype("boolean"),
        id=df["id"].astype("string"),
        cl=df["id"].astype("Int64"),
    )
    nul.loc[rows[0], "y"] = pd.NA
    nul.loc[rows[1], "c1"] = pd.NA
    nul.loc[rows[2], "flag"] = pd.NA
    nul.loc[rows[3], "id"] = pd.NA
    nul.loc[rows[4], "cl"] = pd.NA
    plain = df.assign(flag=(df["c2"] > 0).astype(float), id=df["id"].astype(str), cl=df["id"]).drop(
        index=rows
    )
    got = twfe(nul, "y", "x", ["c1", "flag"], "id", "t", "cl")
    want = twfe(plain, "y", "x", ["c1", "flag"], "id", "t", "cl")
    assert got.nobs == want.nobs
    assert got.coef == pytest.approx(want.coef, rel=1e-10) and got.se == pytest.approx(
        want.se, rel=1e-10
    )
    got = iv_twfe(nul, "y", "x", "z", ["c1", "flag"], "id", "t", "cl")
    want = iv_twfe(plain, "y", "x", "z", ["c1", "flag"], "id", "t", "cl")
    assert got.nobs == want.nobs and got.coef == pytest.approx(want.coef, rel=1e-10)


# --------------------------------------------------------------------------------------------
# 7. Unknown variables
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: twfe(DF, "y", "xx", ["c1"], "id", "t", "id"),
        lambda: twfe(DF, "y", "x", ["c1"], "id", "t", "idd"),
        lambda: iv_twfe(DF, "y", "x", "zz", ["c1"], "id", "t", "id"),
    ],
)
def test_unknown_variable_is_a_project_error_with_a_suggestion(call):
    with pytest.raises(
        UnknownVariableError, match=r"is not in the data\n  hint: did you mean '(x|id|z)'\?"
    ) as err:
        call()
    assert isinstance(err.value, ProjectError) and not isinstance(err.value, KeyError)
