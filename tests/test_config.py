"""The config schema and the shipped config.yaml agree; validation fills defaults."""

from __future__ import annotations

import copy

import pytest
import yaml

from nqp_resilience.config import validate_config
from nqp_resilience.errors import ConfigError

from conftest import ROOT

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
            assert f"`{key}`" in readme or f"`{key}`, " in readme or key.split(".")[-1] in readme, (
                key
            )


def test_empty_config_gets_every_default():
    shipped = validate_config(_config(), SCHEMA)
    shipped.pop("specs")
    assert validate_config({}, SCHEMA) == shipped


def test_partial_block_keeps_other_defaults():
    cfg = validate_config({"sample": {"max_missing_share": 0.3}}, SCHEMA)
    assert cfg["sample"]["max_missing_share"] == 0.3
    assert cfg["sample"]["drop_changed_2011"] is True
    assert cfg["interpolation"]["edge"] == "nearest"


@pytest.mark.parametrize(
    "bad, key, words",
    [
        ({"sample": {"drop_changed_2011": "yes"}}, "sample.drop_changed_2011", "wrong type"),
        (
            {"sample": {"max_missing_share": 1.5}},
            "sample.max_missing_share",
            "greater than the maximum",
        ),
        (
            {"sample": {"changed_2011_types": ["renamed"]}},
            "sample.changed_2011_types.0",
            "not allowed",
        ),
        ({"raw_dir": ["a"]}, "raw_dir", "wrong type"),
        ({"raw_dir": 2024}, "raw_dir", "wrong type"),
        ({"tables": {"decimals": "four"}}, "tables.decimals", "wrong type"),
        ({"tables": {"decimals": "4.0"}}, "tables.decimals", "wrong type"),
        ({"tables.decimals": "-1"}, "tables.decimals", "less than the minimum"),
        ({"iv": {"internet": {"lag": "x"}}}, "iv.internet.lag", "wrong type"),
        ({"tables.decimalz": 4}, "tables.decimalz", "unknown key"),
        ({"tabels.decimals": 4}, "tabels.decimals", "unknown key"),
        ({"tables": 3, "tables.decimals": 4}, "tables", "treats it as a section"),
        ({"years": {"start": 2010, "end": "x"}}, "years.end", "wrong type"),
        ({"bootstrap": {"reps": 10}}, "bootstrap.reps", "less than the minimum of 99"),
        ({"bootstrap": {"weights": "gauss"}}, "bootstrap.weights", "not allowed"),
        ({"bootstrap": {"shards": 0}}, "bootstrap.shards", "less than the minimum"),
        ({"bootstrap": {"bootstrap_p": True}}, "bootstrap.bootstrap_p", "unknown key"),
    ],
)
def test_invalid_configs_name_the_key(bad, key, words):
    with pytest.raises(ConfigError) as exc:
        validate_config(bad, SCHEMA)
    assert exc.value.key == key
    assert words in str(exc.value)


# ---------------------------------------------------------------- overrides from the command line
# Snakemake 9 parses `--config 'tables={decimals: 4}'` with PyYAML's BaseLoader: every scalar of
# a nested value arrives as a string. These dicts are what it hands over.


def test_nested_strings_are_coerced_to_the_schema_types():
    cfg = validate_config(
        {
            "tables": {"decimals": "4", "stars": ["0.2", "0.1", "0.05"]},
            "years": {"start": "2012", "end": "2021"},
            "entropy": {"eps": "1e-3"},
            "iv": {"internet": {"lag": "2"}},
            "sample": {"drop_changed_2011": "false", "max_missing_share": "0"},
        },
        SCHEMA,
    )
    assert cfg["tables"]["decimals"] == 4 and isinstance(cfg["tables"]["decimals"], int)
    assert cfg["tables"]["stars"] == [0.2, 0.1, 0.05]
    assert cfg["years"] == {"end": 2021, "start": 2012}
    assert cfg["entropy"]["eps"] == 0.001
    assert cfg["iv"]["internet"]["lag"] == 2
    assert cfg["sample"]["drop_changed_2011"] is False
    assert cfg["sample"]["max_missing_share"] == 0
    # strings where the schema wants a string stay strings, as do enum values
    assert (
        validate_config({"results_dir": "2024", "tables": {"language": "zh"}}, SCHEMA)[
            "results_dir"
        ]
        == "2024"
    )


def test_coercion_of_a_spec_list_given_on_the_command_line():
    spec = {
        "id": "x",
        "table": "3",
        "estimator": "psm_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        "controls": "true",
        "psm": {"method": "radius", "caliper": "0.01", "ties": "false"},
    }
    cfg = validate_config({"specs": [spec]}, SCHEMA)
    s = cfg["specs"][0]
    assert s["table"] == 3 and s["controls"] is True
    assert s["psm"]["caliper"] == 0.01 and s["psm"]["ties"] is False
    cfg = validate_config(
        {"specs": [dict(spec, controls=["GDP"], psm={"method": "radius", "caliper": "null"})]},
        SCHEMA,
    )
    assert cfg["specs"][0]["controls"] == ["GDP"] and cfg["specs"][0]["psm"]["caliper"] is None


def test_dotted_keys_expand_into_the_section_and_override_it():
    cfg = validate_config(
        {"tables": {"decimals": 3, "language": "zh"}, "tables.decimals": 4, "iv.internet.lag": "2"},
        SCHEMA,
    )
    assert cfg["tables"]["decimals"] == 4
    assert cfg["tables"]["language"] == "zh"  # the rest of the section is kept
    assert cfg["tables"]["stars"] == [0.1, 0.05, 0.01]  # and defaults fill the rest
    assert cfg["iv"]["internet"]["lag"] == 2
    assert "tables.decimals" not in cfg and "iv.internet.lag" not in cfg


