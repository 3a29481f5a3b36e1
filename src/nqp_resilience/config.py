"""Configuration validation against ``schemas/config.schema.yaml``.

The Snakefile calls :func:`validate_config` before any rule runs. Unknown keys and wrong types
raise :class:`~nqp_resilience.errors.ConfigError` naming the key; defaults declared in the
schema fill keys the user left out.

Overrides arrive in three shapes, all handled here before validation:

* ``--config 'tables={decimals: 4}'``: Snakemake 9 parses a nested value with PyYAML's
  ``BaseLoader``, so every scalar inside it is a *string* (``{'decimals': '4'}``), and merges the
  mapping key by key into ``config.yaml`` (``snakemake.utils.update_config``), so the keys of the
  section that are not named keep their values. :func:`coerce_to_schema` turns such strings into
  the schema's type where the reading is unambiguous (``'4'`` -> 4 for an integer, ``'0.3'`` ->
  0.3 for a number, ``'true'``/``'false'`` for a boolean, ``'null'``/``'~'`` for null).
* ``tables.decimals: 4`` as a key of a ``--configfile`` or of the dict given to
  :func:`validate_config`: :func:`expand_dotted_keys` moves it into the nested mapping (it
  overrides the nested value). Snakemake's command line itself rejects a dot in a ``--config``
  key before the workflow is read, so there the mapping form above is the way.
* ``--config raw_dir=2024``: Snakemake itself reads a top-level value (int, float, bool, then
  YAML), so a number given for a text key arrives as a number; the error's hint says how to
  quote it.
"""

from __future__ import annotations

import copy
import difflib
import math
import re

from nqp_resilience.data.io import WORKFLOW_CACHE, is_plain, read_yaml
from nqp_resilience.errors import ConfigError


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

    from nqp_resilience.data.plausibility import normalise_config

    schema = read_yaml(schema_path)
    normalise_config(config)  # the shorthand `plausibility: warn` is {action: warn}
    expand_dotted_keys(config, schema, source)
    coerce_to_schema(config, schema)
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise _to_config_error(errors[0], schema, source)
    _sort_keys_in_place(config)
    if config["years"]["start"] > config["years"]["end"]:
        raise ConfigError(
            "years",
            f"start {config['years']['start']} is after end {config['years']['end']}",
            hint="swap the two values: years.start is the first data year",
            source=source,
        )
    return config


def validate_config_cached(
    config: dict, schema_path, source: str = "config.yaml", cache_dir=WORKFLOW_CACHE
) -> dict:
    """:func:`validate_config`, remembered: a configuration validated before (the same values,
    types and key order, the same schema and the same validation code) is replaced by the
    validated result kept in ``cache_dir`` instead of being validated again, which spares every
    Snakemake start (a no-op rerun, a dry run) the jsonschema import and the validation.

    Only plain configurations are kept (str, int, float, bool, None, lists and mappings with
    string keys); anything else, and an unreadable cache file, is validated as usual. A
    configuration with an error is never kept, so its error is raised on every run.
    """
    import hashlib
    import json
    from pathlib import Path

    if not is_plain(config):
        return validate_config(config, schema_path, source)
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for part in (
        Path(schema_path).read_bytes(),
        (here / "config.py").read_bytes(),
        (here / "data" / "plausibility.py").read_bytes(),
        repr(config).encode(),
        source.encode(),
    ):
        digest.update(hashlib.sha256(part).digest())
    cached = Path(cache_dir) / "config" / f"{digest.hexdigest()}.json"
    try:
        validated = json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        validated = None
    if isinstance(validated, dict) and is_plain(validated):
        config.clear()
        config.update(validated)
        return config
    validate_config(config, schema_path, source)
    if is_plain(config):
        from nqp_resilience.data.io import write_text

        try:
            write_text(cached, json.dumps(config, ensure_ascii=False))
        except OSError:
            pass  # a read-only working folder: validate every time
    return config


def expand_dotted_keys(config: dict, schema: dict, source: str = "config.yaml", _path=()) -> dict:
    """Move dotted keys into their nested mapping, in place: ``{"tables.decimals": 4}`` becomes
    ``{"tables": {"decimals": 4}}``, merged into an existing ``tables`` section (the dotted key
    wins over the nested one it names).

    Only a key whose first part is a section (an object) of the schema is expanded; any other
    dotted key is left alone, so validation reports it as an unknown key.

    Raises
    ------
    ConfigError
        When the section a dotted key names is set to something that is not a mapping.
    """
    props = schema.get("properties") or {}
    for key in [k for k in config if isinstance(k, str) and "." in k]:
        head, rest = key.split(".", 1)
        sub = props.get(head)
        if not sub or sub.get("type") != "object" or "properties" not in sub:
            continue
        value = config.pop(key)
        node = config.setdefault(head, {})
        if node is None:
            node = config[head] = {}
        if not isinstance(node, dict):
            raise ConfigError(
                ".".join([*_path, head]),
                f"is {node!r}, but '{key}' treats it as a section",
                hint=f"give '{head}' as a mapping, e.g. {head}: {{{rest}: ...}}",
                source=source,
            )
        if isinstance(value, dict) and isinstance(node.get(rest), dict):
            _merge(node[rest], value)
        else:
            node[rest] = value
    for key, value in config.items():
        sub = props.get(key)
        if isinstance(value, dict) and sub and "properties" in sub:
            expand_dotted_keys(value, sub, source, (*_path, key))
    return config


def _merge(base: dict, override: dict) -> None:
    """Recursive in-place update, as Snakemake merges --config into config.yaml."""
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLEAN = {"true": True, "false": False}
_NULL = {"null", "~"}
_NO_PARSE = object()


