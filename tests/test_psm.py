"""Tests of nqp_resilience.estimation.matching: psmatch2 / pstest conventions (docs/psm.md).

Tiers: (a) hand-worked 8-observation examples per matcher, with the arithmetic in
comments; (b) reference tests against statsmodels and against a published Stata psmatch2/pstest
log (tests/data/psm/README.md); property tests (hypothesis) of invariants psmatch2 guarantees.
Every test states its tolerance and where the expected number comes from.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nqp_resilience.errors import ProjectError, UnknownVariableError
from nqp_resilience.estimation import matching as P
from nqp_resilience.estimation.results import EstimationResult

DATA = Path(__file__).parent / "data" / "psm"
EXACT = 1e-12  # tolerance for hand-worked numbers: exact rationals, floating-point noise only


# ------------------------------------------------------------------------------------------
# Hand-worked data sets (scores are dyadic fractions, so every distance below is exact)
# ------------------------------------------------------------------------------------------
# Data set A (nearest neighbour).  rows 0-3 controls, 4-7 treated; scores given (pscore=).
#   row  0     1     2     3      4      5       6       7
#   t    0     0     0     0      1      1       1       1
#   p   .25   .5    .5   .875   .125  .4375   .6875   .75
#   y   10    14    16    20     15     18      25      30
#   x    1     2     4     5      0      3       4       8      (a covariate for pstest)
# Row 4 (p=.125 < min control .25) is off common support.
# Row 5: |.4375-.5| = .0625 to rows 1 AND 2 (identical scores: a tie).
# Row 6: |.6875-.5| = .1875 = |.875-.6875|: rows 1, 2 and 3 tie (a "mirrored" tie).
# Row 7: nearest is row 3 at .125 (rows 1, 2 at .25).
A = {
    "t": np.array([0, 0, 0, 0, 1, 1, 1, 1.0]),
    "p": np.array([0.25, 0.5, 0.5, 0.875, 0.125, 0.4375, 0.6875, 0.75]),
    "y": np.array([10, 14, 16, 20, 15, 18, 25, 30.0]),
    "x": np.array([1, 2, 4, 5, 0, 3, 4, 8.0]),
}

# Data set B (radius and kernel).
#   row  0     1      2      3      4       5       6      7
#   t    0     0      0      0      1       1       1      1
#   p   .25  .375   .375   .875   .125  .28125   .625  .8125
#   y   10    12     16     20     15      18      22     30
# Row 4 is off common support (below .25). Row 6 (.625) is .25 from both neighbours .375 and
# .875: no control within a radius of 3/32 or a bandwidth of 1/8 (the "caliper miss").
B = {
    "t": np.array([0, 0, 0, 0, 1, 1, 1, 1.0]),
    "p": np.array([0.25, 0.375, 0.375, 0.875, 0.125, 0.28125, 0.625, 0.8125]),
    "y": np.array([10, 12, 16, 20, 15, 18, 22, 30.0]),
}


def _psm(data, method, **kw):
    return P.psm(data, "t", None, "y", method, pscore="p", balance=False, **kw)


def _match(data, method, **kw):
    return P.match(data, "t", None, method, outcome="y", pscore="p", **kw)


def _nan_equal(a, b):
    np.testing.assert_allclose(
        np.asarray(a, float), np.asarray(b, float), rtol=0, atol=EXACT, equal_nan=True
    )


# ------------------------------------------------------------------------------------------
# (a) Hand-worked examples
# ------------------------------------------------------------------------------------------


def test_nearest_with_ties_hand_worked():
    """psmatch2 t, pscore(p) outcome(y) common ties — by hand; tolerance 1e-12."""
    r = _psm(A, "nearest", ties=True)
    m = _match(A, "nearest", ties=True)
    # Row 5 -> rows 1,2 (1/2 each); row 6 -> rows 1,2,3 (1/3 each); row 7 -> row 3 (1).
    # W_1 = W_2 = 1/2 + 1/3 = 5/6, W_3 = 1/3 + 1 = 4/3, W_0 = 0 (missing in psmatch2).
    _nan_equal(m.weight, [np.nan, 5 / 6, 5 / 6, 4 / 3, np.nan, 1, 1, 1])
    _nan_equal(m.support, [1, 1, 1, 1, 0, 1, 1, 1])
    _nan_equal(m.n1, [np.nan] * 5 + [1, 1, 3])  # first neighbour, 0-based row
    _nan_equal(m.nn, [0, 0, 0, 0, np.nan, 2, 3, 1])  # neighbours incl. ties (_nn)
    # Matched outcomes: (14+16)/2 = 15, (14+16+20)/3 = 50/3, 20.
    _nan_equal(m.matched_outcome, [np.nan] * 5 + [15, 50 / 3, 20])
    # ATT = mean(18,25,30) - mean(15, 50/3, 20) = 73/3 - 155/9 = 64/9.
    assert r.att == pytest.approx(64 / 9, abs=EXACT)
    # Var(y|T) over 18,25,30 = (1849 - 73²/3)/2 = 109/3; Var(y|C) over the matched controls
    # 14,16,20 = 28/3; Σ W² = 25/36 + 25/36 + 64/36 = 19/6; N1 = 3.
    # SE² = (109/3)/3 + (28/3)(19/6)/9 = 109/9 + 266/81 = 1247/81.
    assert r.att_se == pytest.approx(math.sqrt(1247) / 9, abs=EXACT)
    assert r.nobs == 7  # on support: 4 controls + 3 treated
    assert r.extra["matched_n"] == 6  # 3 treated + 3 controls with W > 0
    assert r.extra["n_off_support"] == 1
    assert (r.extra["n_treated"], r.extra["n_controls"]) == (4, 4)


def test_nearest_without_ties_takes_first_in_sort_order():
    """psmatch2's default (no ties): first control in (score, row) order; tolerance 1e-12."""
    r = _psm(A, "nearest")
    m = _match(A, "nearest")
    # Row 5: rows 1 and 2 tie at .0625 -> row 1 (earlier row). Row 6: rows 1,2,3 tie at .1875
    # -> the forward scan keeps the first, row 1. Row 7 -> row 3.  W_1 = 2, W_3 = 1.
    _nan_equal(m.weight, [np.nan, 2, np.nan, 1, np.nan, 1, 1, 1])
    _nan_equal(m.n1, [np.nan] * 5 + [1, 1, 3])
    # ATT = mean(18-14, 25-14, 30-20) = 25/3.
    assert r.att == pytest.approx(25 / 3, abs=EXACT)
    # Var(y|T) = 109/3; matched controls rows 1,3: Var(14,20) = 18; Σ W² = 4 + 1 = 5.
    # SE² = 109/9 + 18·5/9 = 199/9.
    assert r.att_se == pytest.approx(math.sqrt(199) / 3, abs=EXACT)
    # Swapping rows 1 and 2 (identical scores) makes row 2's outcome (16) the match: the
    # result depends on row order exactly as psmatch2's does on the sort order.
    swapped = {k: v[[0, 2, 1, 3, 4, 5, 6, 7]] for k, v in A.items()}
    assert _psm(swapped, "nearest").att == pytest.approx((18 - 16 + 25 - 16 + 10) / 3, abs=EXACT)