def test_wrong_type_hint_shows_how_to_write_it_on_the_command_line():
    with pytest.raises(ConfigError) as exc:
        validate_config({"tables": {"decimals": "four"}}, SCHEMA)
    assert "--config 'tables={decimals: 4}'" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        validate_config({"raw_dir": 2024}, SCHEMA)
    assert """--config 'raw_dir="2024"'""" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        validate_config({"tabels.decimals": 4}, SCHEMA)
    assert "did you mean 'tables.decimals'?" in str(exc.value)


# ---------------------------------------------------------------- spec variables: did you mean


def _spec_config():
    return validate_config(_config(), SCHEMA)


@pytest.mark.parametrize(
    "edit, key, wrong, meant",
    [
        (
            lambda c: c["specs"][1].update(dependent="Resill"),
            "specs[1].dependent",
            "Resill",
            "Resil",
        ),
        (lambda c: c["specs"][1].update(regressor="nqp"), "specs[1].regressor", "nqp", "Nqp"),
        (
            lambda c: c["specs"][1].update(controls=["GDP", "GOVV"]),
            "specs[1].controls[1]",
            "GOVV",
            "GOV",
        ),
        (lambda c: c["specs"][17].update(interact="Aset"), "specs[17].interact", "Aset", "Asset"),
        (
            lambda c: c["specs"][3].update(instrument="Releif"),
            "specs[3].instrument",
            "Releif",
            "Relief",
        ),
        (
            lambda c: c["specs"][3].update(instrument=["Relief", "Internt"]),
            "specs[3].instrument[1]",
            "Internt",
            "Internet",
        ),
        (
            lambda c: c["specs"][11]["sample"][0].update(column="municipalty"),
            "specs[11].sample[0].column",
            "municipalty",
            "municipality",
        ),
        (
            lambda c: c["specs"][5]["psm"].update(treatment_variable="NQP"),
            "specs[5].psm.treatment_variable",
            "NQP",
            "Nqp",
        ),
        (
            lambda c: c["specs"][0]["variables"].__setitem__(4, "GDPP"),
            "specs[0].variables[4]",
            "GDPP",
            "GDP",
        ),
        (
            lambda c: c["control_variables"].__setitem__(2, "INDD"),
            "control_variables[2]",
            "INDD",
            "IND",
        ),
    ],
)
def test_every_place_a_spec_names_a_variable_suggests_the_closest(edit, key, wrong, meant):
    from nqp_resilience.estimation.specs import validate_specs

    cfg = _spec_config()
    edit(cfg)
    with pytest.raises(ConfigError) as exc:
        validate_specs(cfg["specs"], cfg["control_variables"])
    assert exc.value.key == key
    assert f"unknown variable {wrong!r}" in exc.value.problem
    assert f"did you mean '{meant}'?" in exc.value.hint


def test_shipped_specs_are_valid():
    from nqp_resilience.estimation.specs import validate_specs

    cfg = _spec_config()
    assert len(validate_specs(cfg["specs"], cfg["control_variables"])) == 20


def test_cached_validation_equals_validation_and_skips_jsonschema(tmp_path):
    """A configuration validated once is taken from the cache, with the same values, types and
    key order, without importing jsonschema; another configuration is validated anew, and an
    invalid one raises every time (nothing is cached)."""
    import json
    import subprocess
    import sys

    from nqp_resilience.config import validate_config_cached

    cache = tmp_path / "cache"
    ref = validate_config(_config(), SCHEMA)
    first = validate_config_cached(_config(), SCHEMA, cache_dir=cache)
    assert json.dumps(first) == json.dumps(ref) and list(first) == list(ref)
    assert len(list((cache / "config").glob("*.json"))) == 1
    second = validate_config_cached(_config(), SCHEMA, cache_dir=cache)
    assert second == ref and list(second) == list(ref)
    assert type(second["entropy"]["eps"]) is type(ref["entropy"]["eps"])
    # a new process: the cache hit does not import jsonschema
    code = (
        "import sys, yaml; from nqp_resilience.config import validate_config_cached; "
        f"c = yaml.safe_load(open({str(ROOT / 'config.yaml')!r}, encoding='utf-8')); "
        f"validate_config_cached(c, {str(SCHEMA)!r}, cache_dir={str(cache)!r}); "
        "print('jsonschema' in sys.modules, c['years'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 1)[0] == "False"
    # another value: validated (defaults filled), a second cache entry
    changed = _config()
    changed["tables"] = {"decimals": 4}
    got = validate_config_cached(changed, SCHEMA, cache_dir=cache)
    assert got["tables"]["decimals"] == 4 and "stars" in got["tables"]
    assert len(list((cache / "config").glob("*.json"))) == 2
    # the same values as a string ('4', as --config gives them) are another key, coerced alike
    as_text = _config()
    as_text["tables"] = {"decimals": "4"}
    assert validate_config_cached(as_text, SCHEMA, cache_dir=cache)["tables"]["decimals"] == 4
    # an invalid configuration raises on every call and is not cached
    for _ in range(2):
        bad = _config()
        bad["tables"] = {"decimals": "four"}
        with pytest.raises(ConfigError, match="decimals"):
            validate_config_cached(bad, SCHEMA, cache_dir=cache)
    assert len(list((cache / "config").glob("*.json"))) == 3
    # a corrupt cache file is validated again and rewritten
    for f in (cache / "config").glob("*.json"):
        f.write_text("{not json", encoding="utf-8")
    assert validate_config_cached(_config(), SCHEMA, cache_dir=cache) == ref
