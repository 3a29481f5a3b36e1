"""The specification registry (``nqp_resilience.estimation.specs``): validation of the specs,
the sample filters, and which columns and controls a spec uses."""

from __future__ import annotations

import numpy as np
import pytest

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation.specs import (
    ANALYSIS_VARIABLES,
    apply_sample,
    spec_columns,
    spec_controls,
    validate_specs,
)

CONTROLS = ["GDP", "GOV", "IND"]


def _ols(sid="s1", **fields):
    return {
        "id": sid,
        "table": 3,
        "estimator": "ols_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        **fields,
    }


# --------------------------------------------------------------------------- spec_controls


@pytest.mark.parametrize(
    ("controls", "expected"),
    [(True, CONTROLS), (False, []), (None, []), (["TEC", "GDP"], ["TEC", "GDP"])],
)
def test_spec_controls(controls, expected):
    assert spec_controls({"controls": controls}, CONTROLS) == expected


def test_spec_controls_default_is_none_and_result_is_a_copy():
    assert spec_controls({}, CONTROLS) == []
    got = spec_controls({"controls": True}, CONTROLS)
    got.append("X")
    assert CONTROLS == ["GDP", "GOV", "IND"]


# --------------------------------------------------------------------------- spec_columns


def test_spec_columns_ols_with_controls_interaction_and_sample():
    spec = _ols(
        controls=True, interact="Asset", sample=[{"column": "municipality", "op": "==", "value": 0}]
    )
    assert spec_columns(spec, CONTROLS) == [
        "city_code",
        "year",
        "Resil",
        "Nqp",
        "GDP",
        "GOV",
        "IND",
        "Asset",
        "municipality",
    ]


def test_spec_columns_iv_with_one_or_several_instruments():
    iv = _ols(estimator="iv_fe", instrument="Relief", controls=["GDP"])
    assert spec_columns(iv, CONTROLS) == ["city_code", "year", "Resil", "Nqp", "GDP", "Relief"]
    iv2 = dict(iv, instrument=["Relief", "Internet"])
    assert spec_columns(iv2, CONTROLS)[-2:] == ["Relief", "Internet"]


def test_spec_columns_psm_adds_the_treatment_variable_once():
    psm = _ols(estimator="psm_fe", psm={"method": "nearest"}, controls=False)
    # the default treatment variable Nqp is already the regressor: listed once
    assert spec_columns(psm, CONTROLS) == ["city_code", "year", "Resil", "Nqp"]
    other = dict(psm, psm={"method": "nearest", "treatment_variable": "Nqp1"})
    assert spec_columns(other, CONTROLS) == ["city_code", "year", "Resil", "Nqp", "Nqp1"]


def test_spec_columns_describe_is_its_variables():
    spec = {"id": "d", "table": 2, "estimator": "describe", "variables": ["Resil", "Nqp"]}
    assert spec_columns(spec, CONTROLS) == ["Resil", "Nqp"]


# --------------------------------------------------------------------------- validate_specs


def test_validate_specs_returns_specs_by_id():
    specs = [
        _ols("a"),
        _ols("b", controls=True),
        {"id": "d", "table": 2, "estimator": "describe", "variables": ["Resil"]},
    ]
    by_id = validate_specs(specs, CONTROLS)
    assert list(by_id) == ["a", "b", "d"]
    assert by_id["b"] is specs[1]


def test_the_shipped_registry_is_valid():
    from nqp_resilience.data.io import read_yaml

    from conftest import ROOT

    config = read_yaml(ROOT / "config.yaml")
    by_id = validate_specs(config["specs"], config["control_variables"])
    assert "baseline" in by_id and len(by_id) == len(config["specs"])


def test_duplicate_id():
    with pytest.raises(ConfigError) as info:
        validate_specs([_ols("a"), _ols("a")], CONTROLS)
    assert info.value.key == "specs[1].id"
    assert "duplicate spec id 'a'" in str(info.value)


@pytest.mark.parametrize(
    ("estimator", "missing"),
    [
        ("ols_fe", "regressor"),
        ("iv_fe", "instrument"),
        ("psm_fe", "psm"),
        ("describe", "variables"),
    ],
)
def test_missing_field_an_estimator_needs(estimator, missing):
    spec = {
        "id": "x",
        "table": 3,
        "estimator": estimator,
        "dependent": "Resil",
        "regressor": "Nqp",
        "instrument": "Relief",
        "psm": {"method": "nearest"},
        "variables": ["Resil"],
    }
    del spec[missing]
    with pytest.raises(ConfigError) as info:
        validate_specs([_ols("ok"), spec], CONTROLS)
    assert info.value.key == "specs[1] (x)"
    assert f"estimator {estimator} needs '{missing}'" in str(info.value)