def test_nearest_caliper_is_strict_and_single_treated_has_no_se():
    """caliper(0.125) ties: |p_i - p_j| < caliper is required (strict); tolerance 1e-12."""
    r = _psm(A, "nearest", ties=True, caliper=0.125)
    m = _match(A, "nearest", ties=True, caliper=0.125)
    # Row 5: .0625 < .125 -> rows 1,2. Row 6: .1875 -> caliper miss. Row 7: .125 is NOT < .125
    # -> miss. Both go off support; row 4 is off by common support.
    _nan_equal(m.support, [1, 1, 1, 1, 0, 1, 0, 0])
    _nan_equal(m.weight, [np.nan, 0.5, 0.5, np.nan, np.nan, 1, np.nan, np.nan])
    assert r.att == pytest.approx(18 - 15, abs=EXACT)
    # N1 = 1: Var(y|T) of one value is missing in Stata, so psmatch2 prints "." for the S.E.
    assert math.isnan(r.att_se) and math.isnan(r.t) and math.isnan(r.p)
    assert r.extra["n_off_support"] == 3 and r.nobs == 5


def test_radius_hand_worked():
    """psmatch2 t, pscore(p) outcome(y) common radius caliper(0.09375); tolerance 1e-12."""
    r = _psm(B, "radius", caliper=0.09375)
    m = _match(B, "radius", caliper=0.09375)
    # Row 5 (.28125): row 0 at .03125, rows 1,2 at exactly .09375 (radius is inclusive, <=)
    # -> 1/3 each. Row 6 (.625): nearest controls .25 away -> off support (caliper miss).
    # Row 7 (.8125): row 3 at .0625 -> 1. Row 4: off common support.
    _nan_equal(m.weight, [1 / 3, 1 / 3, 1 / 3, 1, np.nan, 1, np.nan, 1])
    _nan_equal(m.support, [1, 1, 1, 1, 0, 1, 0, 1])
    # Matched outcomes: (10+12+16)/3 = 38/3 and 20. ATT = ((18 - 38/3) + (30 - 20))/2 = 23/3.
    assert r.att == pytest.approx(23 / 3, abs=EXACT)
    # Var(y|T) = Var(18,30) = 72; Var(y|C) = Var(10,12,16,20) = 59/3; Σ W² = 3/9 + 1 = 4/3;
    # N1 = 2: SE² = 72/2 + (59/3)(4/3)/4 = 36 + 59/9 = 383/9.
    assert r.att_se == pytest.approx(math.sqrt(383) / 3, abs=EXACT)
    assert r.extra["n_off_support"] == 2 and r.extra["matched_n"] == 6


def test_radius_default_caliper_is_spec_0_01():
    """The radius caliper defaults to 0.01 (psmatch2 itself has no default)."""
    m = _match(B, "radius")
    assert m.options["caliper"] == 0.01
    # Every treated row of B is more than .01 from all controls: all off support, no ATT.
    with pytest.raises(
        P.MatchingError, match=r"no treated unit is on support \(radius matching, caliper 0.01\)"
    ):
        _psm(B, "radius")


def test_kernel_hand_worked():
    """psmatch2 t, pscore(p) outcome(y) common kernel bwidth(0.125) (epan); tolerance 1e-12."""
    r = _psm(B, "kernel", bandwidth=0.125)
    m = _match(B, "kernel", bandwidth=0.125)
    # Row 5 (.28125): u = d/h: row 0 d=-.03125 u=-.25 K = 1-.0625 = 15/16; rows 1,2 d=.09375
    # u=.75 K = 1-.5625 = 7/16 each; Σ = 29/16 -> weights 15/29, 7/29, 7/29.
    # Row 6: no control within .125 -> off support. Row 7: row 3 (u=.5, K=.75) -> weight 1.
    _nan_equal(m.weight, [15 / 29, 7 / 29, 7 / 29, 1, np.nan, 1, np.nan, 1])
    # Matched outcome of row 5: (15·10 + 7·12 + 7·16)/29 = 346/29.
    _nan_equal(m.matched_outcome, [np.nan] * 5 + [346 / 29, np.nan, 20])
    # ATT = ((18 - 346/29) + (30 - 20))/2 = (176/29 + 10)/2 = 233/29.
    assert r.att == pytest.approx(233 / 29, abs=EXACT)
    # Var(y|T) = 72; Var(y|C) = Var(10,12,16,20) = 59/3; Σ W² = (225 + 49 + 49)/841 + 1 = 1164/841.
    # SE² = 36 + (59/3)(1164/841)/4 = 36 + 5723/841 = 35999/841.
    assert r.att_se == pytest.approx(math.sqrt(35999) / 29, abs=EXACT)
    # Σ_j W_j = number of treated on support (2).
    assert np.nansum(m.weight[B["t"] == 0]) == pytest.approx(2, abs=EXACT)


