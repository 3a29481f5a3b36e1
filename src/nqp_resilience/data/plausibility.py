"""Plausibility checks between ingest and the panel: values that parse but cannot be right.

The ingest (:mod:`nqp_resilience.data.ingest`) rejects cells that are not numbers or break the
codebook's bounds. A cell can pass both and still be wrong by a power of ten: a population in
persons instead of 万人, a GDP in 元 instead of 万元, a growth rate as a fraction instead of %, a
decimal point typed one place off. One such cell moves the estimates (one shifted population
cell moved the Talent coefficient by five orders of magnitude), so this module judges every
ingested value against the data itself and names each suspicious cell: file, line, city, year,
raw header and canonical name, value, the range expected, and the likely cause.

Checks (thresholds in ``config.yaml: plausibility.thresholds``; formulas in docs/plausibility.md)

``bounds``
    The codebook's ``min``/``max``/``positive`` in the raw unit (the one source of truth the
    ingest also uses; here it catches replacement values and tables built without the ingest).
``swap``
    Two columns of one file with the same unit whose values fit each other's neighbouring years
    (same city, adjacent years) ``swap_factor`` times better than their own.
``column``
    A column of one file (one variable × one data year) whose level, relative to the
    neighbouring years across cities, is off by at least ``column_factor``: the year effect
    ``f_t = median_c(y_ct − median_s y_cs)`` minus its robust (Theil–Sen) line over the years.
``decimal_shift``
    One cell whose ratio to both of the same city's neighbouring years is 10^k (k ≠ 0, within
    ``power_tolerance`` decades) while the two neighbours agree with each other, and whose
    residual against the city's trend is at least ``z_shift`` robust units.
``jump``
    A cell far from its city's own robust trend: residual ``e_ct = y_ct − f_t − (a_c + b_c t)``
    (Theil–Sen line per city after removing the year effect), robust ``z = e / s`` with ``s`` the
    larger of the variable's and the city's 1.4826 × median |e|; flagged when ``|z| ≥ z_jump``
    and, for levels, the cell is at least ``min_factor`` times off its expected value.
``cross_city``
    A cell far from the other cities of the same year: ``z = (y_ct − median_c y_ct) / (1.4826
    MAD)`` with ``|z| ≥ z_cross`` and, for levels, at least ``min_factor`` times off the median.

Here ``y`` is the log of the raw value for levels and shares (units with a non-negative range)
and the raw value itself for signed rates (``%`` with a negative minimum, e.g. growth rates).

A corrections file (``plausibility.corrections``) confirms a value as right (its findings are
dropped) or replaces it (the corrected value flows to the panel). Importing this module is
cheap: numpy and pandas are imported inside the functions.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from nqp_resilience.errors import ConfigError, DataError, ProjectError

#: Order of the checks: a cell flagged by an earlier check is reported once, under that check.
CHECKS = ("bounds", "swap", "column", "decimal_shift", "jump", "cross_city")
#: Columns of the corrections file, in order.
CORRECTION_COLUMNS = ("file_or_source", "city_code", "year", "variable", "action", "value", "note")
#: Columns of the findings table (results/audit/plausibility.csv).
FINDING_COLUMNS = (
    "check",
    "file",
    "line",
    "city_code",
    "city_name",
    "year",
    "header",
    "variable",
    "value",
    "unit",
    "expected",
    "cause",
    "score",
    "table",
)
#: Raw units of counts: values below ``min_count`` are too small for ratio checks.
COUNT_UNITS = ("件", "个", "台", "人", "户", "部")
#: How many findings the stop message prints in full.
FULL_IN_MESSAGE = 10
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the checks (``config.yaml: plausibility.thresholds``; defaults from principle).

    Attributes
    ----------
    z_jump : float
        Robust z of a cell against its city's own trend (6: about 1 in 500 million cells of a
        normal series).
    z_cross : float
        Robust z of a cell across the cities of its year (6).
    z_shift : float
        Minimum robust z (against the variable's pooled spread) of a cell whose ratio to both
        neighbouring years is a power of ten (3: the power-of-ten pattern is the evidence).
    min_factor : float
        A level is flagged by ``jump`` or ``cross_city`` only if it is at least this factor off
        its expected value (3: below the ×10 of any decimal or unit mistake).
    column_factor : float
        A column (variable × data year) is flagged when its level is this factor off the
        neighbouring years (5: half a decade; a whole column never moves so much in a year).
    power_tolerance : float
        Distance, in decades (log10 units), within which a ratio counts as a power of ten
        (0.15: a factor 1.41).
    swap_factor : float
        Two columns are swapped when each fits the other's neighbouring years this many times
        better (median absolute log deviation) than its own (3).
    min_count : float
        Counts (件, 个, 台, 人) below this are not judged by ratios (10: a count n varies by about
        1/√n, a third at 10).
    min_years : int
        Observed years a city's series needs for the trend checks (5).
    min_cities : int
        Observed cities a year needs for the column and cross-city checks (20).
    """

    z_jump: float = 6.0
    z_cross: float = 6.0
    z_shift: float = 5.0
    min_factor: float = 3.0
    column_factor: float = 5.0
    power_tolerance: float = 0.15
    swap_factor: float = 3.0
    min_count: float = 10.0
    min_years: int = 5
    min_cities: int = 20

    @classmethod
    def from_config(cls, options: dict | None) -> Thresholds:
        """From the ``thresholds`` mapping of the config (missing keys take the defaults)."""
        options = dict(options or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ConfigError(
                f"plausibility.thresholds.{unknown[0]}",
                "unknown key",
                hint=f"allowed keys: {', '.join(known)}",
            )
        return cls(
            **{
                k: (int(v) if k in ("min_years", "min_cities") else float(v))
                for k, v in options.items()
            }
        )


def normalise_config(config: dict) -> dict:
    """Expand the shorthand ``plausibility: warn`` (or ``stop``) to ``{action: warn}`` in place,
    so that the schema sees the full form; returns ``config``."""
    value = config.get("plausibility") if isinstance(config, dict) else None
    if isinstance(value, str):
        config["plausibility"] = {"action": value.strip()}
    return config


@dataclass
class TableInput:
    """One ingested table and where it came from.

    Attributes
    ----------
    name : str
        The interim table name, e.g. ``yearbook_2015`` or ``patents``.
    source : str
        Its codebook source, e.g. ``yearbook``.
    file : str
        The raw file it was ingested from.
    data : pandas.DataFrame
        The ingested table: keys, canonical variables, ``source_line``.
    headers : Mapping
        Canonical name -> the header of that column in the raw file (codebook's first header
        where unknown); :class:`RawHeaders` reads them from the raw file only when asked.
    """

    name: str
    source: str
    file: str
    data: object
    headers: Mapping = field(default_factory=dict)


@dataclass
class Finding:
    """One implausible value (or column), with everything needed to find and judge it."""

    check: str
    file: str
    line: str
    city_code: str
    city_name: str
    year: str
    header: str
    variable: str
    value: float | None
    unit: str
    expected: str
    cause: str
    score: float
    table: str

    def where(self) -> str:
        """File, line, city, year and column as one readable phrase."""
        kind = "row" if self.file.lower().endswith(".xlsx") else "line"
        parts = [f"file {self.file}", f"{kind} {self.line}" if self.line else ""]
        if self.city_code:
            parts.append(f"city {self.city_code} {self.city_name}".rstrip())
        elif self.city_name:
            parts.append(self.city_name)
        if self.year:
            parts.append(f"year {self.year}")
        parts.append(f"column {self.header!r} ({self.variable})")
        return ", ".join(p for p in parts if p)

    def full_text(self) -> str:
        """The finding in full, as the stop message and the audit print it."""
        value = "—" if self.value is None else _fmt(self.value)
        return (
            f"{self.where()}:\n    value {value} {self.unit}; expected {self.expected}\n"
            f"    likely cause: {self.cause} [{self.check}]"
        )


@dataclass
class Correction:
    """One row of the corrections file, resolved to a table and cells."""

    line: int
    file_or_source: str
    table: str
    city_code: str
    year: int | None
    variable: str
    action: str
    value: float | None
    note: str
    old_value: float | None = None
    cells: int = 0


@dataclass
class Result:
    """The outcome of :func:`check_tables`.

    Attributes
    ----------
    tables : dict of str -> DataFrame
        The tables with replacements applied (same layout as the ingested ones).
    findings : list of Finding
        Every finding not confirmed by the corrections file.
    confirmed : list of Finding
        Findings on cells the corrections file confirms.
    corrections : list of Correction
        Every correction applied.
    cells_checked : int
        Non-missing cells examined.
    thresholds : Thresholds
    """

    tables: dict
    findings: list
    confirmed: list
    corrections: list
    cells_checked: int
    thresholds: Thresholds


class PlausibilityError(ProjectError):
    """Implausible values found: the run stops before the panel is built."""

    def __init__(
        self,
        result: Result,
        corrections_path: str = "resources/corrections.csv",
        audit_path: str = "results/audit/plausibility.md",
    ):
        self.result = result
        self.findings = list(result.findings)
        super().__init__(stop_message(result, corrections_path, audit_path))


# --------------------------------------------------------------------------- text helpers


def _fmt(x: float) -> str:
    """A number as a person would type it: up to 4 significant digits, thousands separators."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e4:
        return f"{x:,.0f}"
    if ax >= 1:
        return f"{x:,.4g}" if ax < 1000 else f"{x:,.0f}"
    return f"{x:.3g}"


def _times(ratio: float) -> str:
    if ratio >= 1:
        return f"×{ratio:,.0f}" if ratio >= 100 else f"×{ratio:.3g}"
    return f"×{ratio:.2g}"


def _power_text(k: int) -> str:
    return f"×{10.0**k:,.0f}" if k > 0 else f"×{10.0**k:g}"


def unit_cause(unit: str, k: int) -> str:
    """The likely cause of a value ``10**k`` times what its raw ``unit`` implies.

    Examples: ``unit_cause("万人", 4)`` is "looks like persons (人), not 万人 (×10,000)";
    ``unit_cause("%", -2)`` is "looks like a fraction, not % (×0.01)".
    """
    factor = _power_text(k)
    base_names = {"人": "persons (人)", "元": "元", "美元": "美元", "户": "households (户)"}
    if unit == "%":
        if k == -2:
            return f"looks like a fraction, not % ({factor})"
        if k == 1:
            return f"decimal point shifted, or ‰ instead of % ({factor})"
    if unit.startswith("万") and len(unit) > 1:
        base = unit[1:]
        if k == 4:
            return f"looks like {base_names.get(base, base)}, not {unit} ({factor})"
        if k == -4:
            return f"looks like 亿{base}, not {unit} ({factor})"
    if unit in ("人", "元", "吨", "件", "个", "台", "户"):
        if k == -4:
            return f"looks like 万{unit}, not {unit} ({factor})"
        if k == -3 and unit == "元":
            return f"looks like 千元, not 元 ({factor})"
    if unit == "公里" and k == 3:
        return f"looks like metres, not km ({factor})"
    if unit == "米" and k == -3:
        return f"looks like km, not metres ({factor})"
    if k == 1:
        return f"decimal point shifted, or a digit added ({factor})"
    if k == -1:
        return f"decimal point shifted, or a digit dropped ({factor})"
    return f"off by a power of ten ({factor}): check the unit of the column and the decimal point"


def _unit_powers(unit: str) -> list[int]:
    """Powers of ten a value of ``unit`` is typically off by when a unit is mixed up, most
    specific first (万-units: ×10⁴ or ×10⁻⁴; %: ×0.01; metres and km: ×10³), then any other."""
    first = []
    if unit.startswith("万"):
        first = [4, -4]
    elif unit == "%":
        first = [-2]
    elif unit in ("人", "元", "吨", "件", "个", "台", "户"):
        first = [-4]
    elif unit in ("米", "公里"):
        first = [-3, 3]
    return first + [k for k in (-6, -5, -4, -3, -2, 2, 3, 4, 5, 6) if k not in first]


def _nearest_power(log10_ratio: float, tolerance: float) -> int | None:
    """``k`` if ``log10_ratio`` is within ``tolerance`` of the integer ``k != 0``, else None."""
    if not math.isfinite(log10_ratio):
        return None
    k = int(round(log10_ratio))
    return k if k != 0 and abs(log10_ratio - k) <= tolerance else None


# --------------------------------------------------------------------------- variable kinds


def variable_kind(var) -> str:
    """``signed`` (a % rate that may be negative: linear scale), ``share`` (a % with a
    non-negative range: log scale) or ``level`` (any other quantity: log scale)."""
    if var.unit == "%":
        return "signed" if var.min is not None and var.min < 0 else "share"
    return "level"


# --------------------------------------------------------------------------- robust statistics


def nanmedian(a, axis=None, keepdims=False):
    """``numpy.nanmedian`` of a float array, bit for bit, without its masked-array path.

    Along an axis shorter than 600 of an array of two or more dimensions, numpy computes the
    median through ``numpy.ma`` (about 4 ms a call on a city x year matrix: most of the
    plausibility job on a county panel). This does the same steps on plain arrays: NaN replaced
    by +inf, the two middle values of the non-NaN entries of each sorted slice (one value
    twice when their count is odd), summed from 0.0 and divided by 2; NaN where a slice has no
    value (numpy's result, without its warning). Every other call (one dimension, no axis, a
    long or empty axis, an infinite value) is numpy's own.
    """
    import numpy as np

    a = np.asarray(a, dtype=float)
    if axis is None or a.ndim < 2 or not 0 < a.shape[axis] < 600 or np.isinf(a).any():
        return np.nanmedian(a, axis=axis, keepdims=keepdims)
    missing = np.isnan(a)
    # one slice per row, NaN sorted last as +inf
    rows = np.moveaxis(np.where(missing, np.inf, a), axis, -1)
    shape = rows.shape[:-1]
    rows = rows.reshape(-1, rows.shape[-1])
    n = np.sum(~missing, axis=axis).reshape(-1)
    # the middle values of the sorted slices: only the values at the two middle positions
    # matter (equal values are equal, and the sum from 0.0 below turns a -0.0 into 0.0 whichever
    # of 0.0 and -0.0 lands there), so they are numpy's; numpy's sort is faster than argsort
    # and than partition at positions that differ between slices
    s = np.sort(rows, axis=1)
    at = np.arange(len(rows))
    lo, hi = s[at, np.maximum((n - 1) // 2, 0)], s[at, np.maximum(n // 2, 0)]
    # numpy's sum of the two starts from 0.0, which turns a -0.0 median into 0.0
    med = np.where(n > 0, (0.0 + lo + hi) / 2.0, np.nan)
    med = med.reshape(shape)
    return np.expand_dims(med, axis) if keepdims else med


def column_medians(x):
    """``numpy.median`` of the non-NaN values of each column of ``x`` (n, T), bit for bit, for
    all columns at once (NaN for a column without values): the middle values of each sorted
    column, the mean of the two middle ones as numpy takes it, (lo + hi) / 2."""
    import numpy as np

    cols = np.asarray(x, dtype=float).T
    if cols.shape[1] == 0:
        return np.full(len(cols), np.nan)
    n = np.sum(~np.isnan(cols), axis=1)
    s = np.sort(np.where(np.isnan(cols), np.inf, cols), axis=1)
    at = np.arange(len(cols))
    lo, hi = s[at, np.maximum((n - 1) // 2, 0)], s[at, np.maximum(n // 2, 0)]
    with np.errstate(invalid="ignore"):
        out = np.where(n % 2 == 1, lo, (lo + hi) / 2.0)
    out[n == 0] = np.nan
    return out


def _mad_scale(a, axis=None):
    import numpy as np

    with np.errstate(all="ignore"):
        med = nanmedian(a, axis=axis, keepdims=True)
        return 1.4826 * nanmedian(np.abs(a - med), axis=axis)


def theil_sen(t, y):
    """Theil–Sen lines of many series at once.

    Parameters
    ----------
    t : array (T,)
        Times.
    y : array (n, T)
        One series per row, ``nan`` where missing.

    Returns
    -------
    intercept, slope : arrays (n,)
        ``slope`` is the median of the pairwise slopes (y_j − y_i)/(t_j − t_i); ``intercept`` the
        median of y − slope·t. ``nan`` for rows with fewer than two observations.
    """
    import numpy as np

    y = np.asarray(y, dtype=float)
    t = np.asarray(t, dtype=float)
    i, j = np.triu_indices(len(t), k=1)
    with np.errstate(all="ignore"), _quiet():
        slopes = (y[:, j] - y[:, i]) / (t[j] - t[i])
        slope = nanmedian(slopes, axis=1)
        intercept = nanmedian(y - slope[:, None] * t[None, :], axis=1)
    return intercept, slope


class _quiet:
    """Silence numpy's 'All-NaN slice' warnings (rows without data are expected)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# --------------------------------------------------------------------------- loading


def raw_headers(path, source) -> dict:
    """Canonical variable -> the header it has in the raw file ``path`` (empty if unreadable)."""
    from nqp_resilience.data.io import read_raw_table

    try:
        table = read_raw_table(path, header_only=True)
    except (ProjectError, OSError):
        return {}
    lookup = source.header_lookup()
    out = {}
    for header in table.header:
        kind, name = lookup.get(header, ("", ""))
        if kind == "var":
            out[name] = header
    return out


class RawHeaders(Mapping):
    """:func:`raw_headers` of a raw file, read the first time a header is asked for: only a
    finding names one, and most runs have none, so the raw files (and openpyxl for a workbook)
    are not read again after the ingest jobs."""

    def __init__(self, path, source):
        self._path, self._source, self._headers = path, source, None

    def _read(self) -> dict:
        if self._headers is None:
            self._headers = raw_headers(self._path, self._source)
        return self._headers

    def __getitem__(self, key):
        return self._read()[key]

    def __iter__(self):
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


def load_inputs(interim_paths, raw_paths, codebook) -> list[TableInput]:
    """The ingested tables with their raw files and raw headers.

    Parameters
    ----------
    interim_paths, raw_paths : sequences of path-like, aligned
        ``results/interim/{name}.parquet`` and the raw file each was ingested from.
    codebook : Codebook
    """
    import pandas as pd

    out = []
    for interim, raw in zip(interim_paths, raw_paths, strict=True):
        name = Path(interim).stem
        source = table_source(name, codebook)
        out.append(
            TableInput(
                name, source, str(raw), pd.read_parquet(interim), RawHeaders(raw, codebook[source])
            )
        )
    return out


def table_source(name: str, codebook) -> str:
    """The codebook source of interim table ``name`` (``yearbook_2015`` -> ``yearbook``)."""
    if name in codebook.sources:
        return name
    base = name.rsplit("_", 1)[0]
    if base in codebook.sources:
        return base
    raise DataError(
        name,
        f"no codebook source for the interim table {name!r}",
        expected=f"one of {sorted(codebook.sources)} (yearbook tables as yearbook_YEAR)",
    )


# --------------------------------------------------------------------------- corrections


def read_corrections(path) -> list[dict]:
    """Rows of the corrections file as dicts with their line numbers (``_line``).

    Lines starting with ``#`` and blank lines are comments. The header must name the columns of
    :data:`CORRECTION_COLUMNS` (``note`` may be absent).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(
            path,
            "the corrections file does not exist",
            expected="a CSV with the header " + ",".join(CORRECTION_COLUMNS),
            hint="create it with only that header line, "
            "or set plausibility.corrections in config.yaml",
        )
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    rows, header = [], None
    for number, text in enumerate(lines, start=1):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        cells = next(csv.reader([text]))
        cells = [c.strip() for c in cells]
        if header is None:
            header = cells
            missing = [c for c in CORRECTION_COLUMNS if c != "note" and c not in header]
            unknown = [c for c in header if c not in CORRECTION_COLUMNS]
            if missing or unknown:
                raise DataError(
                    path,
                    f"header {header} is not the corrections header",
                    row=f"line {number}",
                    column=(missing or unknown)[0],
                    expected="the columns " + ",".join(CORRECTION_COLUMNS),
                    hint="see the comment block at the top of resources/corrections.csv",
                )
            continue
        if len(cells) > len(header):
            raise DataError(
                path,
                f"{len(cells)} cells but {len(header)} columns",
                row=f"line {number}",
                expected="one cell per column; quote a note that contains commas",
            )
        row = dict(zip(header, cells + [""] * (len(header) - len(cells)), strict=True))
        row["_line"] = number
        rows.append(row)
    return rows


def _match_table(spec: str, year: int | None, tables: list[TableInput]) -> list[TableInput]:
    spec = spec.strip().replace("\\", "/")
    exact = [t for t in tables if t.name == spec]
    if exact:
        return exact
    by_file = [
        t
        for t in tables
        if t.file.replace("\\", "/") == spec
        or t.file.replace("\\", "/").endswith("/" + spec)
        or Path(t.file).name == spec
    ]
    if by_file:
        return by_file
    by_source = [t for t in tables if t.source == spec]
    if len(by_source) > 1 and year is not None:
        by_source = [
            t for t in by_source if "year" not in t.data.columns and t.name.endswith(f"_{year}")
        ]
    return by_source


def resolve_corrections(
    rows: list[dict], tables: list[TableInput], codebook, path
) -> list[Correction]:
    """Check every correction row against the tables; each must match at least one cell.

    Raises
    ------
    DataError
        Naming the corrections file, its line, the column and what was expected, for an unknown
        file/source, variable, action or city, a missing or non-numeric value, a row that matches
        no cell, a confirmation whose value differs from the cell, or two rows on one cell.
    """
    import numpy as np

    from nqp_resilience.data.cities import normalise_code
    from nqp_resilience.data.io import parse_number

    out: list[Correction] = []
    seen: dict[tuple, int] = {}
    for row in rows:
        line = row["_line"]
        where = f"line {line}"

        def fail(problem, column, expected, hint=None, *, where=where):
            raise DataError(path, problem, row=where, column=column, expected=expected, hint=hint)

        action = row.get("action", "").strip().lower()
        if action not in ("confirm", "replace"):
            fail(f"action {row.get('action', '')!r} not understood", "action", "confirm or replace")
        year = None
        if row.get("year", "").strip():
            try:
                year = int(parse_number(row["year"]))
            except (ValueError, TypeError):
                fail(
                    f"year {row['year']!r} is not a whole number",
                    "year",
                    "a four-digit year, or blank",
                )
        matches = _match_table(row.get("file_or_source", ""), year, tables)
        if not matches:
            fail(
                f"no ingested table matches {row.get('file_or_source', '')!r}",
                "file_or_source",
                "a raw file (e.g. yearbook/city_yearbook_2015.csv), its file name, "
                "or an interim table name (e.g. yearbook_2015, patents)",
                hint="known tables: " + ", ".join(t.name for t in tables),
            )
        if len(matches) > 1:
            fail(
                f"{row['file_or_source']!r} matches {len(matches)} tables",
                "file_or_source",
                "one table",
                hint="add the year, or name the file (e.g. yearbook/city_yearbook_2015.csv)",
            )
        table = matches[0]
        source = codebook[table.source]
        variable = row.get("variable", "").strip()
        if variable not in source.variables:
            lookup = source.header_lookup()
            from nqp_resilience.data.io import normalise_text

            kind, name = lookup.get(normalise_text(variable), ("", ""))
            if kind != "var":
                fail(
                    f"unknown variable {variable!r} for source {table.source!r}",
                    "variable",
                    "a canonical name or raw header of resources/codebook.yaml",
                    hint=source.closest(variable) and f"closest: {source.closest(variable)}",
                )
            variable = name
        var = source.variables[variable]
        df = table.data
        mask = np.ones(len(df), dtype=bool)
        city = row.get("city_code", "").strip()
        if city:
            if "city_code" not in df.columns:
                fail(f"{table.name} has no cities, but city_code is {city!r}", "city_code", "blank")
            city = normalise_code(city)
            mask &= (df["city_code"] == city).to_numpy()
        if year is not None:
            if "year" not in df.columns:
                fail(f"{table.name} has no years, but year is {year}", "year", "blank")
            mask &= (df["year"] == year).to_numpy()
        if variable not in df.columns:
            fail(f"{table.name} has no column {variable!r}", "variable", "a column of that file")
        value = None
        text = row.get("value", "").strip()
        if text:
            try:
                value = parse_number(text)
            except ValueError:
                value = math.nan
            if math.isnan(value):
                fail(f"value {text!r} is not a number", "value", f"a number in {var.unit}")
        n = int(mask.sum())
        if action == "replace":
            if value is None:
                fail(
                    "a replace row needs a value",
                    "value",
                    f"the right value in {var.unit} (the raw unit)",
                )
            if n != 1:
                fail(
                    f"a replace row must match exactly one cell; it matches {n}",
                    "city_code" if n > 1 else "file_or_source",
                    "file, city_code and year that identify one record",
                    hint=None if n else "check the city code and year: no such record in that file",
                )
        if n == 0:
            fail(
                f"the correction matches no cell of {table.name} ({table.file})",
                "city_code",
                "a city and year present in that file",
                hint="remove the row if the value it corrected has been fixed in the raw file",
            )
        current = df.loc[mask, variable].to_numpy(dtype=float) / var.factor
        if action == "confirm":
            if np.isnan(current).all():
                fail("the confirmed cell is missing in the data", "value", "a cell with a value")
            if value is not None and not np.allclose(
                current[~np.isnan(current)], value, rtol=1e-6, atol=0
            ):
                fail(
                    f"the confirmed value {_fmt(value)} differs from the cell "
                    f"({_fmt(float(current[0]))})",
                    "value",
                    "the value now in the file, or a blank value",
                    hint="the raw value changed since it was confirmed: check it again",
                )
        key_rows = np.flatnonzero(mask)
        for r in key_rows:
            key = (table.name, int(r), variable)
            if key in seen:
                fail(
                    f"a second correction for the same cell (first on line {seen[key]})",
                    "city_code",
                    "one correction per cell",
                )
            seen[key] = line
        out.append(
            Correction(
                line,
                row.get("file_or_source", ""),
                table.name,
                city,
                year,
                variable,
                action,
                value,
                row.get("note", ""),
                old_value=float(current[0]) if n == 1 else None,
                cells=n,
            )
        )
    return out


# --------------------------------------------------------------------------- the checks


@dataclass
class _Matrix:
    """One city-year variable as a (city × year) matrix in the raw unit, with provenance."""

    var: object
    kind: str
    cities: list
    years: list
    x: object  # raw values (n, T)
    line: object  # source line (n, T), -1 where no record
    table: object  # index into tables (n, T), -1 where no record
    excluded: object  # cells not to flag again (n, T) bool


def check_tables(
    tables: list[TableInput],
    codebook,
    thresholds: Thresholds | None = None,
    corrections: list[dict] | None = None,
    city_names: dict | None = None,
    corrections_path="corrections",
) -> Result:
    """Apply the corrections, then run every check on the ingested tables.

    Parameters
    ----------
    tables : list of TableInput
    codebook : Codebook
    thresholds : Thresholds, optional
    corrections : list of dict, optional
        Rows of the corrections file (:func:`read_corrections`).
    city_names : dict, optional
        city_code -> name, for messages.
    corrections_path : str
        Named in errors about the corrections.

    Returns
    -------
    Result
    """
    import numpy as np

    th = thresholds or Thresholds()
    names = city_names or {}
    resolved = resolve_corrections(corrections or [], tables, codebook, corrections_path)
    # the headers are read-only (and read lazily): shared, not copied
    tables = [TableInput(t.name, t.source, t.file, t.data.copy(), t.headers) for t in tables]
    by_name = {t.name: t for t in tables}
    confirmed_cells: set[tuple] = set()  # (table, row index, variable)
    confirmed_columns: set[tuple] = set()  # (table, variable, year or None)
    for c in resolved:
        t = by_name[c.table]
        df = t.data
        var = codebook[t.source].variables[c.variable]
        mask = np.ones(len(df), dtype=bool)
        if c.city_code:
            mask &= (df["city_code"] == c.city_code).to_numpy()
        if c.year is not None:
            mask &= (df["year"] == c.year).to_numpy()
        rows = np.flatnonzero(mask)
        if c.action == "replace":
            df.loc[df.index[rows[0]], c.variable] = c.value * var.factor
        else:
            confirmed_cells.update((t.name, int(r), c.variable) for r in rows)
            if not c.city_code and "city_code" in df.columns:
                confirmed_columns.add((t.name, c.variable, c.year))

    findings: list[Finding] = []
    cells = 0
    for t in tables:
        source = codebook[t.source]
        for name, var in source.variables.items():
            if name in t.data.columns:
                cells += int(t.data[name].notna().sum())
                findings += _bounds(t, var, names)

    flagged = {(f.table, f.line, f.variable) for f in findings}
    for sname, source in codebook.sources.items():
        group = [t for t in tables if t.source == sname]
        if not group:
            continue
        if source.grain == "city_year":
            findings += _city_year_checks(group, source, th, names, flagged)
        elif source.grain == "city":
            for t in group:
                findings += _cross_section(t, source, th, names, flagged)
        else:
            for t in group:
                findings += _national_series(t, source, th, flagged)

    kept, confirmed = [], []
    for f in findings:
        t = by_name[f.table]
        if _is_confirmed(f, t, confirmed_cells, confirmed_columns):
            confirmed.append(f)
        else:
            kept.append(f)
    kept.sort(key=_finding_order)
    confirmed.sort(key=_finding_order)
    return Result({t.name: t.data for t in tables}, kept, confirmed, resolved, cells, th)


def _finding_order(f: Finding):
    line = int(f.line) if f.line.isdigit() else -1
    return (f.file, f.variable, f.year, line, f.city_code, CHECKS.index(f.check))


def _is_confirmed(f: Finding, t: TableInput, cells: set, columns: set) -> bool:
    if f.check in ("column", "swap"):
        year = int(f.year) if f.year.isdigit() else None
        return (t.name, f.variable, None) in columns or (t.name, f.variable, year) in columns
    if not f.line.isdigit():
        return False
    rows = (t.data["source_line"] == int(f.line)).to_numpy().nonzero()[0]
    return any((t.name, int(r), f.variable) in cells for r in rows)


def _finding(
    check, t: TableInput, var, line, city, names, year, value, expected, cause, score
) -> Finding:
    return Finding(
        check=check,
        file=t.file,
        line=str(line),
        city_code=str(city or ""),
        city_name=names.get(city, "") if city else "",
        year=str(year if year is not None else ""),
        header=t.headers.get(var.name, var.headers[0]),
        variable=var.name,
        value=None if value is None else float(value),
        unit=var.unit,
        expected=expected,
        cause=cause,
        score=float(score),
        table=t.name,
    )


def _bounds(t: TableInput, var, names) -> list[Finding]:
    import numpy as np

    df = t.data
    raw = df[var.name].to_numpy(dtype=float) / var.factor
    lo = var.min if var.min is not None else (0.0 if var.positive else -np.inf)
    hi = var.max if var.max is not None else np.inf
    with np.errstate(invalid="ignore"):
        bad = (raw < lo) | (raw > hi) | ((raw <= 0) if var.positive else False)
    out = []
    for r in np.flatnonzero(bad):
        value = float(raw[r])
        if value < 0 and (var.positive or (var.min is not None and var.min >= 0)):
            cause = "sign error: a negative value of a quantity that cannot be negative"
        elif value == 0 and var.positive:
            cause = "zero where a positive value is needed (a blank cell typed as 0?)"
        else:
            cause = "outside the codebook range"
            for k in (1, 2, 3, 4):
                if lo <= value / 10**k <= hi:
                    cause = f"outside the codebook range; {unit_cause(var.unit, k)}"
                    break
        expected = _bounds_text(var)
        city = df["city_code"].iat[r] if "city_code" in df.columns else ""
        year = int(df["year"].iat[r]) if "year" in df.columns else None
        out.append(
            _finding(
                "bounds",
                t,
                var,
                int(df["source_line"].iat[r]),
                city,
                names,
                year,
                value,
                expected,
                cause,
                0.0,
            )
        )
    return out


def _bounds_text(var) -> str:
    parts = []
    if var.min is not None:
        parts.append(f"≥ {_fmt(var.min)}")
    elif var.positive:
        parts.append("> 0")
    if var.max is not None:
        parts.append(f"≤ {_fmt(var.max)}")
    return " and ".join(parts) + f" {var.unit} (codebook)"


def _matrices(group: list[TableInput], source, flagged: set):
    """One :class:`_Matrix` per variable of a city-year source, across the source's tables."""
    import numpy as np
    import pandas as pd

    frames = []
    for i, t in enumerate(group):
        df = t.data.copy()
        df["_table"] = i
        frames.append(df)
    long = pd.concat(frames, ignore_index=True)
    cities = sorted(long["city_code"].unique())
    years = sorted(int(y) for y in long["year"].unique())
    ci = np.searchsorted(cities, long["city_code"].to_numpy())
    ti = np.searchsorted(years, long["year"].to_numpy())
    shape = (len(cities), len(years))
    line = np.full(shape, -1, dtype=np.int64)
    table = np.full(shape, -1, dtype=np.int64)
    line[ci, ti] = long["source_line"].to_numpy()
    table[ci, ti] = long["_table"].to_numpy()
    # the flagged cells of each variable: (table name, source line as written) -> cell mask
    flagged_by_variable: dict[str, list[tuple[str, str]]] = {}
    for table_name, line_text, variable in flagged:
        flagged_by_variable.setdefault(variable, []).append((table_name, line_text))
    out = {}
    for name, var in source.variables.items():
        if name not in long.columns:
            continue
        x = np.full(shape, np.nan)
        x[ci, ti] = long[name].to_numpy(dtype=float) / var.factor
        excluded = np.zeros(shape, dtype=bool)
        for table_name, line_text in flagged_by_variable.get(name, ()):
            # a cell is excluded when its table's name and str(its line) are the flagged ones
            try:
                number = int(line_text)
            except ValueError:
                continue
            if str(number) != line_text:
                continue
            for k, t in enumerate(group):
                if t.name == table_name:
                    excluded |= (table == k) & (line == number)
        out[name] = _Matrix(var, variable_kind(var), cities, years, x, line, table, excluded)
    return out


def _transform(m: _Matrix, min_count: float = 0.0):
    """The scale the checks work on: log of positive values (levels, shares), raw (signed).

    Counts (raw units of :data:`COUNT_UNITS`) below ``min_count`` are left out: a count n has a
    relative noise of about 1/√n, so the ratios the checks rest on mean little for small counts.
    """
    import numpy as np

    y = m.x.copy()
    y[m.excluded] = np.nan
    if m.kind == "signed":
        return y
    floor = min_count if m.var.unit in COUNT_UNITS else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((y > 0) & (y >= floor), np.log(y), np.nan)


def _city_year_checks(
    group: list[TableInput], source, th: Thresholds, names, flagged
) -> list[Finding]:
    import numpy as np

    mats = _matrices(group, source, flagged)
    findings: list[Finding] = []
    ys = {name: _transform(m, th.min_count) for name, m in mats.items()}
    findings += _swaps(mats, ys, group, th, names)
    for name, m in mats.items():
        y = ys[name]
        found, y = _columns(m, y, group, th, names)
        findings += found
        done = np.zeros(m.x.shape, dtype=bool)
        year_effect = _year_effect(m, y, th)
        z, resid, expected, s_var = _trend_residuals(m, y, year_effect, th)
        for f, (c, t) in _decimal_shifts(m, y, year_effect, resid, s_var, group, th, names):
            findings.append(f)
            done[c, t] = True
        for f, (c, t) in _jumps(m, y, year_effect, z, resid, expected, group, th, names, done):
            findings.append(f)
            done[c, t] = True
        findings += _cross_city(m, y, group, th, names, done)
    return findings


def _cell(m: _Matrix, group, c, t):
    """The table, line, city and year of cell (c, t)."""
    return group[m.table[c, t]], int(m.line[c, t]), m.cities[c], m.years[t]


def _value_text(m: _Matrix, lo: float, hi: float) -> str:
    """The range [lo, hi] on the check scale, as raw values."""
    if m.kind == "signed":
        return f"{_fmt(lo)} to {_fmt(hi)} {m.var.unit}"
    return f"{_fmt(math.exp(lo))} to {_fmt(math.exp(hi))} {m.var.unit}"


def _swaps(mats: dict, ys: dict, group, th: Thresholds, names) -> list[Finding]:
    """Pairs of same-unit columns of one file whose values belong to each other's series."""
    import numpy as np

    out = []
    level = [n for n, m in mats.items() if m.kind != "signed"]
    if not level:
        return out
    years = mats[level[0]].years
    # expectation of each cell from the same city's neighbouring years (mean of the logs)
    nb = {}
    for n in level:
        y = ys[n]
        prev = np.full(y.shape, np.nan)
        nxt = np.full(y.shape, np.nan)
        prev[:, 1:], nxt[:, :-1] = y[:, :-1], y[:, 1:]
        with _quiet():
            nb[n] = np.nanmean(np.stack([prev, nxt]), axis=0)
    pairs = [
        (a, b)
        for a_i, a in enumerate(level)
        for b in level[a_i + 1 :]
        if mats[a].var.unit == mats[b].var.unit
    ]
    # per pair, for every year at once: the cities where both columns and both expectations
    # exist, and the median deviations of each column from its own and from the other's
    deviations = {}
    for a, b in pairs:
        ok = ~np.isnan(ys[a]) & ~np.isnan(ys[b]) & ~np.isnan(nb[a]) & ~np.isnan(nb[b])
        with np.errstate(invalid="ignore"):
            deviations[a, b] = (
                ok.sum(axis=0),
                *(
                    column_medians(np.where(ok, np.abs(ys[u] - nb[v]), np.nan))
                    for u, v in ((a, a), (b, b), (a, b), (b, a))
                ),
            )
    set_aside = set()
    for t in range(len(years)):
        for a, b in pairs:
            ma, mb = mats[a], mats[b]
            n_ok, aa, bb, ab, ba = deviations[a, b]
            # a column found swapped in this year is set aside (no cities left to compare)
            if n_ok[t] < th.min_cities or (a, t) in set_aside or (b, t) in set_aside:
                continue
            own, cross = min(aa[t], bb[t]), max(ab[t], ba[t])
            if own < math.log(th.min_factor) / 2 or cross * th.swap_factor > own:
                continue
            tables = {int(ma.table[c, t]) for c in np.flatnonzero(ma.table[:, t] >= 0)}
            for ti in sorted(tables):
                tab = group[ti]
                rows = ma.table[:, t] == ti
                lines = ma.line[rows, t]
                for this, other in ((ma, mb), (mb, ma)):
                    other_header = tab.headers.get(other.var.name, other.var.headers[0])
                    cause = (
                        f"looks swapped with column {other_header!r} ({other.var.name}) "
                        f"in this file: "
                        f"its values fit that column's neighbouring years (median deviation "
                        f"{_times(math.exp(cross))}) far better than their own "
                        f"({_times(math.exp(own))})"
                    )
                    f = _finding(
                        "swap",
                        tab,
                        this.var,
                        _line_range(lines),
                        "",
                        names,
                        years[t],
                        None,
                        f"values in line with the neighbouring years of {this.var.name}",
                        cause,
                        own / max(cross, 1e-12),
                    )
                    f.city_name = f"{int(rows.sum())} cities"
                    out.append(f)
            for this in (ma, mb):
                ys[this.var.name][:, t] = np.nan
                this.excluded[:, t] = True
                set_aside.add((this.var.name, t))
    return out


def _line_range(lines) -> str:
    lines = sorted(int(x) for x in lines if x >= 0)
    if not lines:
        return ""
    return f"{lines[0]}–{lines[-1]}" if len(lines) > 1 else str(lines[0])


def _year_effect(m: _Matrix, y, th: Thresholds):
    """``f_t``: the year's median across cities of the cell minus the city's own median."""
    import numpy as np

    with _quiet():
        if m.kind == "signed":
            f = nanmedian(y, axis=0)
        else:
            f = nanmedian(y - nanmedian(y, axis=1, keepdims=True), axis=0)
    n = np.sum(~np.isnan(y), axis=0)
    f[n < th.min_cities] = np.nan
    return f


def _columns(m: _Matrix, y, group, th: Thresholds, names):
    """Columns (one variable × one data year) off by ``column_factor`` from the neighbouring
    years."""
    import numpy as np

    out = []
    years = np.asarray(m.years, dtype=float)
    with _quiet():
        if m.kind == "signed":
            level = np.log(nanmedian(np.abs(y), axis=0))
        else:
            level = nanmedian(y - nanmedian(y, axis=1, keepdims=True), axis=0)
    n = np.sum(~np.isnan(y), axis=0)
    level[n < th.min_cities] = np.nan
    if np.sum(~np.isnan(level)) < 3:
        return out, y
    a, b = theil_sen(years, level[None, :])
    dev = level - (a[0] + b[0] * years)
    y = y.copy()
    for t in np.flatnonzero(np.abs(dev) >= math.log(th.column_factor)):
        ratio = math.exp(dev[t])
        k = _nearest_power(dev[t] / _LN10, th.power_tolerance)
        cause = unit_cause(m.var.unit, k) if k else "the whole column changes level in this year"
        rows = (m.table[:, t] >= 0) & ~np.isnan(y[:, t])
        for ti in sorted({int(v) for v in m.table[rows, t]}):
            tab = group[ti]
            sel = rows & (m.table[:, t] == ti)
            typical = nanmedian(m.x[sel, t])
            f = _finding(
                "column",
                tab,
                m.var,
                _line_range(m.line[sel, t]),
                "",
                names,
                m.years[t],
                float(typical),
                f"a level like the neighbouring years (median ratio to them {_times(ratio)}, "
                f"limit ×{th.column_factor:g})",
                f"{cause}; the value is the column's median",
                dev[t],
            )
            f.city_name = f"{int(sel.sum())} cities"
            out.append(f)
        y[:, t] = np.nan
        m.excluded[:, t] = True
    return out, y


def _trend_residuals(m: _Matrix, y, f, th: Thresholds):
    """Residuals of each city's series about its Theil–Sen line after removing the year effect.

    Returns
    -------
    z : (n, T) robust z, resid : (n, T) residuals, expected : (n, T) the line + year effect on
    the check scale, s_var : the variable's pooled robust spread of residuals.
    """
    import numpy as np

    years = np.asarray(m.years, dtype=float)
    adj = y - np.where(np.isnan(f), 0.0, f)[None, :]
    nobs = np.sum(~np.isnan(adj), axis=1)
    adj_fit = adj.copy()
    adj_fit[nobs < th.min_years] = np.nan
    a, b = theil_sen(years - years.mean(), adj_fit)
    line = a[:, None] + b[:, None] * (years - years.mean())[None, :]
    resid = adj - line
    s_var = _spread(resid)
    with _quiet():
        s_city = 1.4826 * nanmedian(np.abs(resid), axis=1)
    s = np.fmax(s_city, s_var)[:, None]
    with np.errstate(all="ignore"):
        z = resid / s
    expected = line + np.where(np.isnan(f), 0.0, f)[None, :]
    return z, resid, expected, s_var


def _spread(dev, q: float = 0.99) -> float:
    """A robust spread of deviations from a centre: the larger of 1.4826 × median |e| and
    q-quantile(|e|) / Φ⁻¹((1 + q)/2).

    Both equal the standard deviation of normal deviations. The second keeps a variable with
    heavier tails than the normal from being judged against a too-narrow spread, and moves
    little as long as mistakes are fewer than 1 − q of the values.
    """
    from statistics import NormalDist

    import numpy as np

    a = np.abs(dev[~np.isnan(dev)])
    if a.size < 20:
        return math.nan
    s = max(
        1.4826 * float(np.median(a)), float(np.quantile(a, q)) / NormalDist().inv_cdf((1 + q) / 2)
    )
    return s if s > 0 else math.nan


def _linear_trend(m: _Matrix, y, f, th: Thresholds):
    """Each city's Theil–Sen line on the raw scale, as predictions of every cell: a series
    growing linearly from a small base is smooth here even where its logarithm bends sharply."""
    import numpy as np

    years = np.asarray(m.years, dtype=float)
    x = np.where(np.isnan(y), np.nan, m.x)
    nobs = np.sum(~np.isnan(x), axis=1)
    x[nobs < th.min_years] = np.nan
    a, b = theil_sen(years - years.mean(), x)
    return a[:, None] + b[:, None] * (years - years.mean())[None, :]


def _neighbours(y, c, t):
    """The two nearest observed years of city ``c`` around ``t``: both sides if possible."""
    import numpy as np

    row = y[c]
    left = [i for i in range(t - 1, -1, -1) if not np.isnan(row[i])]
    right = [i for i in range(t + 1, len(row)) if not np.isnan(row[i])]
    if left and right:
        return left[0], right[0]
    side = left or right
    return (side[0], side[1]) if len(side) >= 2 else None


def _decimal_shifts(m: _Matrix, y, f, resid, s_var, group, th: Thresholds, names):
    """Cells that are 10^k times both neighbouring years of the same city (neighbours agreeing)."""
    import numpy as np

    if not np.isfinite(s_var):
        return
    with np.errstate(all="ignore"):
        big = np.abs(resid) >= th.z_shift * s_var
    # the neighbours predict the cell only as well as the variable's noise allows: the window
    # around 10^k widens to two spreads for volatile variables (at most 0.3 decades, a factor 2)
    tol = (
        min(max(th.power_tolerance, 2 * s_var / _LN10), 0.3)
        if m.kind != "signed"
        else th.power_tolerance
    )
    if m.kind == "signed":
        scale = m.x.copy()
        scale[m.excluded] = np.nan
    else:
        scale = y - np.where(np.isnan(f), 0.0, f)[None, :]  # the year's common movement removed
    for c, t in zip(*np.nonzero(big & ~np.isnan(y)), strict=True):
        nb = _neighbours(scale, c, t)
        if nb is None:
            continue
        v, n1, n2 = scale[c, t], scale[c, nb[0]], scale[c, nb[1]]
        if m.kind == "signed":
            if (
                v == 0
                or n1 == 0
                or n2 == 0
                or np.sign(v) != np.sign(n1)
                or np.sign(n1) != np.sign(n2)
            ):
                continue
            r1, r2, r12 = (
                math.log10(abs(v / n1)),
                math.log10(abs(v / n2)),
                math.log10(abs(n1 / n2)),
            )
        else:
            r1, r2, r12 = (v - n1) / _LN10, (v - n2) / _LN10, (n1 - n2) / _LN10
        k = _nearest_power(r1, tol)
        if k is None or k != _nearest_power(r2, tol) or abs(r12) > tol:
            continue
        tab, line, city, year = _cell(m, group, c, t)
        if m.kind == "signed":
            ref = (m.x[c, nb[0]], m.x[c, nb[1]])
        else:
            ref = (m.x[c, nb[0]], m.x[c, nb[1]])
        expected = (
            f"about {_fmt(ref[0] * 1.0)} and {_fmt(ref[1])} {m.var.unit} like the same city's "
            f"years {m.years[nb[0]]} and {m.years[nb[1]]}"
        )
        cause = unit_cause(m.var.unit, k)
        yield (
            _finding(
                "decimal_shift",
                tab,
                m.var,
                line,
                city,
                names,
                year,
                m.x[c, t],
                expected,
                cause,
                resid[c, t] / s_var,
            ),
            (c, t),
        )


def _jumps(m: _Matrix, y, f, z, resid, expected, group, th: Thresholds, names, done):
    """Cells far from their city's own trend."""
    import numpy as np

    with np.errstate(all="ignore"):
        hit = (np.abs(z) >= th.z_jump) & ~done
        if m.kind == "signed":
            # a mistake changes a rate by a factor (×0.01 fraction, ×0.1, ×10, ×−1 sign), so the
            # value must be min_factor off its expected value, or of the opposite sign
            ratio = m.x / expected
            hit &= (ratio <= 1 / th.min_factor) | (ratio >= th.min_factor)
        else:
            # at least min_factor off on the log scale and against the city's linear trend
            lin = _linear_trend(m, y, f, th)
            ratio_lin = np.where(lin > 0, m.x / lin, np.inf)
            up = (resid >= math.log(th.min_factor)) & (ratio_lin >= th.min_factor)
            down = (resid <= -math.log(th.min_factor)) & (ratio_lin <= 1 / th.min_factor)
            hit &= up | down
    min_step = 0.0 if m.kind == "signed" else math.log(th.min_factor)
    for c, t in zip(*np.nonzero(hit), strict=True):
        tab, line, city, year = _cell(m, group, c, t)
        s = abs(resid[c, t] / z[c, t])
        half = max(th.z_jump * s, min_step)
        e = expected[c, t]
        value = m.x[c, t]
        if m.kind == "signed":
            ratio = value / e if e else math.nan
            if (
                abs(e) >= th.z_jump * s
                and ratio < 0
                and abs(math.log10(abs(ratio))) <= th.power_tolerance
            ):
                cause = "sign error (the value has the opposite sign of the city's trend)"
            elif (
                abs(e) >= th.z_jump * s
                and ratio > 0
                and _nearest_power(math.log10(ratio), th.power_tolerance)
            ):
                cause = unit_cause(
                    m.var.unit, _nearest_power(math.log10(ratio), th.power_tolerance)
                )
            else:
                cause = f"a jump of {resid[c, t]:+.3g} {m.var.unit} against the city's own trend"
        else:
            ratio = math.exp(resid[c, t])
            # naming the cause allows for the cell's own noise about its trend (two spreads, at
            # most 0.3 decades): a ×10,000 unit mix-up in a volatile series is rarely exactly 10⁴
            k = _nearest_power(
                resid[c, t] / _LN10, min(max(th.power_tolerance, 2 * s / _LN10), 0.3)
            )
            cause = (
                unit_cause(m.var.unit, k)
                if k
                else f"a jump ({_times(ratio)}) against the city's own trend"
            )
        yield (
            _finding(
                "jump",
                tab,
                m.var,
                line,
                city,
                names,
                year,
                value,
                f"{_value_text(m, e - half, e + half)} (the city's robust trend)",
                cause,
                z[c, t],
            ),
            (c, t),
        )


def _cross_city(m: _Matrix, y, group, th: Thresholds, names, done) -> list[Finding]:
    """Cells far from the other cities of the same year (robust z on the check scale)."""
    import numpy as np

    out = []
    with _quiet():
        med = nanmedian(y, axis=0)
    # tail-aware per year; q = 0.95 so that a few mistaken cities do not widen the spread
    s = np.array([_spread(y[:, t] - med[t], 0.95) for t in range(y.shape[1])])
    n = np.sum(~np.isnan(y), axis=0)
    ok = (n >= th.min_cities) & (s > 0)
    min_step = 0.0 if m.kind == "signed" else math.log(th.min_factor)
    with np.errstate(all="ignore"):
        dev = y - med[None, :]
        z = dev / s[None, :]
        hit = (np.abs(z) >= th.z_cross) & (np.abs(dev) >= min_step) & ok[None, :] & ~done
    for c, t in zip(*np.nonzero(hit), strict=True):
        tab, line, city, year = _cell(m, group, c, t)
        half = max(th.z_cross * s[t], min_step)
        if m.kind == "signed":
            cause = "far outside the other cities of the year"
        else:
            cause = f"{_times(math.exp(dev[c, t]))} the median city of the year"
            # the unit mix-up (or power of ten) that brings the value back among the cities
            for k in sorted(_unit_powers(m.var.unit), key=lambda k: abs(dev[c, t] - k * _LN10)):
                if abs(dev[c, t] - k * _LN10) < th.z_cross * s[t] and abs(k) >= 2:
                    cause += "; " + unit_cause(m.var.unit, k)
                    break
        out.append(
            _finding(
                "cross_city",
                tab,
                m.var,
                line,
                city,
                names,
                year,
                m.x[c, t],
                f"{_value_text(m, med[t] - half, med[t] + half)} (the cities of {year})",
                cause,
                z[c, t],
            )
        )
    return out


def _cross_section(t: TableInput, source, th: Thresholds, names, flagged) -> list[Finding]:
    """Time-invariant city tables: cross-city outliers only."""
    import numpy as np

    out = []
    df = t.data
    for name, var in source.variables.items():
        if name not in df.columns:
            continue
        x = df[name].to_numpy(dtype=float) / var.factor
        lines = df["source_line"].to_numpy()
        m = _Matrix(
            var,
            variable_kind(var),
            list(df["city_code"]),
            [None],
            x[:, None],
            lines[:, None],
            np.zeros((len(df), 1), dtype=np.int64),
            np.array([[(t.name, str(int(ln)), name) in flagged] for ln in lines]),
        )
        for f in _cross_city(
            m, _transform(m, th.min_count), [t], th, names, np.zeros((len(df), 1), dtype=bool)
        ):
            f.year = ""
            f.expected = f.expected.replace(" (the cities of None)", " (the other cities)")
            out.append(f)
    return out


def _national_series(t: TableInput, source, th: Thresholds, flagged) -> list[Finding]:
    """National series (one row per year): the decimal-shift pattern against adjacent years."""
    import numpy as np

    out = []
    df = t.data.sort_values("year")
    years = df["year"].to_numpy()
    lines = df["source_line"].to_numpy()
    for name, var in source.variables.items():
        if name not in df.columns:
            continue
        x = df[name].to_numpy(dtype=float) / var.factor
        kind = variable_kind(var)
        for i in range(len(x)):
            if np.isnan(x[i]) or (t.name, str(int(lines[i])), name) in flagged:
                continue
            nb = _neighbours(x[None, :], 0, i)
            if nb is None:
                continue
            v, n1, n2 = x[i], x[nb[0]], x[nb[1]]
            if min(abs(v), abs(n1), abs(n2)) == 0 or (
                kind == "signed" and not (np.sign(v) == np.sign(n1) == np.sign(n2))
            ):
                continue
            r1, r2, r12 = (
                math.log10(abs(v / n1)),
                math.log10(abs(v / n2)),
                math.log10(abs(n1 / n2)),
            )
            k = _nearest_power(r1, th.power_tolerance)
            if (
                k is None
                or k != _nearest_power(r2, th.power_tolerance)
                or abs(r12) > th.power_tolerance
            ):
                continue
            out.append(
                _finding(
                    "decimal_shift",
                    t,
                    var,
                    int(lines[i]),
                    "",
                    {},
                    int(years[i]),
                    v,
                    f"about {_fmt(n1)} and {_fmt(n2)} {var.unit} like the years {years[nb[0]]} "
                    f"and {years[nb[1]]}",
                    unit_cause(var.unit, k),
                    r1,
                )
            )
    return out


# --------------------------------------------------------------------------- reporting


def findings_frame(findings: list[Finding]):
    """The findings as a DataFrame with the columns of :data:`FINDING_COLUMNS` (empty: no rows)."""
    import pandas as pd

    rows = [{c: getattr(f, c) for c in FINDING_COLUMNS} for f in findings]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def stop_message(result: Result, corrections_path: str, audit_path: str) -> str:
    """The message of :class:`PlausibilityError`: every finding, the first ones in full."""
    n = len(result.findings)
    lines = [
        f"{n} implausible value{'s' if n != 1 else ''} in the ingested data "
        f"({result.cells_checked:,} cells checked); the panel is not built.",
        "",
    ]
    for i, f in enumerate(result.findings[:FULL_IN_MESSAGE], start=1):
        lines.append(f"{i}. {f.full_text()}")
    rest = result.findings[FULL_IN_MESSAGE:]
    if rest:
        lines += ["", f"and {len(rest)} more:"]
        for i, f in enumerate(rest, start=FULL_IN_MESSAGE + 1):
            lines.append(
                f"{i}. {f.where()}: value {_fmt(f.value) if f.value is not None else '—'} "
                f"{f.unit}; {f.cause} [{f.check}]"
            )
    lines += [
        "",
        "hint: fix the raw file, or record the decision in "
        f"{corrections_path} (action replace with the right value in the raw unit, or confirm if "
        "the value is right); to build the panel anyway, set `plausibility: warn` in config.yaml "
        f"(or --config plausibility=warn), which lists the findings in {audit_path}. "
        'See the README section "When a value is flagged".',
    ]
    return "\n".join(lines)


def audit_markdown(result: Result, action: str) -> str:
    """``results/audit/plausibility.md``: findings, confirmed values and corrections applied."""
    th = result.thresholds
    lines = [
        "# Plausibility of the ingested data",
        "",
        f"- Cells checked: {result.cells_checked:,}",
        f"- Findings: {len(result.findings)}",
        f"- Confirmed by the corrections file: {len(result.confirmed)}",
        f"- Corrections applied: {len(result.corrections)} "
        f"({sum(c.action == 'replace' for c in result.corrections)} replace, "
        f"{sum(c.action == 'confirm' for c in result.corrections)} confirm)",
        f"- Action: {action}",
        "- Thresholds: " + ", ".join(f"{f.name} {getattr(th, f.name):g}" for f in fields(th)),
        "",
        "## Findings",
        "",
    ]
    if result.findings:
        for i, f in enumerate(result.findings, start=1):
            lines.append(f"{i}. " + f.full_text().replace("\n    ", "  \n   "))
    else:
        lines.append("None.")
    lines += ["", "## Confirmed values (not flagged)", ""]
    if result.confirmed:
        for f in result.confirmed:
            lines.append(
                f"- {f.where()}: {_fmt(f.value) if f.value is not None else '—'} "
                f"{f.unit} [{f.check}]"
            )
    else:
        lines.append("None.")
    lines += ["", "## Corrections applied", ""]
    if result.corrections:
        lines += [
            "| corrections line | table | city | year | variable | action "
            "| old value | new value | note |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for c in result.corrections:
            old = _fmt(c.old_value) if c.old_value is not None else f"{c.cells} cells"
            new = _fmt(c.value) if c.action == "replace" else "(kept)"
            lines.append(
                f"| {c.line} | {c.table} | {c.city_code or 'all'} | {c.year or ''} "
                f"| {c.variable} | "
                f"{c.action} | {old} | {new} | {c.note} |"
            )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"
