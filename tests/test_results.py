"""Result objects: vcov, conf_int, tidy, summary, repr, typed sub-objects, keyword-only
arguments and Literal options, against pyfixest where it has the same quantity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.errors import ProjectError
from nqp_resilience.estimation.core import OptionError
from nqp_resilience.estimation.iv import iv_twfe
from nqp_resilience.estimation.matching import psm
from nqp_resilience.estimation.ols import twfe
from nqp_resilience.estimation.results import EstimationResult, IVResults, MatchingResults

pf = pytest.importorskip("pyfixest")

#: ``extra`` keys a record has always carried (documented in docs/iv.md and docs/psm.md)
TWFE_EXTRA = ["df_k", "t_stats", "p_values", "rss", "omitted"]
IV_EXTRA = [
    "first_stage_coef",
    "first_stage_se",
    "first_stage_F",
    "first_stage_F_p",
    "first_stage_F_df",
    "partial_r2",
    "first_stage",
    "kp_lm",
    "kp_lm_df",
    "kp_lm_p",
    "kp_f",
    "kp_wald_chi2",
    "cd_f",
    "canonical_correlations",
    "stock_yogo",
    "ar_stat",
    "ar_p",
    "ar_df",
    "ar_chi2",
    "ar_chi2_p",
    "ar_ci",
    "ar_ci_kind",
    "ar_ci_level",
    "ar_ci_method",
    "instruments",
    "endogenous",
    "df_k",
    "df_k_first_stage",
    "absorbed_dof",
    "t_stats",
    "p_values",
    "rss",
    "omitted",
]
TO_DICT = [
    "coef",
    "se",
    "t",
    "p",
    "ci",
    "nobs",
    "n_clusters",
    "r2",
    "r2_within",
    "params",
    "bse",
    "df_resid",
    "vcov_type",
]


def _panel(n_ids=70, n_t=8, seed=3):
    """y = 0.5·x + 0.3·c1 − 0.2·c2 + a_i + g_t + e with x endogenous (instrument z)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), n_t)
    t = np.tile(np.arange(n_t), n_ids)
    a, g = rng.normal(size=n_ids)[ids], rng.normal(size=n_t)[t]
    z = rng.normal(size=ids.size) + 0.5 * a
    v = rng.normal(size=ids.size)
    c1, c2 = rng.normal(size=ids.size), rng.normal(size=ids.size)
    x = 0.7 * z + 0.3 * c1 + a + g + v
    e = 0.6 * v + rng.normal(size=ids.size) + rng.normal(size=n_ids)[ids]
    y = 0.5 * x + 0.3 * c1 - 0.2 * c2 + a + g + e
    return pd.DataFrame(
        {
            "id": ids,
            "t": t,
            "y": y,
            "x": x,
            "z": z,
            "c1": c1,
            "c2": c2,
            "w": rng.uniform(0.2, 3.0, ids.size),
            "d": (x > np.median(x)).astype(float),
        }
    )


@pytest.fixture(scope="module")
def df():
    return _panel()


@pytest.fixture(scope="module")
def ols_pair(df):
    res = twfe(df, "y", "x", ["c1", "c2"], "id", "t", "id")
    m = pf.feols("y ~ x + c1 + c2 | id + t", data=df, vcov={"CRV1": "id"})
    return res, m


@pytest.fixture(scope="module")
def iv_pair(df):
    res = iv_twfe(df, "y", "x", "z", ["c1", "c2"], "id", "t", "id")
    m = pf.feols("y ~ c1 + c2 | id + t | x ~ z", data=df, vcov={"CRV1": "id"})
    return res, m


# ---------------------------------------------------------------------------------------------
# vcov, conf_int, tidy against pyfixest
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair", ["ols_pair", "iv_pair"])
def test_vcov_diagonal_is_bse_squared_and_matches_pyfixest(pair, request):
    res, m = request.getfixturevalue(pair)
    v = res.vcov
    assert list(v.index) == list(v.columns) == list(res.params)
    np.testing.assert_allclose(
        np.diag(v.to_numpy()), [res.bse[k] ** 2 for k in v.index], rtol=1e-12
    )
    np.testing.assert_allclose(v.to_numpy(), v.to_numpy().T, rtol=1e-12, atol=0)
    names = list(m._coefnames)
    ours = v.loc[names, names].to_numpy()
    np.testing.assert_allclose(ours, np.asarray(m._vcov), rtol=1e-8, atol=1e-14)


