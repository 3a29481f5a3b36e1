"""The estimate record: one class, one schema, one reader and one writer for results/estimates."""

from __future__ import annotations

import copy
import json

import pytest

from nqp_resilience.data.io import read_yaml
from nqp_resilience.errors import DataError
from nqp_resilience.estimation.record import (
    COMMON_KEYS,
    DESCRIBE_KEYS,
    ENGINE_KEYS,
    PROVENANCE_KEYS,
    REGRESSION_KEYS,
    EstimateRecord,
    read_estimate,
    read_estimates,
    record_json,
    validate_estimate,
    write_estimate,
)

from conftest import ROOT

SOFTWARE = {"python": "3.11.7", "numpy": "2.4.6", "nqp-resilience": "0.1.0"}
INPUTS = {"analysis_panel": "ab" * 32}


def regression(**changes) -> dict:
    """A regression record as the estimator returns it, with provenance."""
    rec = {
        "spec": "baseline",
        "table": 3,
        "column": "(2)",
        "estimator": "ols_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        "coef": 0.125,
        "se": 0.03,
        "t": 4.1666,
        "p": 4.1e-05,
        "ci": [0.066, 0.184],
        "nobs": 2760,
        "n_clusters": 230,
        "r2": 0.61,
        "r2_within": 0.08,
        "fixed_effects": ["city", "year"],
        "cluster": "city",
        "controls": ["GDP", "GOV"],
        "sample": [],
        "trends": None,
        "params": {"GDP": 0.01, "GOV": -0.2, "Nqp": 0.125, "_cons": 0.1},
        "bse": {"GDP": 0.002, "GOV": 0.05, "Nqp": 0.03, "_cons": None},
        "df_resid": 229,
        "vcov_type": "cluster",
        "extra": {"df_k": 3, "omitted": []},
        "omitted": [],
        "notes": ["ünïcode"],
        "software": SOFTWARE,
        "inputs": INPUTS,
    }
    rec.update(changes)
    return copy.deepcopy(rec)


def describe_record() -> dict:
    rec = {
        "spec": "desc_stats",
        "table": 2,
        "column": "",
        "estimator": "describe",
        "statistics": {"Resil": {"N": 2760, "mean": 0.24, "sd": 0.06, "min": 0.04, "max": 0.42}},
        "software": SOFTWARE,
        "inputs": INPUTS,
    }
    return copy.deepcopy(rec)


def write_json(path, data) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def engine_record() -> dict:
    """A record of another engine: engine and version after the regression keys."""
    rec = regression()
    provenance = {k: rec.pop(k) for k in PROVENANCE_KEYS}
    return {**rec, "engine": "linearmodels", "engine_version": None, **provenance}


@pytest.mark.parametrize(
    "make", [regression, describe_record, engine_record], ids=["regression", "describe", "engine"]
)
def test_round_trip_is_byte_identical_to_json_dumps(tmp_path, make):
    data = make()
    path = tmp_path / "in.json"
    write_json(path, data)
    record = read_estimate(path)
    assert isinstance(record, EstimateRecord)
    assert record.to_dict() == data and list(record) == list(data)
    write_estimate(record, tmp_path / "out.json")
    assert (tmp_path / "out.json").read_bytes() == path.read_bytes()
    assert record_json(data) == path.read_text(encoding="utf-8")


def test_record_is_a_typed_read_only_mapping():
    rec = EstimateRecord.from_dict(regression())
    assert rec.coef == 0.125 and rec["coef"] == 0.125 and rec.get("extra", {})["df_k"] == 3
    assert "statistics" not in rec and rec.get("statistics") is None
    with pytest.raises(KeyError):
        rec["statistics"]
    desc = EstimateRecord.from_dict(describe_record())
    assert desc.is_describe and "coef" not in desc and desc["statistics"]["Resil"]["N"] == 2760
    assert list(desc) == [*COMMON_KEYS, *DESCRIBE_KEYS, *PROVENANCE_KEYS]
    assert list(rec) == [*COMMON_KEYS, *REGRESSION_KEYS, *PROVENANCE_KEYS]
    with pytest.raises(AttributeError):
        rec.coef = 1.0


