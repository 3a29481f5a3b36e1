"""The quick schema check (nqp_resilience.schema_check): it accepts exactly the documents
jsonschema accepts on the project's schemas, so the estimate records skip the jsonschema import
without letting anything through; what it does not know goes to jsonschema."""

from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from nqp_resilience.data.io import read_yaml
from nqp_resilience.schema_check import conforms
from test_record import describe_record, engine_record, regression

from conftest import ROOT

SCHEMA = read_yaml(ROOT / "schemas" / "estimate.schema.yaml")
JSONSCHEMA = Draft202012Validator(SCHEMA)

# values a mutation puts anywhere: every JSON type, the integer/number/boolean edge cases,
# strings for the patterns and lengths, and the non-finite floats
VALUES = [
    None, True, False, 0, 1, -1, 1.0, 2.5, -0.5, math.nan, math.inf, "", "x", "describe",
    "ols_fe", "city", "ab" * 32, "AB" * 32, "ab" * 31, [], [1.0], [1.0, 2.0], [1.0, None],
    [1.0, 2.0, 3.0], ["a"], [True], {}, {"a": 1}, {"column": "x", "op": "==", "value": 1},
    {"N": 1, "mean": 0.1, "sd": 0.1, "min": 0.0, "max": 1.0},
]  # fmt: skip


def _valid_records() -> list[dict]:
    iv = regression(spec="iv_relief", estimator="iv_fe", extra={"first_stage": {"F": 31.5}})
    subsample = regression(sample=[{"column": "east", "op": "==", "value": 1}], trends="city")
    return [regression(), describe_record(), engine_record(), iv, subsample]


def test_the_shipped_schema_is_valid_and_every_valid_record_is_accepted_at_once():
    Draft202012Validator.check_schema(SCHEMA)
    records = _valid_records()
    for record in records:
        assert JSONSCHEMA.is_valid(record)
        assert conforms(SCHEMA, record), record.get("spec")


def _paths(doc, prefix=()):
    """Every (container, key) in ``doc``, depth first."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield doc, k
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield doc, i
            yield from _paths(v, (*prefix, i))


def _mutate(doc: dict, rng: random.Random) -> dict:
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice((1, 1, 2, 3))):
        places = list(_paths(doc))
        container, key = rng.choice(places)
        what = rng.random()
        if what < 0.55:
            container[key] = copy.deepcopy(rng.choice(VALUES))
        elif what < 0.8:
            if isinstance(container, dict):
                del container[key]
            else:
                container.pop(key)
        elif isinstance(container, dict):
            container[rng.choice(["extra_key", "engine", "statistics", "coef", "N"])] = (
                copy.deepcopy(rng.choice(VALUES))
            )
        else:
            container.append(copy.deepcopy(rng.choice(VALUES)))
    return doc


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_it_agrees_with_jsonschema_on_mutated_records(seed):
    rng = random.Random(seed)
    records = _valid_records()
    verdicts = {True: 0, False: 0}
    for _ in range(4000):
        doc = _mutate(rng.choice(records), rng)
        valid = JSONSCHEMA.is_valid(doc)
        assert conforms(SCHEMA, doc) == valid, json.dumps(doc, default=str)[:600]
        verdicts[valid] += 1
    # the mutations reach both verdicts often enough to mean something
    assert min(verdicts.values()) > 400, verdicts


@pytest.mark.parametrize(
    "schema, doc, expected",
    [
        ({"type": "integer"}, 1.0, True),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"enum": [1]}, True, False),
        ({"enum": [True]}, 1, False),
        ({"const": 1}, 1.0, True),
        ({"minimum": 0}, "negative?", True),
        ({"minimum": 0}, math.nan, True),
        ({"pattern": "^a"}, 5, True),
        ({"minItems": 2}, {"a": 1}, True),
        ({"required": ["a"]}, [], True),
        ({"dependentRequired": {"a": ["b"]}}, {"a": 1}, False),
        ({"if": {"const": 1}, "then": {"type": "integer"}, "else": {"type": "string"}}, 2, False),
        ({"then": {"type": "string"}}, 2, True),
        ({"not": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, None, False),
    ],
)
def test_keyword_semantics_are_jsonschemas(schema, doc, expected):
    assert Draft202012Validator(schema).is_valid(doc) is expected
    assert conforms(schema, doc) is expected


@pytest.mark.parametrize(
    "schema",
    [
        {"format": "date"},
        {"patternProperties": {"^a": {"type": "string"}}, "additionalProperties": False},
        {"$ref": "https://example.org/schema.json"},
        {"$ref": "#/$defs/missing"},
        {"type": "decimal"},
        {"uniqueItems": True},
    ],
)
def test_what_it_does_not_know_goes_to_jsonschema(schema):
    # never a fast yes: the caller asks jsonschema
    assert conforms(schema, "2024-01-01") is False
    assert conforms(schema, {"a": "x"}) is False


def test_a_valid_record_is_checked_without_importing_jsonschema(tmp_path):
    path = tmp_path / "baseline.json"
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from test_record import regression
from nqp_resilience.estimation.record import EstimateRecord, read_estimate, write_estimate
write_estimate(EstimateRecord.from_dict(regression()), {str(path)!r})
read_estimate({str(path)!r})
print(json.dumps("jsonschema" in sys.modules))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) is False


@pytest.mark.slow
def test_every_record_of_a_run_is_accepted_at_once(completed_workflow):
    paths = sorted((completed_workflow / "results" / "estimates").glob("*.json"))
    assert len(paths) > 10
    for path in paths:
        assert conforms(SCHEMA, json.loads(path.read_text(encoding="utf-8"))), path.name