def test_vcov_of_the_constant_matches_pyfixest_without_fixed_effects(df):
    """Without fixed effects reghdfe's ``_cons`` is the intercept: its row and column of the
    variance matrix (covariances with the slopes included) equal pyfixest's."""
    res = twfe(df, "y", "x", ["c1"], None, None, "id")
    m = pf.feols("y ~ x + c1", data=df, vcov={"CRV1": "id"})
    names = list(m._coefnames)
    ours = res.vcov.rename(index={"_cons": "Intercept"}, columns={"_cons": "Intercept"})
    np.testing.assert_allclose(
        ours.loc[names, names].to_numpy(), np.asarray(m._vcov), rtol=1e-8, atol=1e-14
    )


@pytest.mark.parametrize("pair", ["ols_pair", "iv_pair"])
def test_conf_int_equals_pyfixest_confint(pair, request):
    res, m = request.getfixturevalue(pair)
    ref = m.confint()
    ours = res.conf_int()
    assert list(ours.columns) == ["2.5%", "97.5%"]
    for name in ref.index:
        assert ours.loc[name, "2.5%"] == pytest.approx(ref.loc[name, "2.5%"], abs=1e-8)
        assert ours.loc[name, "97.5%"] == pytest.approx(ref.loc[name, "97.5%"], abs=1e-8)
    # the default level reproduces the record's ci of the core regressor exactly
    assert tuple(ours.loc[res.regressor]) == res.ci


def test_conf_int_other_level_and_bad_level(ols_pair):
    res, m = ols_pair
    ours, ref = res.conf_int(0.9), m.confint(alpha=0.1)
    assert list(ours.columns) == ["5%", "95%"]
    for name in ref.index:
        np.testing.assert_allclose(
            ours.loc[name].to_numpy(), ref.loc[name].to_numpy(), rtol=0, atol=1e-8
        )
    with pytest.raises(ProjectError, match="level"):
        res.conf_int(95)


@pytest.mark.parametrize("pair", ["ols_pair", "iv_pair"])
def test_tidy_matches_pyfixest_tidy(pair, request):
    res, m = request.getfixturevalue(pair)
    tidy = res.tidy()
    assert list(tidy.columns) == ["term", "estimate", "std_error", "t", "p", "ci_low", "ci_high"]
    assert list(tidy["term"]) == list(res.params)
    ref = m.tidy()
    ours = tidy.set_index("term").loc[list(ref.index)]
    pairs = {
        "estimate": "Estimate",
        "std_error": "Std. Error",
        "t": "t value",
        "p": "Pr(>|t|)",
        "ci_low": "2.5%",
        "ci_high": "97.5%",
    }
    for mine, theirs in pairs.items():
        np.testing.assert_allclose(
            ours[mine].to_numpy(), ref[theirs].to_numpy(), rtol=1e-7, atol=1e-10, err_msg=mine
        )
    assert res.tvalues == res.extra["t_stats"] and res.pvalues == res.extra["p_values"]


# ---------------------------------------------------------------------------------------------
# summary, repr, sub-objects, extra and to_dict
# ---------------------------------------------------------------------------------------------


def test_summary_has_header_and_a_row_per_coefficient(ols_pair, iv_pair):
    res, _ = ols_pair
    text = res.summary()
    assert f"Number of obs      = {res.nobs:>10,}" in text
    assert f"Number of clusters = {res.n_clusters:>10,}" in text
    assert "Absorbed FE: id, t" in text and "VCE: CR1 by id" in text
    rows = [ln for ln in text.splitlines() if " | " in ln]
    assert [r.split("|")[0].strip() for r in rows[1:]] == list(res.params)
    assert f"{res.params['x']:10.4f}" in rows[1] and f"{res.bse['x']:10.4f}" in rows[1]
    assert repr(text) == str(text)  # shown as the table at the prompt
    iv_text = iv_pair[0].summary()
    assert "Kleibergen-Paap rk LM" in iv_text and "Anderson-Rubin" in iv_text


def test_repr_is_one_line(ols_pair, iv_pair):
    res, _ = ols_pair
    r = repr(res)
    assert "\n" not in r
    assert r == (
        f"<EstimationResult twfe: y ~ x + 2 controls | id + t; coef {res.coef:.3g} "
        f"({res.se:.3g}), N={res.nobs}, G={res.n_clusters}>"
    )
    assert repr(iv_pair[0]).startswith("<EstimationResult iv_twfe: y ~ [x ~ z] + 2 controls | id")


