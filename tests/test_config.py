"""The config schema and the shipped config.yaml agree; validation fills defaults."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT
from nqp_resilience.config import validate_config
from nqp_resilience.errors import ConfigError

SCHEMA = ROOT / "schemas" / "config.schema.yaml"


def _config():
    return yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def _defaults(schema):
    """The config implied by the schema's defaults alone."""
    if schema.get("type") != "object":
        return copy.deepcopy(schema.get("default"))
    out = copy.deepcopy(schema.get("default", {})) or {}
    for name, sub in schema.get("properties", {}).items():
        value = _defaults(sub)
        if value is not None or "default" in sub:
            if isinstance(value, dict) and isinstance(out.get(name), dict):
                out[name] = {**value, **out[name]}
            else:
                out[name] = value
    return out


def test_shipped_config_is_valid_and_equals_the_schema_defaults():
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    cfg = validate_config(_config(), SCHEMA)
    specs = cfg.pop("specs")  # the registry is data without a schema default
    assert cfg == _defaults(schema)
    assert len(specs) == 20
    # and every key of config.yaml is documented in the README
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for top, value in _config().items():
        if top == "specs":
            continue
        keys = [f"{top}.{k}" for k in value] if isinstance(value, dict) else [top]
        for key in keys:
            assert f"`{key}`" in readme or f"`{key}`, " in readme or key.split(".")[-1] in readme, key


def test_empty_config_gets_every_default():
    shipped = validate_config(_config(), SCHEMA)
    shipped.pop("specs")
    assert validate_config({}, SCHEMA) == shipped


def test_partial_block_keeps_other_defaults():
    cfg = validate_config({"sample": {"max_missing_share": 0.3}}, SCHEMA)
    assert cfg["sample"]["max_missing_share"] == 0.3
    assert cfg["sample"]["drop_changed_2011"] is True
    assert cfg["interpolation"]["edge"] == "nearest"


@pytest.mark.parametrize("bad, key, words", [
    ({"sample": {"drop_changed_2011": "yes"}}, "sample.drop_changed_2011", "wrong type"),
    ({"sample": {"max_missing_share": 1.5}}, "sample.max_missing_share", "greater than the maximum"),
    ({"sample": {"changed_2011_types": ["renamed"]}}, "sample.changed_2011_types.0", "not allowed"),
    ({"raw_dir": 3}, "raw_dir", "wrong type"),
    ({"years": {"start": 2010, "end": "x"}}, "years.end", "wrong type"),
    ({"bootstrap": {"reps": 10}}, "bootstrap", "unknown key"),
])
def test_invalid_configs_name_the_key(bad, key, words):
    with pytest.raises(ConfigError) as exc:
        validate_config(bad, SCHEMA)
    assert exc.value.key == key
    assert words in str(exc.value)