def test_kernel_boundary_weight_zero_and_all_zero_goes_off_support():
    """Epanechnikov at |d| = h gives K = 0: such a control gets no weight (psmatch2 _weight .);
    a treated unit whose only controls are at exactly h has Σ K = 0 and goes off support."""
    data = {
        "t": np.array([0, 0, 1, 1.0]),
        "p": np.array([0.25, 0.5, 0.375, 0.75]),
        "y": np.array([1, 3, 5, 7.0]),
    }
    # Row 2 (.375): both controls at .125 = h -> K = 0, 0 -> off support.
    # Row 3 (.75): control 1 at .25 > h -> none; common support: .75 > max control .5 -> off.
    m = P.match(
        data, "t", None, "kernel", outcome="y", pscore="p", bandwidth=0.125, common_support=False
    )
    _nan_equal(m.support, [1, 1, 0, 0])
    _nan_equal(m.weight, [np.nan, np.nan, np.nan, np.nan])


def test_common_support_off_and_bounds_inclusive():
    """common: treated outside [min, max] of control scores are off; equal to a bound stays on."""
    data = {
        "t": np.array([0, 0, 1, 1, 1.0]),
        "p": np.array([0.25, 0.75, 0.25, 0.75, 0.875]),
        "y": np.arange(5.0),
    }
    m = P.match(data, "t", None, "nearest", pscore="p")
    _nan_equal(m.support, [1, 1, 1, 1, 0])
    m = P.match(data, "t", None, "nearest", pscore="p", common_support=False)
    _nan_equal(m.support, [1, 1, 1, 1, 1])


def test_psmatch2_variables_frame():
    """The psmatch2 variables as a DataFrame (data set A, ties); tolerance 1e-12."""
    import pandas as pd

    df = pd.DataFrame(A, index=list("abcdefgh"))
    v = P.psmatch2_variables(df, "t", None, "nearest", outcome="y", pscore="p", ties=True)
    assert list(v.columns) == ["_pscore", "_treated", "_support", "_weight", "_n1", "_nn", "_pdif"]
    assert list(v.index) == list("abcdefgh")
    _nan_equal(v["_pscore"], A["p"])
    # _pdif = |p - p[_n1]|: .0625, .1875, .125 for rows 5, 6, 7.
    _nan_equal(v["_pdif"], [np.nan] * 5 + [0.0625, 0.1875, 0.125])


def test_matched_sample_weights():
    """Table 4 regression weights: 1 treated on support, W_j controls, 0 otherwise (exact)."""
    w = P.matched_sample_weights(A, "t", None, "nearest", pscore="p", ties=True)
    _nan_equal(w, [0, 5 / 6, 5 / 6, 4 / 3, 0, 1, 1, 1])
    # The same weights travel in psm(...).extra["sample_weight"] (used by specs._psm_fe).
    _nan_equal(_psm(A, "nearest", ties=True).extra["sample_weight"], w)


def test_result_object_fields():
    """EstimationResult: coef = att, se = att_se, normal p, 95% CI, no clusters or R²."""
    r = _psm(A, "nearest", ties=True)
    assert isinstance(r, EstimationResult)
    assert (r.coef, r.se) == (r.att, r.att_se)
    assert r.t == pytest.approx(r.att / r.att_se, rel=1e-15)
    assert r.p == pytest.approx(math.erfc(abs(r.t) / math.sqrt(2)), rel=1e-15)  # 2(1 - Φ(|t|))
    assert r.ci == pytest.approx(
        (r.att - 1.959963984540054 * r.att_se, r.att + 1.959963984540054 * r.att_se)
    )
    assert r.n_clusters is None and r.r2 is None and r.r2_within is None
    assert r.to_dict()["att"] == r.att


def test_dict_and_dataframe_inputs_agree():
    """The workflow passes dicts of arrays; users pass DataFrames: same numbers (exact)."""
    import pandas as pd

    a = _psm(A, "nearest", ties=True)
    b = P.psm(pd.DataFrame(A), "t", None, "y", "nearest", pscore="p", ties=True, balance=False)
    assert (a.att, a.att_se) == (b.att, b.att_se)


def test_missing_values_are_dropped_like_markout():
    """Rows with a missing outcome/score are outside the sample (psmatch2 marksample/markout)."""
    data = {k: np.append(v, [np.nan if k == "y" else 1.0]) for k, v in A.items()}
    data["p"][-1] = 0.5
    m = P.match(data, "t", None, "nearest", outcome="y", pscore="p", ties=True)
    assert not m.sample[-1] and math.isnan(m.support[-1])
    assert _psm(data, "nearest", ties=True).att == pytest.approx(64 / 9, abs=EXACT)


# ------------------------------------------------------------------------------------------
# pstest, hand-worked (data set A, ties, covariate x)
# ------------------------------------------------------------------------------------------