def test_iv_sub_object_and_extra_keys(iv_pair):
    res, _ = iv_pair
    assert list(res.extra) == IV_EXTRA
    iv = res.iv
    assert isinstance(iv, IVResults)
    assert iv.first_stage_coef == res.extra["first_stage_coef"]
    assert iv.first_stage_se == res.extra["first_stage_se"]
    assert iv.first_stage_F == res.extra["first_stage_F"]
    assert (iv.kp_lm, iv.kp_f, iv.cd_f) == tuple(res.extra[k] for k in ("kp_lm", "kp_f", "cd_f"))
    assert iv.stock_yogo == res.extra["stock_yogo"]
    assert iv.anderson_rubin.stat == res.extra["ar_stat"]
    assert iv.anderson_rubin.ci == res.extra["ar_ci"]
    assert list(res.extra["first_stage"]["x"]) == ["coef", "se", "F", "F_p", "F_df", "partial_r2"]


def test_twfe_extra_and_to_dict_keys(ols_pair):
    res, _ = ols_pair
    assert list(res.extra) == TWFE_EXTRA
    assert list(res.to_dict()) == TO_DICT
    assert res.iv is None and res.matching is None


def test_psm_sub_object(df):
    res = psm(df, "d", ["c1", "c2"], "y", "nearest", ties=True)
    assert isinstance(res.matching, MatchingResults)
    assert res.matching.att == res.att == res.coef
    assert res.matching.matched_n == res.extra["matched_n"]
    assert res.matching.balance == res.extra["balance"]
    assert list(res.to_dict()) == [*TO_DICT, "att", "att_se"]
    assert res.vcov.loc["ATT", "ATT"] == pytest.approx(res.se**2, rel=1e-15)
    lo, hi = res.conf_int().loc["ATT"]
    assert (lo, hi) == pytest.approx(res.ci, rel=1e-14)
    assert res.pvalues["ATT"] == pytest.approx(res.p, rel=1e-12)


def test_old_constructor_still_works():
    """Positional construction with the historical fields; no vcov given -> se² on the
    diagonal, NaN elsewhere."""
    r = EstimationResult(
        0.5,
        0.1,
        5.0,
        0.001,
        (0.3, 0.7),
        100,
        10,
        0.4,
        0.2,
        "x",
        {"x": 0.5, "c": 1.0},
        {"x": 0.1, "c": 0.2},
        9,
        "CR1",
        {},
    )
    v = r.vcov
    assert v.loc["x", "x"] == pytest.approx(0.01) and math.isnan(v.loc["x", "c"])
    assert r.tvalues == {"x": 5.0, "c": 5.0}
    assert "\n" not in repr(r)


# ---------------------------------------------------------------------------------------------
# signatures: keyword-only options, Literal values
# ---------------------------------------------------------------------------------------------


def test_options_are_keyword_only(df):
    with pytest.raises(TypeError):
        twfe(df, "y", "x", ["c1"], "id", "t", "id", "w")
    with pytest.raises(TypeError):
        iv_twfe(df, "y", "x", "z", ["c1"], "id", "t", "id", "w")
    with pytest.raises(TypeError):
        psm(df, "d", ["c1"], "y", "nearest", None, 0.06, False)


@pytest.mark.parametrize(
    "call, option, allowed",
    [
        (
            lambda d: twfe(d, "y", "x", [], "id", "t", "id", singletons="dorp"),
            "singletons",
            "'drop', 'keep'",
        ),
        (
            lambda d: twfe(d, "y", "x", [], "id", "t", "id", on_collinear="drop"),
            "on_collinear",
            "'omit', 'error'",
        ),
        (
            lambda d: iv_twfe(d, "y", "x", "z", [], "id", "t", "id", singletons="no"),
            "singletons",
            "'drop', 'keep'",
        ),
        (
            lambda d: iv_twfe(d, "y", "x", "z", [], "id", "t", "id", on_collinear="x"),
            "on_collinear",
            "'omit', 'error'",
        ),
        (
            lambda d: psm(d, "d", ["c1"], "y", "mahalanobis"),
            "method",
            "'nearest', 'radius', 'kernel'",
        ),
        (
            lambda d: psm(d, "d", ["c1"], "y", "nearest", model="cloglog"),
            "model",
            "'logit', 'probit'",
        ),
    ],
)
def test_bad_literal_is_a_project_error_naming_the_allowed_values(df, call, option, allowed):
    with pytest.raises(OptionError) as info:
        call(df)
    assert isinstance(info.value, ProjectError)
    assert f"{option} must be one of {allowed}" in str(info.value)
