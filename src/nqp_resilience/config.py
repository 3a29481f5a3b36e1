"""Configuration validation against ``schemas/config.schema.yaml``.

The Snakefile calls :func:`validate_config` before any rule runs. Unknown keys and wrong types
raise :class:`~nqp_resilience.errors.ConfigError` naming the key; defaults declared in the
schema fill keys the user left out.
"""

from __future__ import annotations

import copy
import difflib

from nqp_resilience.errors import ConfigError
from nqp_resilience.io import read_yaml


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    from jsonschema import validators

    return validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict, schema_path, source: str = "config.yaml") -> dict:
    """Validate ``config`` in place (filling defaults) and return it.

    Raises
    ------
    ConfigError
        For the first error in document order, naming the key path, the problem, and a hint
        (the closest allowed key for an unknown key).
    """
    from jsonschema import Draft202012Validator

    schema = read_yaml(schema_path)
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise _to_config_error(errors[0], schema, source)
    _sort_keys_in_place(config)
    if config["years"]["start"] > config["years"]["end"]:
        raise ConfigError("years", f"start {config['years']['start']} is after end {config['years']['end']}",
                          hint="swap the two values: years.start is the first data year", source=source)
    return config


def _sort_keys_in_place(node) -> None:
    """Order every mapping's keys, so that rule params do not depend on the key order of the
    YAML file (Snakemake compares params by their text: reordering keys must not rerun jobs)."""
    if isinstance(node, dict):
        items = sorted(node.items())
        node.clear()
        node.update(items)
        for value in node.values():
            _sort_keys_in_place(value)
    elif isinstance(node, list):
        for value in node:
            _sort_keys_in_place(value)


def _to_config_error(err, schema, source) -> ConfigError:
    path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        allowed = list(_subschema(schema, err.absolute_path).get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        key = ".".join([*map(str, err.absolute_path), extra[0]]) if extra else path
        close = difflib.get_close_matches(extra[0], allowed, n=1) if extra else []
        hint = f"did you mean '{close[0]}'? " if close else ""
        return ConfigError(key, "unknown key", hint=hint + f"allowed keys here: {', '.join(allowed)}", source=source)
    if err.validator == "type":
        return ConfigError(path, f"wrong type: {err.instance!r} is not of type {err.validator_value!r}",
                           hint="see the Configuration section of the README", source=source)
    if err.validator == "enum":
        return ConfigError(path, f"{err.instance!r} is not allowed",
                           hint=f"choose one of {', '.join(map(str, err.validator_value))}", source=source)
    return ConfigError(path, err.message, hint="see the Configuration section of the README", source=source)


def _subschema(schema, path):
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node