def test_pstest_hand_worked():
    """pstest x, both — by hand; tolerance 1e-10 (p values: scipy.stats.t, 1e-12)."""
    from scipy import stats

    m = _match(A, "nearest", ties=True)
    (row,), _ = P.pstest(A, ["x"], m, overall=False)
    # Unmatched: all treated x = 0,3,4,8 (row 4 off support included): mean 15/4, s² = 131/12;
    # all controls x = 1,2,4,5: mean 3, s² = 10/3. sd = sqrt((131/12 + 40/12)/2) = sqrt(7.125).
    sd = math.sqrt(7.125)
    assert row["mean_treated_unmatched"] == pytest.approx(3.75, abs=1e-10)
    assert row["mean_control_unmatched"] == pytest.approx(3.0, abs=1e-10)
    assert row["bias_unmatched"] == pytest.approx(100 * 0.75 / sd, abs=1e-10)
    # Matched: treated on support x = 3,4,8 -> 5; controls weighted by W = 5/6, 5/6, 4/3:
    # (5/6·2 + 5/6·4 + 4/3·5)/3 = 35/9.  The SAME unmatched sd scales the matched bias.
    assert row["mean_treated_matched"] == pytest.approx(5.0, abs=1e-10)
    assert row["mean_control_matched"] == pytest.approx(35 / 9, abs=1e-10)
    assert row["bias_matched"] == pytest.approx(100 * (10 / 9) / sd, abs=1e-10)
    # % reduction = -100(|b_M| - |b_U|)/|b_U| = -100(40/27 - 1).
    assert row["bias_reduction"] == pytest.approx(-100 * (40 / 27 - 1), abs=1e-10)
    # t before: pooled OLS t, s² = (32.75 + 10)/6 = 7.125, se = sqrt(7.125/2), df = 6.
    t_u = 0.75 / math.sqrt(7.125 * 0.5)
    assert row["t_unmatched"] == pytest.approx(t_u, abs=1e-10)
    assert row["p_unmatched"] == pytest.approx(2 * stats.t.sf(t_u, 6), abs=1e-12)
    # t after: regress x treated [iw=w]; W1 = W0 = 3, SS_T = 14, SS_C = Σw(x-35/9)² = 125/27,
    # df = W - 2 = 4, s² = (14 + 125/27)/4 = 503/108, Var(b) = s²(1/3 + 1/3) = 503/162.
    t_m = (10 / 9) / math.sqrt(503 / 162)
    assert row["t_matched"] == pytest.approx(t_m, abs=1e-10)
    assert row["p_matched"] == pytest.approx(2 * stats.t.sf(t_m, 4), abs=1e-12)
    # Variance ratios (x is not binary): U (131/12)/(10/3) = 131/40; M 7 / ((125/27)/2) = 378/125.
    assert row["var_ratio_unmatched"] == pytest.approx(131 / 40, abs=1e-10)
    assert row["var_ratio_matched"] == pytest.approx(378 / 125, abs=1e-10)


def test_pstest_binary_covariate_has_no_variance_ratio():
    m = _match(A, "nearest", ties=True)
    data = dict(A, d=np.array([0, 1, 1, 0, 1, 0, 1, 1.0]))
    (row,), summary = P.pstest(data, ["d"], m, overall=False)
    assert row["var_ratio_unmatched"] is None and row["var_ratio_matched"] is None
    assert summary["pct_var_outside_unmatched"] is None


def test_pstest_constant_covariate_does_not_crash():
    """A covariate without variance: bias, t and variance ratio are NaN and pstest's probit
    summary is None (Stata would drop the collinear covariate) — the estimate still returns."""
    data = dict(A, c=np.full(8, 5.0))
    r = P.psm(data, "t", ["c"], "y", "nearest", pscore="p", ties=True)
    (row,) = r.extra["balance"]
    assert math.isnan(row["bias_unmatched"]) and math.isnan(row["t_matched"])
    assert math.isnan(row["var_ratio_unmatched"])
    assert r.extra["balance_summary"]["B_unmatched"] is None
    assert r.att == pytest.approx(64 / 9, abs=EXACT)


def test_ate_hand_worked():
    """psmatch2 t, pscore(p) outcome(y) common ties ate — by hand (data set A); 1e-12."""
    r = _psm(A, "nearest", ties=True, ate=True)
    m = _match(A, "nearest", ties=True, ate=True)
    # common + ate: treated outside the control range [.25, .875] -> row 4 off; controls
    # outside the range of ALL treated [.125, .75] -> row 3 (.875) off, so it cannot be a match.
    _nan_equal(m.support, [1, 1, 1, 0, 0, 1, 1, 1])
    # ATT pass over controls rows 0-2: row 5 (.4375) -> rows 1,2 (.0625); row 6 (.6875) -> rows
    # 1,2 (.1875); row 7 (.75) -> rows 1,2 (.25; row 0 is .5 away). Each 1/2: W_1 = W_2 = 3/2.
    # ATT = mean(18,25,30) - 15 = 28/3.
    assert r.att == pytest.approx(28 / 3, abs=EXACT)
    # ATU pass: controls -> treated rows 5-7: row 0 (.25) -> row 5 (.1875 away), rows 1,2
    # (.5) -> row 5 (.0625). ATU = mean(18-10, 18-14, 18-16) = 14/3.
    assert r.extra["atu"] == pytest.approx(14 / 3, abs=EXACT)
    # ATE = ATT·N1/(N0+N1) + ATU·N0/(N0+N1) with N1 = N0 = 3 on support: (28/3 + 14/3)/2 = 7.
    assert r.extra["ate"] == pytest.approx(7, abs=EXACT)
    # psmatch2's _weight of a treated unit now holds its ATU weight (row 5: 3, rows 6,7: none),
    # but the regression weights stay ATT weights: 1 for treated on support, W_j for controls.
    _nan_equal(m.weight, [np.nan, 1.5, 1.5, np.nan, np.nan, 3, np.nan, np.nan])
    w = P.matched_sample_weights(A, "t", None, "nearest", pscore="p", ties=True, ate=True)
    _nan_equal(w, [0, 1.5, 1.5, 0, 0, 1, 1, 1])


# ------------------------------------------------------------------------------------------
# (b) Reference: binary-choice models against statsmodels (independent IRLS / BFGS code)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsw():
    """NSW experimental sample (Dehejia–Wahba, 445 rows), earnings in $1000 as in ldw_exper.dta."""
    import pandas as pd

    d = pd.read_csv(DATA / "nsw_dw.csv")
    for v in ("re74", "re75", "re78"):
        d[v] = d[v] / 1000
    d["u74"] = (d["re74"] == 0).astype(float)
    d["u75"] = (d["re75"] == 0).astype(float)
    return d.rename(columns={"treat": "t", "marr": "married"})


COV = ["age", "educ", "black", "hisp", "married", "re74", "re75", "u74", "u75"]