def _schema_types(schema: dict) -> set[str]:
    """The JSON types a schema admits, including those of its ``oneOf``/``anyOf`` branches."""
    t = schema.get("type")
    types = set([t] if isinstance(t, str) else (t or []))
    for branch in [*schema.get("oneOf", []), *schema.get("anyOf", [])]:
        types |= _schema_types(branch)
    return types


def _parse_scalar(text: str, kind: str):
    """``text`` read as ``kind`` (null, boolean, integer, number), or ``_NO_PARSE``."""
    s = text.strip()
    if kind == "null":
        return None if s in _NULL else _NO_PARSE
    if kind == "boolean":
        return _BOOLEAN.get(s.lower(), _NO_PARSE)
    if kind == "integer":
        return int(s) if _INTEGER.fullmatch(s) else _NO_PARSE
    if kind == "number":
        if _INTEGER.fullmatch(s):
            return int(s)
        if _NUMBER.fullmatch(s) and math.isfinite(float(s)):
            return float(s)
    return _NO_PARSE


def coerce_to_schema(value, schema: dict):
    """Return ``value`` with strings turned into the type the schema asks for; mappings and
    lists are updated in place.

    Snakemake hands every scalar of a nested ``--config`` value over as a string, so a string
    where the schema admits no string is read as null, boolean, integer or number (in that
    order of preference, the first the schema admits and the text spells exactly: ``'4'`` is
    an integer, ``'1e-3'`` and ``'0.25'`` numbers, ``'true'``/``'false'`` booleans, ``'null'``
    or ``'~'`` null). ``'yes'``, ``'4.0'`` for an integer and anything else stay strings, so the
    validation that follows names the key and the wrong type. Where the schema admits a string
    (or says nothing), the value is kept as given.
    """
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = coerce_to_schema(value[key], sub)
        return value
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            value[:] = [coerce_to_schema(v, items) for v in value]
        else:
            for branch in [*schema.get("oneOf", []), *schema.get("anyOf", [])]:
                if isinstance(branch.get("items"), dict):
                    value[:] = [coerce_to_schema(v, branch["items"]) for v in value]
                    break
        return value
    if isinstance(value, str):
        types = _schema_types(schema)
        if not types or "string" in types:
            return value
        for kind in ("null", "boolean", "integer", "number"):
            if kind in types:
                parsed = _parse_scalar(value, kind)
                if parsed is not _NO_PARSE:
                    return parsed
    return value


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
        if extra and not close and "." in extra[0]:  # a dotted key with a misspelt section
            head, rest = extra[0].split(".", 1)
            close = [f"{c}.{rest}" for c in difflib.get_close_matches(head, allowed, n=1)]
        hint = f"did you mean '{close[0]}'? " if close else ""
        return ConfigError(
            key,
            "unknown key",
            hint=hint + f"allowed keys here: {', '.join(allowed)}",
            source=source,
        )
    if err.validator == "type":
        return ConfigError(
            path,
            f"wrong type: {err.instance!r} is not of type {err.validator_value!r}",
            hint=_type_hint(path, err.instance, err.validator_value),
            source=source,
        )
    if err.validator == "enum":
        return ConfigError(
            path,
            f"{err.instance!r} is not allowed",
            hint=f"choose one of {', '.join(map(str, err.validator_value))}",
            source=source,
        )
    return ConfigError(
        path, err.message, hint="see the Configuration section of the README", source=source
    )


def _type_hint(path: str, instance, expected) -> str:
    """How to write the value: Snakemake's command line reads ``raw_dir=2024`` as a number."""
    wanted = set([expected] if isinstance(expected, str) else expected)
    if "string" in wanted and isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return (
            f"Snakemake's --config read {instance!r} as a number; quote it to keep it text: "
            f"--config '{path}=\"{instance}\"'"
        )
    if isinstance(instance, str) and wanted & {"integer", "number", "boolean"}:
        example = {"integer": "4", "number": "0.25", "boolean": "true"}[
            next(t for t in ("integer", "number", "boolean") if t in wanted)
        ]
        head, *rest = path.split(".")
        value = example
        for part in reversed(rest):
            value = f"{{{part}: {value}}}"
        form = f"--config '{head}={value}'" if rest else f"--config {head}={example}"
        kinds = " or ".join(sorted(wanted))
        article = "an" if kinds[0] in "aeiou" else "a"
        return f"write {article} {kinds}, e.g. {form} (see the Configuration section of the README)"
    return "see the Configuration section of the README"


def _subschema(schema, path):
    node = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        else:
            node = node.get("properties", {}).get(part, {})
    return node


# ------------------------------------------------------------------ the jobs' option params
#: ``bootstrap`` keys that fix the draws (a shard job's params: changing one redraws the shards)
BOOTSTRAP_DRAW_KEYS = ("reps", "seed", "weights", "cluster")
#: ``bootstrap`` keys that only change the inference from the draws (the reduce job's params)
BOOTSTRAP_INFERENCE_KEYS = ("variant", "null_value", "level", "p_type")


def variable_options(config: dict) -> dict:
    """The options of the derived-variables job: passed as its params, so that changing one
    reruns exactly the jobs that read it."""
    return {k: config[k] for k in ("years", "resil", "mrd", "mechanisms", "iv", "heterogeneity")}


def bootstrap_options(config: dict) -> tuple[dict, dict]:
    """The bootstrap's draw options (the shard jobs' params) and inference options (the reduce
    jobs' params) from the ``bootstrap`` block."""
    boot = config["bootstrap"]
    return (
        {k: boot[k] for k in BOOTSTRAP_DRAW_KEYS},
        {k: boot[k] for k in BOOTSTRAP_INFERENCE_KEYS},
    )
