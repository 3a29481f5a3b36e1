"""The spec option ``engine``: linearmodels and statsmodels reproduce the numpy engine.

Fast tests on small simulated panels for each engine, the option's errors, and (slow) every
``ols_fe``, ``iv_fe`` and ``psm_fe`` spec of config.yaml on the default analysis panel under
both engines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation.core import absorbed_dof
from nqp_resilience.estimation.engines import check_engine, statsmodels_binary
from nqp_resilience.estimation.matching import fit_binary
from nqp_resilience.estimation.specs import estimate, validate_specs

ROOT = Path(__file__).resolve().parents[1]
CONTROLS = ["c1", "c2"]
OTHER = {"ols_fe": "linearmodels", "iv_fe": "linearmodels", "psm_fe": "statsmodels"}
COEF_TOL, SE_TOL = 1e-8, 1e-6


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def panel(n_city: int = 40, n_year: int = 8, seed: int = 1) -> dict:
    """A small unbalanced city-year panel with an instrument, two controls and one singleton."""
    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(n_city), n_year) + 110000
    year = np.tile(np.arange(2010, 2010 + n_year), n_city)
    ce = rng.normal(size=n_city)[city - 110000]
    z = rng.normal(size=city.size)
    c1, c2 = rng.normal(size=city.size), rng.normal(size=city.size)
    x = 0.6 * z + 0.5 * ce + 0.3 * c1 + rng.normal(size=city.size)
    y = 0.3 * x + 0.2 * c1 - 0.1 * c2 + ce + 0.05 * (year - 2010) * ce + rng.normal(size=city.size)
    keep = np.ones(city.size, dtype=bool)
    keep[rng.choice(city.size, 25, replace=False)] = False  # unbalanced
    keep[(city == 110000) & (year > 2010)] = False  # city 110000 is a singleton
    d = {"city_code": city, "year": year, "Resil": y, "Nqp": x, "Relief": z, "c1": c1, "c2": c2}
    return {k: v[keep] for k, v in d.items()}


def spec(estimator: str, **kw) -> dict:
    s = {
        "id": "s",
        "table": 3,
        "estimator": estimator,
        "dependent": "Resil",
        "regressor": "Nqp",
        "controls": True,
    }
    if estimator == "iv_fe":
        s["instrument"] = "Relief"
    if estimator == "psm_fe":
        s["psm"] = {"method": "kernel", "bandwidth": 0.06}
    return {**s, **kw}


def assert_agree(a: dict, b: dict, *, iv: bool = False) -> None:
    """b (another engine) reproduces a (numpy): coefficients, SEs, N, clusters."""
    assert b["nobs"] == a["nobs"] and b["n_clusters"] == a["n_clusters"]
    assert _rel(b["coef"], a["coef"]) < COEF_TOL
    assert _rel(b["se"], a["se"]) < SE_TOL
    common = set(a["params"]) & set(b["params"])
    # the trend intercepts absorb the constant: linearmodels' record has no _cons then
    assert set(a["params"]) - common <= {"_cons"} and set(b["params"]) == common
    for k in common:
        assert _rel(b["params"][k], a["params"][k]) < COEF_TOL, k
        assert _rel(b["bse"][k], a["bse"][k]) < SE_TOL, k
    for k in ("p", "r2", "r2_within", "df_resid"):
        assert _rel(b[k], a[k]) < SE_TOL, k
    if iv:
        ea, eb = a["extra"], b["extra"]
        assert _rel(eb["first_stage_coef"], ea["first_stage_coef"]) < COEF_TOL
        for k in (
            "first_stage_se",
            "first_stage_F",
            "kp_lm",
            "kp_f",
            "kp_wald_chi2",
            "cd_f",
            "partial_r2",
        ):
            assert _rel(eb[k], ea[k]) < SE_TOL, k
        assert eb["df_k_first_stage"] == ea["df_k_first_stage"]


# --------------------------------------------------------------------------------------------
# Fast: small simulated panels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{}, {"trends": "city"}, {"cluster": "none"}, {"fixed_effects": ["city"]}, {"interact": "c2"}],
)
def test_linearmodels_ols_matches_numpy(options):
    data = panel()
    a = estimate(spec("ols_fe", **options), dict(data), CONTROLS)
    b = estimate(spec("ols_fe", engine="linearmodels", **options), dict(data), CONTROLS)
    assert a["nobs"] == len(data["year"]) - 1  # the singleton is dropped by both
    assert_agree(a, b)
    assert "engine" not in a and b["engine"] == "linearmodels" and b["engine_version"]


@pytest.mark.parametrize("options", [{}, {"cluster": "none"}, {"fixed_effects": ["year"]}])
def test_linearmodels_iv_matches_numpy(options):
    data = panel()
    a = estimate(spec("iv_fe", **options), dict(data), CONTROLS)
    b = estimate(spec("iv_fe", engine="linearmodels", **options), dict(data), CONTROLS)
    assert_agree(a, b, iv=True)
    assert b["extra"]["ar_p"] == a["extra"]["ar_p"]  # taken from the numpy engine, and listed
    assert "ar_p" in b["extra"]["engine_sources"]["numpy"]


def test_singletons_keep_agrees():
    data = panel()
    a = estimate(spec("ols_fe"), dict(data), CONTROLS, singletons="keep")
    b = estimate(spec("ols_fe", engine="linearmodels"), dict(data), CONTROLS, singletons="keep")
    assert a["nobs"] == len(data["year"])
    assert_agree(a, b)


def test_statsmodels_logit_matches_newton():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3)) * [1.0, 10.0, 0.1]
    t = (X @ [0.5, 0.05, 4.0] + rng.logistic(size=400) > 0).astype(float)
    for model in ("logit", "probit"):
        a, b = fit_binary(t, X, model), statsmodels_binary(t, X, model)
        np.testing.assert_allclose(b.params, a.params, rtol=1e-9)
        np.testing.assert_allclose(b.pr, a.pr, rtol=1e-9)
        assert b.llf == pytest.approx(a.llf, rel=1e-12)


def test_statsmodels_psm_matches_numpy():
    data = panel(n_city=60)
    a = estimate(spec("psm_fe"), dict(data), CONTROLS)
    b = estimate(spec("psm_fe", engine="statsmodels"), dict(data), CONTROLS)
    assert_agree(a, b)
    assert b["extra"]["att"] == pytest.approx(a["extra"]["att"], rel=COEF_TOL)
    assert b["extra"]["matched_n"] == a["extra"]["matched_n"]
    assert b["engine"] == "statsmodels"


def test_absorbed_dof_counts_like_reghdfe():
    city = np.repeat(np.arange(5), 4)
    year = np.tile(np.arange(4), 5)
    sets = [(city, 5, True), (year, 4, True)]
    assert absorbed_dof(sets, clusters=city) == 4  # city nested in the clusters: T
    assert absorbed_dof(sets, clusters=None) == 5 + 4 - 1  # one mobility group
    assert absorbed_dof([], clusters=city) == 1  # the constant
    assert absorbed_dof([(city, 5, True)], clusters=city) == 1


# --------------------------------------------------------------------------------------------
# Errors and import cost
# --------------------------------------------------------------------------------------------


def test_unknown_engine_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown engine 'stata'") as err:
        estimate(spec("ols_fe", engine="stata"), panel(), CONTROLS)
    assert "linearmodels" in err.value.hint


@pytest.mark.parametrize(
    "estimator,engine",
    [("ols_fe", "statsmodels"), ("psm_fe", "linearmodels"), ("iv_fe", "statsmodels")],
)
def test_engine_not_available_for_estimator(estimator, engine):
    with pytest.raises(ConfigError, match=f"not available for estimator {estimator}"):
        check_engine(spec(estimator, engine=engine))
    with pytest.raises(ConfigError, match=r"specs\[1\]\.engine"):
        validate_specs(
            [spec("ols_fe", id="a"), spec(estimator, id="b", engine=engine)],
            CONTROLS,
            known=[*panel(), "Relief"],
        )


def test_describe_has_no_other_engine():
    with pytest.raises(ConfigError, match="not available for estimator describe"):
        check_engine({"id": "d", "estimator": "describe", "engine": "linearmodels"})


def test_schema_lists_the_engines():
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    prop = schema["properties"]["specs"]["items"]["properties"]["engine"]
    assert prop["enum"] == ["numpy", "linearmodels", "statsmodels"] and "default" not in prop


def test_default_path_imports_neither_library():
    code = (
        "import sys; import nqp_resilience.estimation.specs as s; "
        "print([m for m in ('linearmodels', 'statsmodels') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Slow: every spec of config.yaml on the default analysis panel
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_spec_agrees_on_default_panel(completed_workflow):
    import pandas as pd

    cfg = yaml.safe_load((completed_workflow / "config.yaml").read_text())
    frame = pd.read_parquet(completed_workflow / "results/panel/analysis.parquet")
    data = {c: frame[c].to_numpy() for c in frame.columns}
    singletons = cfg["estimation"]["singletons"]
    ran = []
    for s in cfg["specs"]:
        if s["estimator"] not in OTHER:
            continue
        a = estimate(dict(s), dict(data), cfg["control_variables"], singletons=singletons)
        b = estimate(
            {**s, "engine": OTHER[s["estimator"]]},
            dict(data),
            cfg["control_variables"],
            singletons=singletons,
        )
        assert_agree(a, b, iv=s["estimator"] == "iv_fe")
        ran.append(s["id"])
    assert len(ran) == sum(s["estimator"] in OTHER for s in cfg["specs"]) >= 18