@pytest.mark.parametrize("model", ["logit", "probit"])
def test_binary_model_against_statsmodels(nsw, model):
    """Newton–Raphson MLE vs statsmodels Logit/Probit: coefficients and scores to 1e-8."""
    import statsmodels.api as sm

    X = sm.add_constant(nsw[COV].to_numpy(float), prepend=False)
    ref = (sm.Logit if model == "logit" else sm.Probit)(nsw["t"].to_numpy(float), X).fit(
        method="newton", tol=1e-14, maxiter=200, disp=0
    )
    fit = P.fit_binary(nsw["t"], nsw[COV], model)
    np.testing.assert_allclose(fit.params, ref.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fit.pr, ref.predict(X), rtol=0, atol=1e-8)
    assert fit.llf == pytest.approx(ref.llf, abs=1e-8)
    assert fit.llnull == pytest.approx(ref.llnull, abs=1e-8)
    ps = P.propensity_score(nsw, "t", COV, model)
    np.testing.assert_allclose(ps, ref.predict(X), rtol=0, atol=1e-8)


def test_weighted_probit_against_statsmodels_glm(nsw):
    """pstest's iweighted probit vs statsmodels GLM(Binomial, probit, var_weights): 1e-7."""
    import statsmodels.api as sm

    w = np.random.default_rng(3).uniform(0.2, 2.0, len(nsw))
    X = sm.add_constant(nsw[COV].to_numpy(float), prepend=False)
    ref = sm.GLM(
        nsw["t"].to_numpy(float),
        X,
        family=sm.families.Binomial(sm.families.links.Probit()),
        var_weights=w,
    ).fit(tol=1e-14, maxiter=200)
    fit = P.fit_binary(nsw["t"], nsw[COV], "probit", w)
    np.testing.assert_allclose(fit.params, ref.params, rtol=0, atol=1e-7)
    assert fit.llf == pytest.approx(ref.llf, abs=1e-6)


def test_collinear_covariates_raise(nsw):
    data = nsw.assign(age2=nsw["age"] * 2)
    with pytest.raises(P.MatchingError, match="collinear"):
        P.fit_binary(data["t"], data[["age", "age2"]], "logit")


# ------------------------------------------------------------------------------------------
# (b) Reference: a published psmatch2 / pstest log (tests/data/psm/README.md)
# ------------------------------------------------------------------------------------------
# Source: Stata output of the textbook example of Chen Qiang, 高级计量经济学及Stata应用
# (2nd ed., 2014), ch. "倾向得分匹配", on ldw_exper.dta (NSW, Dehejia–Wahba):
#   psmatch2 t age educ black hisp married re74 re75 u74 u75, ///
#       outcome(re78) n(1) ate ties logit common
#   psmatch2 ..., outcome(re78) radius cal(0.01) ate ties logit common
#   psmatch2 ..., outcome(re78) kernel ate ties logit common
#   pstest age educ black hisp married re74 re75 u74 u75, both
# Our data are the same 445 people from causaldata's nsw_mixtape (earnings in dollars, float32;
# /1000 here). ldw_exper.dta stores earnings in $1000 rounded differently, so earnings-based
# numbers agree to about 2e-6 (= $0.002) instead of the 9 printed digits; a different match
# would move the ATT by 1e-2 or more. Covariate-only numbers match at the printed precision.
EARN = 3e-6


def test_published_logit(nsw):
    """Logit coefficients of the log (7 printed digits); tolerance 3e-7 (earnings rounding)."""
    fit = P.fit_binary(nsw["t"], nsw[COV], "logit")
    published = [
        0.0142619,
        0.0499776,
        -0.347664,
        -0.928485,
        0.1760431,
        -0.0339278,
        0.01221,
        -0.1516037,
        -0.3719486,
        -0.4736308,
    ]
    np.testing.assert_allclose(fit.params, published, rtol=0, atol=3e-7)
    assert fit.llf == pytest.approx(-296.25026, abs=1e-5)
    assert round(fit.lr_chi2, 2) == 11.70


PUBLISHED = {  # method: (options, ATT row: treated, controls, diff, S.E.; ATU; ATE; controls off)
    "nearest": (
        {"ties": True},
        (6.40495818, 4.99436488, 1.4105933, 0.839875971),
        1.6293596,
        1.53668776,
        11,
    ),
    "radius": (
        {"caliper": 0.01},
        (6.40495818, 4.54598746, 1.85897071, 0.704721737),
        1.63335009,
        1.73004464,
        16,
    ),
    "kernel": ({}, (6.40495818, 4.58467178, 1.82028639, 0.685942087), 1.603352, 1.69524782, 11),
}


@pytest.mark.parametrize("method", list(PUBLISHED))
def test_published_psmatch2(nsw, method):
    """ATT, S.E., ATU, ATE and the support table of the log; tolerance 3e-6 ($1000 units)."""
    opts, (m1, m0, att, se), atu, ate, c_off = PUBLISHED[method]
    r = P.psm(nsw, "t", COV, "re78", method, ate=True, balance=False, **opts)
    e = r.extra
    # Unmatched row (same in all three runs): 6.34914538 4.55480228 1.79434311 .632853552
    assert e["mean_treated_unmatched"] == pytest.approx(6.34914538, abs=EARN)
    assert e["mean_control_unmatched"] == pytest.approx(4.55480228, abs=EARN)
    assert e["unmatched_diff"] == pytest.approx(1.79434311, abs=EARN)
    assert e["unmatched_se"] == pytest.approx(0.632853552, abs=EARN)
    assert e["mean_treated"] == pytest.approx(m1, abs=EARN)
    assert e["mean_matched_controls"] == pytest.approx(m0, abs=EARN)
    assert r.att == pytest.approx(att, abs=EARN)
    assert r.att_se == pytest.approx(se, abs=EARN)
    assert e["atu"] == pytest.approx(atu, abs=EARN)
    assert e["ate"] == pytest.approx(ate, abs=EARN)
    # psmatch2: Common support table (exact): treated 2 off / 183 on; controls c_off / 260 - c_off.
    assert (e["n_treated"], e["n_treated_on_support"]) == (185, 183)
    assert e["n_off_support"] - 2 == c_off and r.nobs == 445 - 2 - c_off


