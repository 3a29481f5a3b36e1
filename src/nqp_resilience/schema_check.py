"""A quick yes-or-don't-know check of a JSON document against a JSON Schema (draft 2020-12), for
the documents a job writes and reads many times (the estimate records).

``jsonschema`` costs about 0.05 s to import, which a specification job would pay for one small
document. :func:`conforms` decides the keywords our schemas use, with jsonschema's semantics
(``integer`` accepts 1.0 but not ``True``; ``enum`` and ``const`` tell ``True`` from 1;
``minimum``, ``pattern`` and the item and property keywords apply only to numbers, strings,
arrays and objects). It answers ``True`` only when the document conforms; on any failure, and on
any keyword or reference it does not know, it answers ``False``, and the caller asks jsonschema,
whose verdict and message are authoritative. So a fast ``True`` never lets through what
jsonschema would reject, and every error message is jsonschema's.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

#: keywords that do not constrain a document
ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default"}
)


class _Unknown(Exception):
    """A keyword or value this checker does not decide: jsonschema must."""


def _is_number(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer(x) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES = {
    "null": lambda x: x is None,
    "boolean": lambda x: isinstance(x, bool),
    "string": lambda x: isinstance(x, str),
    "number": _is_number,
    "integer": _is_integer,
    "array": lambda x: isinstance(x, list),
    "object": lambda x: isinstance(x, dict),
}


def _equal(a, b) -> bool:
    """jsonschema's equality: booleans equal only booleans; 1 equals 1.0; containers deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_equal(a[k], b[k]) for k in a)
        )
    return a == b


@lru_cache(maxsize=64)
def _pattern(expr: str) -> re.Pattern:
    return re.compile(expr)


def _ok(schema, x, root: Mapping) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise _Unknown(schema)
    for key, value in schema.items():
        if key in ANNOTATIONS:
            continue
        if key == "$ref":
            if not isinstance(value, str) or not value.startswith("#/$defs/"):
                raise _Unknown(value)
            target = root.get("$defs", {}).get(value[len("#/$defs/") :])
            if target is None:
                raise _Unknown(value)
            good = _ok(target, x, root)
        elif key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or any(n not in _TYPES for n in names):
                raise _Unknown(value)
            good = any(_TYPES[n](x) for n in names)
        elif key == "enum":
            good = any(_equal(x, v) for v in value)
        elif key == "const":
            good = _equal(x, value)
        elif key in ("minimum", "maximum"):
            if not _is_number(value):
                raise _Unknown(value)
            good = not _is_number(x) or not (x < value if key == "minimum" else x > value)
        elif key == "minLength":
            good = not isinstance(x, str) or len(x) >= value
        elif key == "pattern":
            good = not isinstance(x, str) or _pattern(value).search(x) is not None
        elif key in ("minItems", "maxItems"):
            good = not isinstance(x, list) or (
                len(x) >= value if key == "minItems" else len(x) <= value
            )
        elif key == "items":
            good = not isinstance(x, list) or all(_ok(value, item, root) for item in x)
        elif key == "required":
            good = not isinstance(x, dict) or all(k in x for k in value)
        elif key == "properties":
            good = not isinstance(x, dict) or all(
                _ok(sub, x[k], root) for k, sub in value.items() if k in x
            )
        elif key == "additionalProperties":
            if "patternProperties" in schema:
                raise _Unknown(key)
            known = schema.get("properties", {})
            good = not isinstance(x, dict) or all(
                _ok(value, v, root) for k, v in x.items() if k not in known
            )
        elif key == "dependentRequired":
            good = not isinstance(x, dict) or all(
                all(d in x for d in deps) for k, deps in value.items() if k in x
            )
        elif key == "anyOf":
            good = any(_ok(sub, x, root) for sub in value)
        elif key == "not":
            good = not _ok(value, x, root)
        elif key == "if":
            branch = "then" if _ok(value, x, root) else "else"
            good = _ok(schema.get(branch, True), x, root)
        elif key in ("then", "else"):
            continue  # decided with "if" (and nothing without it)
        else:
            raise _Unknown(key)
        if not good:
            return False
    return True


def conforms(schema: Mapping, document: Any) -> bool:
    """True if ``document`` conforms to ``schema``; False if it does not, or if the schema uses
    something this checker does not decide (ask jsonschema then)."""
    try:
        return _ok(schema, document, schema)
    except (_Unknown, TypeError, re.error):
        return False
