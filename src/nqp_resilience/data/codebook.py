"""The codebook (``resources/codebook.yaml``): raw headers -> canonical variables.

Pure data access; the only module besides :mod:`nqp_resilience.data.ingest` that knows raw headers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from nqp_resilience.data.io import normalise_text, read_yaml
from nqp_resilience.errors import DataError

KEY_NAMES = ("year", "city_code", "city_name")


@dataclass(frozen=True)
class Variable:
    """One canonical variable of a source."""

    name: str
    headers: tuple[str, ...]
    unit: str
    factor: float
    canonical_unit: str
    description: str = ""
    positive: bool = False
    min: float | None = None
    max: float | None = None
    required: bool = True


@dataclass(frozen=True)
class Source:
    """One raw source: its raw file, identifier columns and variables.

    ``file`` is the path of the raw file under ``raw_dir`` (``cnrds/patents.csv``); empty for
    the yearbook, whose extracts are one file per data year.
    """

    name: str
    keys: dict[str, tuple[str, ...]]
    variables: dict[str, Variable]
    ignore: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    years_before: int = 0
    year_in_file_name: bool = False
    file: str = ""

    @property
    def grain(self) -> str:
        """``city_year``, ``city`` or ``year``."""
        has_city = "city_code" in self.keys or "city_name" in self.keys
        if has_city and ("year" in self.keys or self.year_in_file_name):
            return "city_year"
        return "city" if has_city else "year"

    def header_lookup(self) -> dict[str, tuple[str, str]]:
        """Map each accepted (normalised) header to ``("key"|"var"|"ignore", name)``."""
        out: dict[str, tuple[str, str]] = {}
        for key, headers in self.keys.items():
            for h in headers:
                out[normalise_text(h)] = ("key", key)
        for var in self.variables.values():
            for h in var.headers:
                out[normalise_text(h)] = ("var", var.name)
        for h in self.ignore:
            out[normalise_text(h)] = ("ignore", h)
        return out

    def closest(self, header: str) -> str:
        """A hint naming the closest codebook header and its canonical variable."""
        lookup = self.header_lookup()
        candidates = {h: name for h, (kind, name) in lookup.items() if kind != "ignore"}
        for var in self.variables:
            candidates.setdefault(var, var)
        match = difflib.get_close_matches(normalise_text(header), list(candidates), n=1, cutoff=0.0)
        if not match:
            return ""
        return f"{match[0]!r} (canonical name {candidates[match[0]]!r})"


class Codebook:
    """All sources of the codebook, loaded from YAML."""

    def __init__(self, path):
        self.path = str(path)
        raw = read_yaml(path) or {}
        if "sources" not in raw:
            raise DataError(
                path,
                "the codebook has no 'sources' section",
                expected="sources: {yearbook: ..., patents: ..., ...}",
            )
        self.sources: dict[str, Source] = {}
        for sname, spec in raw["sources"].items():
            keys = {k: tuple(v["headers"]) for k, v in (spec.get("keys") or {}).items()}
            unknown = set(keys) - set(KEY_NAMES)
            if unknown:
                raise DataError(
                    path,
                    f"source {sname!r} has unknown key columns {sorted(unknown)}",
                    expected=f"keys among {KEY_NAMES}",
                )
            variables = {}
            for vname, v in (spec.get("variables") or {}).items():
                try:
                    variables[vname] = Variable(
                        name=vname,
                        headers=tuple(v["headers"]),
                        unit=str(v["unit"]),
                        factor=float(v["factor"]),
                        canonical_unit=str(v["canonical_unit"]),
                        description=v.get("description", ""),
                        positive=bool(v.get("positive", False)),
                        min=v.get("min"),
                        max=v.get("max"),
                        required=bool(v.get("required", True)),
                    )
                except KeyError as exc:
                    raise DataError(
                        path,
                        f"variable {vname!r} of source {sname!r} lacks {exc.args[0]!r}",
                        expected="headers, unit, factor and canonical_unit for every variable",
                    ) from None
            self.sources[sname] = Source(
                sname,
                keys,
                variables,
                tuple(spec.get("ignore") or ()),
                spec.get("description", ""),
                int(spec.get("years_before", 0)),
                bool(spec.get("year_in_file_name", False)),
                str(spec.get("file") or ""),
            )
            if not self.sources[sname].file and not self.sources[sname].year_in_file_name:
                raise DataError(
                    path,
                    f"source {sname!r} has no 'file'",
                    expected="file: <path under raw_dir>, e.g. file: cnrds/patents.csv",
                    hint="every source but the yearbook names its raw file",
                )

    def __getitem__(self, name: str) -> Source:
        return self.sources[name]

    def files(self) -> dict[str, str]:
        """The raw file of every source that has one (all but the yearbook), in codebook order."""
        return {name: src.file for name, src in self.sources.items() if src.file}

    def sources_by_grain(self) -> dict[str, list[str]]:
        """The sources with a raw file, by grain: ``{"city_year": [...], "city": [...],
        "year": [...]}`` (codebook order; a grain without sources has an empty list)."""
        out: dict[str, list[str]] = {"city_year": [], "city": [], "year": []}
        for name in self.files():
            out[self.sources[name].grain].append(name)
        return out

    def variables(self, grain: str | None = None) -> dict[str, Variable]:
        """Every canonical variable (optionally of sources with a given grain), in codebook
        order."""
        out = {}
        for src in self.sources.values():
            if grain is None or src.grain == grain:
                out.update(src.variables)
        return out