def test_published_ate_option_changes_att(nsw):
    """Without `ate`, `common` keeps all controls: the NN ATT differs from the log's 1.4106
    (controls below the lowest treated score become available) — why `ate=` exists."""
    r = P.psm(nsw, "t", COV, "re78", "nearest", ties=True, balance=False)
    assert abs(r.att - 1.4105933) > 0.01


# pstest age educ ..., both (after the nearest-neighbour run). Printed: means %7.0g (5
# significant digits), %bias and %reduct 1 decimal, t 2 decimals, p 3 decimals, V 2 decimals.
PSTEST = {  # variable: (U: mT, mC, bias, t, p, V), (M: mT, mC, bias, reduct, t, p, V)
    "age": (
        (25.816, 25.054, 10.7, 1.12, 0.265, 1.03),
        (25.781, 25.383, 5.6, 47.7, 0.52, 0.604, 0.91),
    ),
    "educ": (
        (10.346, 10.088, 14.1, 1.50, 0.135, 1.55),
        (10.322, 10.415, -5.1, 63.9, -0.49, 0.627, 1.52),
    ),
    "black": (
        (0.84324, 0.82692, 4.4, 0.45, 0.649, None),
        (0.85246, 0.86339, -2.9, 33.0, -0.30, 0.765, None),
    ),
    "hisp": (
        (0.05946, 0.10769, -17.5, -1.78, 0.076, None),
        (0.06011, 0.04372, 5.9, 66.0, 0.71, 0.481, None),
    ),
    "married": (
        (0.18919, 0.15385, 9.4, 0.98, 0.327, None),
        (0.18579, 0.19126, -1.4, 84.5, -0.13, 0.894, None),
    ),
    "re74": (
        (2.0956, 2.107, -0.2, -0.02, 0.982, 0.74),
        (2.0672, 1.9222, 2.7, -1166.6, 0.27, 0.784, 0.88),
    ),
    "re75": (
        (1.5321, 1.2669, 8.4, 0.87, 0.382, 1.08),
        (1.5299, 1.6446, -3.6, 56.7, -0.32, 0.748, 0.82),
    ),
    "u74": (
        (0.70811, 0.75, -9.4, -0.98, 0.326, None),
        (0.71038, 0.75956, -11.1, -17.4, -1.06, 0.288, None),
    ),
    "u75": (
        (0.6, 0.68462, -17.7, -1.85, 0.065, None),
        (0.60656, 0.63388, -5.7, 67.7, -0.54, 0.591, None),
    ),
}


def _close_printed(value, printed, decimals):
    """value rounds to the printed number (half a unit of the last digit, + 1e-9 slack)."""
    return value is not None and abs(value - printed) <= 0.5 * 10**-decimals + 1e-9


def _decimals(printed):
    s = f"{printed:.10g}"
    return len(s.split(".")[1]) if "." in s else 0


def test_published_pstest(nsw):
    """Every number of the log's pstest table, at the printed precision (re74's -1166.6 %
    reduction: ±0.2, it divides by a bias of -0.2 %)."""
    m = P.match(nsw, "t", COV, "nearest", outcome="re78", ties=True, ate=True)
    rows, s = P.pstest(nsw, COV, m)
    for row in rows:
        (mt, mc, b, t, p, v), (mtm, mcm, bm, red, tm, pm, vm) = PSTEST[row["variable"]]
        checks = [
            ("mean_treated_unmatched", mt),
            ("mean_control_unmatched", mc),
            ("bias_unmatched", b),
            ("t_unmatched", t),
            ("p_unmatched", p),
            ("mean_treated_matched", mtm),
            ("mean_control_matched", mcm),
            ("bias_matched", bm),
            ("t_matched", tm),
            ("p_matched", pm),
        ]
        for key, printed in checks:
            assert _close_printed(row[key], printed, _decimals(printed)), (
                row["variable"],
                key,
                row[key],
                printed,
            )
        if row["variable"] == "re74":
            assert row["bias_reduction"] == pytest.approx(red, abs=0.2)
        else:
            assert _close_printed(row["bias_reduction"], red, 1), (
                row["variable"],
                row["bias_reduction"],
                red,
            )
        for key, printed in (("var_ratio_unmatched", v), ("var_ratio_matched", vm)):
            if printed is None:
                assert row[key] is None
            else:
                assert _close_printed(row[key], printed, 2), (
                    row["variable"],
                    key,
                    row[key],
                    printed,
                )
    # Summary rows: Ps R2, LR chi2, p>chi2, MeanBias, MedBias, B, R, %Var
    for key, (u, mm) in {
        "pseudo_r2": ((0.019, 3), (0.008, 3)),
        "lr_chi2": ((11.75, 2), (3.87, 2)),
        "p_chi2": ((0.227, 3), (0.920, 3)),
        "mean_bias": ((10.2, 1), (4.9, 1)),
        "median_bias": ((9.4, 1), (5.1, 1)),
        "B": ((33.1, 1), (20.6, 1)),
        "R": ((0.82, 2), (1.09, 2)),
        "pct_var_outside": ((50, 0), (25, 0)),
    }.items():
        assert _close_printed(s[f"{key}_unmatched"], *u), (key, s[f"{key}_unmatched"], u)
        assert _close_printed(s[f"{key}_matched"], *mm), (key, s[f"{key}_matched"], mm)
    # "* if variance ratio outside [0.75; 1.34] for U and [0.75; 1.34] for M"
    assert [round(b, 2) for b in s["var_ratio_bounds_unmatched"]] == [0.75, 1.34]
    assert [round(b, 2) for b in s["var_ratio_bounds_matched"]] == [0.75, 1.34]