@pytest.mark.parametrize(
    ("fields", "key", "closest"),
    [
        ({"dependent": "resil"}, "specs[0].dependent", "Resil"),
        ({"regressor": "Nqpp"}, "specs[0].regressor", "Nqp"),
        ({"controls": ["GDP", "GOVV"]}, "specs[0].controls[1]", "GOV"),
        ({"interact": "Aset"}, "specs[0].interact", "Asset"),
        ({"estimator": "iv_fe", "instrument": "Releif"}, "specs[0].instrument", "Relief"),
        (
            {"estimator": "iv_fe", "instrument": ["Relief", "Internt"]},
            "specs[0].instrument[1]",
            "Internet",
        ),
        (
            {"sample": [{"column": "municipalty", "op": "==", "value": 0}]},
            "specs[0].sample[0].column",
            "municipality",
        ),
        (
            {"estimator": "psm_fe", "psm": {"method": "nearest", "treatment_variable": "nqp1"}},
            "specs[0].psm.treatment_variable",
            "Nqp1",
        ),
    ],
)
def test_unknown_variable_is_named_at_its_field_with_the_closest_name(fields, key, closest):
    with pytest.raises(ConfigError) as info:
        validate_specs([_ols("s1", **fields)], CONTROLS)
    assert info.value.key == key
    assert "in spec 's1'" in str(info.value)
    assert f"did you mean '{closest}'?" in str(info.value)


def test_unknown_describe_variable():
    spec = {"id": "d", "table": 2, "estimator": "describe", "variables": ["Resil", "TRAD"]}
    with pytest.raises(ConfigError) as info:
        validate_specs([spec], CONTROLS)
    assert info.value.key == "specs[0].variables[1]"
    assert "did you mean 'TRADE'?" in str(info.value)


def test_unknown_default_control_is_reported_before_the_specs():
    with pytest.raises(ConfigError) as info:
        validate_specs([_ols("a", dependent="nonsense")], ["GDP", "FINN"])
    assert info.value.key == "control_variables[1]"
    assert "default control set" in str(info.value)


def test_a_variable_without_any_close_name_gets_no_guess():
    with pytest.raises(ConfigError) as info:
        validate_specs([_ols("a", regressor="zzzzzzzz")], CONTROLS)
    assert "did you mean" not in str(info.value)
    assert "analysis_codebook.md" in str(info.value)


def test_known_variables_can_be_extended():
    validate_specs([_ols("a", regressor="NewVar")], CONTROLS, known=(*ANALYSIS_VARIABLES, "NewVar"))


def test_city_trends_are_refused_for_iv():
    spec = _ols("iv", estimator="iv_fe", instrument="Relief", trends="city")
    with pytest.raises(ConfigError, match="city trends are not implemented for iv_fe"):
        validate_specs([spec], CONTROLS)


# --------------------------------------------------------------------------- apply_sample

DATA = {
    "city_code": np.array([110000, 120000, 130100, 130200, 310000, 320100]),
    "municipality": np.array([1, 1, 0, 0, 1, 0]),
    "Nqp": np.array([0.1, 0.5, 0.2, np.nan, 0.3, 0.4]),
    "region": np.array(["east", "east", "east", "east", "east", "central"], dtype=object),
}


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"column": "municipality", "op": "==", "value": 0}, [0, 0, 1, 1, 0, 1]),
        ({"column": "municipality", "op": "!=", "value": 0}, [1, 1, 0, 0, 1, 0]),
        # nan fails every comparison (the row leaves the sample), except != (it stays)
        ({"column": "Nqp", "op": "<", "value": 0.3}, [1, 0, 1, 0, 0, 0]),
        ({"column": "Nqp", "op": "<=", "value": 0.3}, [1, 0, 1, 0, 1, 0]),
        ({"column": "Nqp", "op": ">", "value": 0.3}, [0, 1, 0, 0, 0, 1]),
        ({"column": "Nqp", "op": ">=", "value": 0.3}, [0, 1, 0, 0, 1, 1]),
        ({"column": "Nqp", "op": "!=", "value": 0.3}, [1, 1, 1, 1, 0, 1]),
        (
            {"column": "city_code", "op": "in", "value": [110000, 310000, 999999]},
            [1, 0, 0, 0, 1, 0],
        ),
        ({"column": "region", "op": "==", "value": "central"}, [0, 0, 0, 0, 0, 1]),
        ({"column": "region", "op": "in", "value": ["central", "west"]}, [0, 0, 0, 0, 0, 1]),
    ],
)
def test_apply_sample_each_op(flt, expected):
    mask = apply_sample(DATA, [flt])
    assert mask.dtype == bool
    assert mask.tolist() == [bool(e) for e in expected]


def test_apply_sample_combines_filters_with_and():
    mask = apply_sample(
        DATA,
        [
            {"column": "municipality", "op": "==", "value": 0},
            {"column": "Nqp", "op": ">", "value": 0.15},
        ],
    )
    assert mask.tolist() == [False, False, True, False, False, True]


def test_apply_sample_without_filters_keeps_every_row():
    assert apply_sample(DATA, []).tolist() == [True] * 6