@pytest.mark.parametrize(
    "change, key, words",
    [
        (lambda r: r.pop("se"), "(top level)", "lacks a key"),
        (lambda r: r.update(ci=[0.1]), "ci", "too short"),
        (lambda r: r.update(nobs="2760"), "nobs", "is not of type 'integer'"),
        (lambda r: r.update(estimator="ols"), "estimator", "is not one of"),
        (lambda r: r["params"].update(Nqp="0.1"), "params.Nqp", "is not of type"),
        (lambda r: r.update(engine_used="numpy"), "(top level)", "unexpected key"),
        (lambda r: r.update(engine="linearmodels"), "(top level)", "dependency"),
        (lambda r: r.update(statistics={}), "(top level)", "a describe record has 'statistics'"),
        (
            lambda r: r["inputs"].update(analysis_panel="not a hash"),
            "inputs.analysis_panel",
            "does not match",
        ),
    ],
    ids=[
        "missing",
        "short_ci",
        "nobs_text",
        "estimator",
        "param_text",
        "unknown_key",
        "engine_alone",
        "both_kinds",
        "bad_hash",
    ],
)
def test_a_bad_record_names_the_file_and_the_key(tmp_path, change, key, words):
    data = regression()
    change(data)
    path = tmp_path / "baseline.json"
    write_json(path, data)
    with pytest.raises(DataError) as info:
        read_estimate(path)
    err = info.value
    assert err.file == str(path) and err.column == key and words in err.problem, str(err)
    assert "rerun" in err.hint


def test_writing_an_invalid_record_writes_nothing(tmp_path):
    record = EstimateRecord.from_dict(regression(nobs=-1))
    with pytest.raises(DataError, match="nobs"):
        write_estimate(record, tmp_path / "baseline.json")
    assert not (tmp_path / "baseline.json").exists()


def test_not_json_names_the_line(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text('{\n  "spec": "baseline",\n  oops\n}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        read_estimate(path)
    assert info.value.row == "line 3" and "not valid JSON" in info.value.problem


def test_from_dict_names_a_missing_key():
    data = regression()
    del data["vcov_type"]
    with pytest.raises(DataError) as info:
        EstimateRecord.from_dict(data, source="x.json")
    assert info.value.column == "vcov_type" and info.value.file == "x.json"


def test_schema_and_class_describe_the_same_keys():
    from dataclasses import fields

    from nqp_resilience.estimation.specs import ESTIMATORS

    schema = read_yaml(ROOT / "schemas" / "estimate.schema.yaml")
    assert set(schema["properties"]) == {f.name for f in fields(EstimateRecord)}
    every_key = COMMON_KEYS + DESCRIBE_KEYS + REGRESSION_KEYS + ENGINE_KEYS + PROVENANCE_KEYS
    assert set(schema["properties"]) == set(every_key)
    assert schema["properties"]["estimator"]["enum"] == list(ESTIMATORS)
    assert schema["else"]["required"] == list(REGRESSION_KEYS)


def test_every_reader_uses_the_one_reader():
    """No module of the stages that write or read estimates parses JSON itself: the spec job,
    the tables, the figures and the replication check go through the record module."""
    offenders = []
    for stage in ("estimation", "outputs"):
        for path in (ROOT / "src" / "nqp_resilience" / stage).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name != "record.py" and ("json.loads(" in text or "json.load(" in text):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert offenders == []


@pytest.mark.slow
def test_every_estimate_of_a_run_matches_the_schema(completed_workflow):
    paths = sorted((completed_workflow / "results" / "estimates").glob("*.json"))
    specs = read_yaml(completed_workflow / "config.yaml")["specs"]
    assert [p.stem for p in paths] == sorted(s["id"] for s in specs)
    records = read_estimates(paths)
    for path in paths:
        validate_estimate(json.loads(path.read_text(encoding="utf-8")), source=path)
        assert record_json(records[path.stem]) == path.read_text(encoding="utf-8"), path.name
    kinds = {r.estimator for r in records.values()}
    assert kinds == {"describe", "ols_fe", "iv_fe", "psm_fe"}