# ------------------------------------------------------------------------------------------
# Treatment definition
# ------------------------------------------------------------------------------------------


def test_treatment_above_yearly_median():
    """Strictly above the median of the year (even count: mean of the middle two); exact."""
    import pandas as pd

    df = pd.DataFrame(
        {"year": [1, 1, 1, 1, 2, 2, 2, 2], "v": [1.0, 2.0, 3.0, 4.0, 5.0, 5.0, 9.0, np.nan]}
    )
    # Year 1: median 2.5 -> 0,0,1,1. Year 2 (5,5,9; the NaN is ignored): median 5 -> 5 is not
    # strictly above -> 0,0,1; the missing value stays missing (Stata's `gen D = v > med` would
    # make it 1).
    out = P.treatment_above_yearly_median(df, "v", "year")
    _nan_equal(out, [0, 0, 1, 1, 0, 0, 1, np.nan])
    _nan_equal(P.treatment_indicator(df["v"], rule="above_median"), [0, 0, 0, 0, 1, 1, 1, np.nan])
    with pytest.raises(ValueError, match="rule"):
        P.treatment_indicator(df["v"], df["year"], "above_mean")


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"method": "mahalanobis"}, ValueError, "method must be one of"),
        ({"method": "kernel", "caliper": 0.05}, ValueError, "caliper has no effect with kernel"),
        ({"method": "nearest", "caliper": -1.0}, ValueError, "caliper must be positive"),
        ({"method": "kernel", "bandwidth": 0.0}, ValueError, "bandwidth must be positive"),
        ({"method": "nearest", "model": "cloglog"}, ValueError, "model must be one of"),
    ],
)
def test_bad_options(kwargs, exc, message):
    method = kwargs.pop("method")
    with pytest.raises(exc, match=message):
        P.psm(A, "t", None, "y", method, pscore="p", **kwargs)


def test_bad_data():
    bad = dict(A, t=np.array([0, 0, 0, 0, 1, 1, 1, 2.0]))
    with pytest.raises(
        P.MatchingError, match=r"treatment 't' must be 0 or 1; row 7 \(0-based\) has 2$"
    ):
        _psm(bad, "nearest")
    with pytest.raises(P.MatchingError, match="no control observations"):
        _psm(dict(A, t=np.ones(8)), "nearest")
    with pytest.raises(UnknownVariableError, match="'nope' is not in the data"):
        P.psm(A, "nope", None, "y", "nearest", pscore="p")


def test_import_is_light():
    """Importing the module must not import pandas, scipy or statsmodels (fast job start)."""
    code = (
        "import sys, nqp_resilience.estimation.matching; "
        "print(sorted(m for m in ('pandas', 'scipy', 'statsmodels') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------
# Scores on a grid of multiples of 1/64 make ties (identical and mirrored) frequent and exact.


@st.composite
def samples(draw, min_size=4, max_size=40):
    n = draw(st.integers(min_size, max_size))
    grid = st.integers(1, 63).map(lambda k: k / 64)
    p = np.array(draw(st.lists(grid, min_size=n, max_size=n)))
    t = np.array(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)))
    t[0], t[1] = 0.0, 1.0
    y = np.array(draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n)), dtype=float)
    return {"t": t, "p": p, "y": y}


def _brute_force_sets(data):
    """All controls at the minimum |p_i - p_j| for each treated row (no common support)."""
    c = np.flatnonzero(data["t"] == 0)
    out = {}
    for i in np.flatnonzero(data["t"] == 1):
        d = np.abs(data["p"][i] - data["p"][c])
        out[i] = set(c[d == d.min()])
    return out


@settings(max_examples=150, deadline=None)
@given(samples())
def test_nearest_walk_equals_brute_force(data):
    """psmatch2's forward walk finds exactly the set of nearest controls (ties=True), and
    without ties one of them; weights of controls sum to the number of treated."""
    truth = _brute_force_sets(data)
    for ties in (True, False):
        m = P.match(
            data, "t", None, "nearest", outcome="y", pscore="p", ties=ties, common_support=False
        )
        for i, best in truth.items():
            assert int(m.n1[i]) in best
            assert m.nn[i] == (len(best) if ties else 1)
        w = np.nan_to_num(m.weight[data["t"] == 0])
        assert w.sum() == pytest.approx(len(truth), abs=1e-9)
        if ties:
            expected = sum(np.mean(data["y"][list(b)]) for b in truth.values()) / len(truth)
            att = np.mean(data["y"][list(truth)]) - expected
            r = P.psm(
                data,
                "t",
                None,
                "y",
                "nearest",
                pscore="p",
                ties=True,
                common_support=False,
                balance=False,
            )
            assert r.att == pytest.approx(att, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    samples(), st.sampled_from(["nearest", "kernel", "radius"]), st.randoms(use_true_random=False)
)
def test_weights_sum_to_treated_on_support_and_order_invariance(data, method, rnd):
    """Σ_j W_j = N1 (nearest, kernel, radius); with ties (and for the smoothers) the ATT does
    not depend on the row order. Tolerance 1e-9."""
    kw = (
        {"ties": True}
        if method == "nearest"
        else ({"bandwidth": 0.1} if method == "kernel" else {"caliper": 0.05})
    )
    try:
        r = P.psm(data, "t", None, "y", method, pscore="p", balance=False, **kw)
    except P.MatchingError:
        return  # no treated on support: nothing to check
    n1 = r.extra["n_treated_on_support"]
    w = r.extra["sample_weight"]
    assert w[data["t"] == 0].sum() == pytest.approx(n1, abs=1e-9)
    assert (w[data["t"] == 1] == 1).sum() == n1
    perm = np.array(rnd.sample(range(len(data["t"])), len(data["t"])))
    r2 = P.psm(
        {k: v[perm] for k, v in data.items()},
        "t",
        None,
        "y",
        method,
        pscore="p",
        balance=False,
        **kw,
    )
    assert r2.att == pytest.approx(r.att, abs=1e-9)
    assert r2.att_se == pytest.approx(r.att_se, abs=1e-9, nan_ok=True)
    np.testing.assert_allclose(r2.extra["sample_weight"], w[perm], atol=1e-9)


# ------------------------------------------------------------------------------------------
# Perfect prediction in the propensity-score logit (Stata logit's rules)
# ------------------------------------------------------------------------------------------


def _separation_data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    age = rng.normal(30, 8, n)
    educ = rng.normal(12, 2, n)
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-(0.05 * (age - 30) + 0.2 * (educ - 12))))).astype(
        float
    )
    y = 1.0 * t + 0.1 * age + rng.normal(size=n)
    return {"t": t, "age": age, "educ": educ, "y": y}


def test_binary_covariate_predicting_failure_is_dropped_with_stata_note():
    """d = 1 only among controls: Stata logit notes "d != 0 predicts failure perfectly; d dropped
    and N obs not used" and fits the rest; psmatch2's predict then scores every unit with the
    model without d."""
    data = _separation_data()
    d = np.zeros(len(data["t"]))
    controls = np.flatnonzero(data["t"] == 0)[:25]
    d[controls] = 1.0
    data["d"] = d
    res = P.psm(data, "t", ["age", "educ", "d"], "y", "nearest")
    assert res.extra["notes"] == [
        "d != 0 predicts failure perfectly; d dropped and 25 obs not used"
    ]
    keep = d == 0
    ref = P.fit_binary(data["t"][keep], np.column_stack([data["age"], data["educ"]])[keep], "logit")
    xb = ref.params[0] * data["age"] + ref.params[1] * data["educ"] + ref.params[2]
    m = P.match(data, "t", ["age", "educ", "d"], "nearest")
    np.testing.assert_allclose(m.pscore, 1 / (1 + np.exp(-xb)), rtol=1e-12)
    assert m.notes == res.extra["notes"]


def test_continuous_covariate_separating_completely_is_an_error_naming_it():
    data = _separation_data()
    data["score"] = np.where(data["t"] == 1, 5.0, 0.0) + np.random.default_rng(1).uniform(
        0, 1, len(data["t"])
    )
    with pytest.raises(
        P.MatchingError, match=r"outcome = score > .* predicts data perfectly.*'score'"
    ) as err:
        P.psm(data, "t", ["age", "score"], "y", "nearest")
    assert isinstance(err.value, ProjectError) and "score" in err.value.hint
    assert "collinear" not in str(err.value)


def test_quasi_complete_separation_keeps_the_overlap_subsample():
    """Treated have x ≥ 2, controls x ≤ 2: Stata keeps the x == 2 subsample and drops x."""
    data = _separation_data(seed=3)
    t = data["t"]
    rng = np.random.default_rng(4)
    x = np.where(t == 1, 2.0 + rng.integers(0, 3, len(t)), 2.0 - rng.integers(0, 3, len(t)))
    data["x"] = x
    m = P.match(data, "t", ["age", "x"], "nearest")
    n_out = int((x != 2).sum())
    assert m.notes == [
        f"outcome = x > 2 predicts data perfectly except for x == 2 subsample; x dropped and "
        f"{n_out} obs not used"
    ]
    assert np.all(np.isfinite(m.pscore))


def test_covariates_in_large_units_are_not_collinear():
    data = _separation_data()
    scaled = dict(data, age=1e9 * data["age"], educ=1e-6 * data["educ"])
    a = P.psm(data, "t", ["age", "educ"], "y", "kernel")
    b = P.psm(scaled, "t", ["age", "educ"], "y", "kernel")
    assert b.att == pytest.approx(a.att, rel=1e-6)


@pytest.mark.parametrize(
    "extra, omitted",
    [
        (lambda d: 2.0 * d["age"] + 3.0, "age2"),  # affine in an earlier covariate
        (lambda d: d["u74"] + d["u75"], "age2"),  # sum of two earlier dummies
        (lambda d: np.full(len(d["age"]), 7.0), "age2"),  # constant: collinear with the intercept
    ],
)
def test_collinear_covariate_is_omitted_with_a_note_as_stata_logit_does(nsw, extra, omitted):
    """Stata's logit omits a covariate that is a linear combination of the constant and the ones
    before it ("note: age2 omitted because of collinearity"); the scores, and so the ATT, equal
    those of the model without it."""
    data = {c: nsw[c].to_numpy(dtype=float) for c in nsw.columns}
    data["age2"] = np.asarray(extra(data), dtype=float)
    with_it = P.psm(data, "t", COV + ["age2"], "re78", "kernel")
    without = P.psm(data, "t", COV, "re78", "kernel")
    assert with_it.att == pytest.approx(without.att, rel=1e-9)
    assert f"{omitted} omitted because of collinearity" in with_it.extra["notes"]
    assert not any("collinearity" in n for n in without.extra["notes"])


@pytest.mark.parametrize(
    ("method", "options", "expected"),
    [
        ("nearest", {}, 0.0),
        ("radius", {"caliper": 0.05}, None),
        ("kernel", {"bandwidth": 0.06}, None),
        ("kernel", {"bandwidth": 0.06, "kernel": "normal"}, None),
    ],
)
def test_matched_outcome_without_an_outcome(method, options, expected):
    """Without an outcome, psmatch2's nearest-neighbour loop leaves a matched outcome of 0 on
    the matched units; radius and kernel matching leave it missing (as documented)."""
    rng = np.random.default_rng(0)
    ps = rng.uniform(0.1, 0.9, 200)
    t = (rng.uniform(size=200) < ps).astype(float)
    m = P.match({"t": t}, "t", pscore=ps, method=method, **options)
    matched = m.matched_outcome[(t == 1) & (m.support == 1)]
    assert matched.size > 50
    if expected is None:
        assert np.isnan(matched).all()
    else:
        assert (matched == expected).all()
    assert np.isnan(m.matched_outcome[m.support == 0]).all()
