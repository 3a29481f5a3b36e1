"""Ingest: one raw file -> one tidy table with canonical names and units.

Input: a raw extract (docs/design.md) and its codebook source. Output: a table with
``city_code`` and/or ``year`` keys and one float column per canonical variable, in the
canonical unit: a column table (:func:`ingest_columns`, what the ingest jobs write without
importing pandas) or the same as a DataFrame (:func:`ingest_table`). Every malformed cell
raises :class:`~nqp_resilience.errors.DataError` naming the file, the row (line, city, year)
and the column.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from functools import partial
from operator import itemgetter
from pathlib import Path

from nqp_resilience.data.cities import TOTAL_LABELS, TOTAL_SUFFIXES, CityResolver
from nqp_resilience.data.codebook import Codebook, Source
from nqp_resilience.data.io import (
    columns_frame,
    decode_bytes,
    normalise_text,
    parse_number,
    preview_cells,
    read_raw_table,
)
from nqp_resilience.errors import DataError

#: Column of every ingested table holding the line (CSV) or sheet row (xlsx) of the raw file the
#: record came from, so that later checks (plausibility) can point at the exact place. The panel
#: step drops it.
SOURCE_LINE = "source_line"

log = logging.getLogger(__name__)


#: Units recognised in a unit row under the header (after NFKC normalisation, with a 单位: prefix
#: and enclosing brackets removed), besides the units the codebook itself lists.
UNIT_WORDS = frozenset(
    {
        "元",
        "千元",
        "万元",
        "亿元",
        "美元",
        "万美元",
        "亿美元",
        "人",
        "万人",
        "人年",
        "户",
        "万户",
        "%",
        "‰",
        "吨",
        "万吨",
        "万吨标准煤",
        "吨标准煤",
        "公里",
        "千米",
        "米",
        "平方公里",
        "平方米",
        "万平方米",
        "公顷",
        "件",
        "个",
        "台",
        "部",
        "部/万人",
        "家",
        "项",
        "辆",
        "张",
        "床",
        "所",
        "千瓦时",
        "万千瓦时",
        "亿千瓦时",
        "立方米",
        "万立方米",
        "万标立方米/时",
        "元/美元",
        "元/人",
        "指数",
        "index",
    }
)
#: Cells of a unit row that label it rather than give a unit.
UNIT_LABELS = frozenset({"单位", "计量单位", "unit", "units", "Unit", "Units"})
#: Units that mean the same as a codebook unit.
UNIT_SYNONYMS = {"index": {"指数"}, "公里": {"千米", "km"}, "米": {"m"}}
#: Openings of note rows (a single filled cell), e.g. footnotes under a yearbook table.
NOTE_PREFIXES = ("注", "说明", "资料来源", "数据来源", "备注", "Note", "Source", "*")

_HEADER_UNIT = re.compile(r"\(([^()]*)\)$")
_SPLIT_HEAD = re.compile(r"^[+-]?\d{1,3}$")
_SPLIT_TAIL = re.compile(r"^\d{3}(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


def _blank(cell) -> bool:
    return cell is None or str(cell).strip() == ""


def _text(cell) -> str:
    return normalise_text(str(cell)) if cell is not None else ""


def header_matcher(source: Source):
    """A test ``is_header(cells) -> bool`` for the header row of ``source``: at least one
    identifier header and two headers of the codebook in all. Data, title, unit and note rows
    never pass; a header with a few unknown columns does (and is then reported column by column)."""
    lookup = source.header_lookup()

    def is_header(cells) -> bool:
        if _no_codebook_header(cells, lookup):
            return False  # most rows, decided without a Python step per cell
        kinds = [lookup.get(_text(c)) for c in cells if not _blank(c)]
        return (
            sum(k is not None and k[0] == "key" for k in kinds) >= 1
            and sum(k is not None for k in kinds) >= 2
        )

    return is_header


def _no_codebook_header(cells, lookup) -> bool:
    """True if no cell of a row is a header of ``lookup`` once normalised (as :func:`_text`
    normalises it); False if some may be.

    The row is normalised as one text with NUL between the cells: NFKC never combines across
    a NUL (a starter without compositions), so each piece is the cell's NFKC.
    """
    try:
        joined = "\0".join(cells)
    except TypeError:  # numbers or empty cells of a workbook
        joined = "\0".join("" if c is None else str(c) for c in cells)
    if not joined.isascii():
        joined = unicodedata.normalize("NFKC", joined)
    pieces = joined.split("\0")
    return len(pieces) == len(cells) and lookup.keys().isdisjoint(map(str.strip, pieces))


def _unit_text(cell) -> str:
    text = _text(cell).replace(" ", "")
    text = re.sub(r"^(计量)?单位[:]?", "", text)
    m = re.fullmatch(r"\((.*)\)", text)
    return m.group(1) if m else text


def _is_unit_row(cells, units) -> bool:
    """Every filled cell is a unit (or the word 单位) and at least one is a unit."""
    filled = [_unit_text(c) for c in cells if not _blank(c)]
    return (
        bool(filled)
        and all(u in units or u in UNIT_LABELS or u == "" for u in filled)
        and any(u in units for u in filled)
    )


def _check_unit_row(cells, line, table, var_pos, source) -> None:
    """A unit that contradicts the codebook's unit of the column is an error: the values would be
    read in the wrong unit."""
    for pos, var in var_pos:
        if pos >= len(cells) or _blank(cells[pos]):
            continue
        unit = _unit_text(cells[pos])
        header_unit = _HEADER_UNIT.search(table.header[pos])
        accepted = {var.unit, *UNIT_SYNONYMS.get(var.unit, ())}
        if header_unit:
            accepted.add(header_unit.group(1))
        if unit not in accepted:
            raise DataError(
                table.path,
                f"the unit row says {unit!r} for this column, but the codebook's "
                f"unit is {var.unit!r}",
                row=f"line {line} (unit row under the header)",
                column=f"{table.header[pos]!r} ({var.name})",
                expected=f"values in {var.unit} (resources/codebook.yaml, source "
                f"'{source.name}', variable '{var.name}')",
                hint=f"convert the column's values to {var.unit} before ingesting, or correct "
                "the unit row if the values are in fact in that unit",
            )


def _is_title_like(cells) -> bool:
    """One filled cell that is not a number: a title or caption line."""
    filled = [c for c in cells if not _blank(c)]
    if len(filled) != 1:
        return False
    try:
        parse_number(filled[0])
    except ValueError:
        return True
    return False


def _is_note(cells) -> bool:
    """One filled cell, opening like a note."""
    filled = None
    for c in cells:
        if not _blank(c):
            if filled is not None:
                return False  # a second filled cell (every data row): no note
            filled = c
    return filled is not None and _text(filled).startswith(NOTE_PREFIXES)


def _split_hint(cells, header) -> str:
    """Name two neighbouring cells that look like one number split at a thousands separator."""
    for i in range(len(cells) - 1):
        a, b = _text(cells[i]), _text(cells[i + 1])
        if _SPLIT_HEAD.match(a) and _SPLIT_TAIL.match(b):
            where = f" under {header[i]!r}" if i < len(header) else ""
            return f"; the cells {a!r} and {b!r}{where} look like one number {a},{b}"
    return ""


def _check_width(cells, line, table, where):
    """Return the row cut to the header's width; a row with more filled or fewer cells is an error.

    Cells beyond the header that are all blank (spreadsheet exports pad rows) are dropped.
    ``where()`` gives the row's label for a message (built only for one).
    """
    width = len(table.header)
    if len(cells) > width:
        if all(_blank(c) for c in cells[width:]):
            return list(cells[:width])
        extra = [str(c) for c in cells[width:] if not _blank(c)]
        raise DataError(
            table.path,
            f"the row has {len(cells)} cells but the header has {width} columns "
            f"(extra filled cells: {', '.join(repr(c) for c in extra[:3])})"
            + _split_hint(cells, table.header),
            row=where(),
            expected=f"{width} cells per row, as in the header on line {table.header_line}",
            hint="an unquoted thousands separator such as 1,318.1 splits a cell; quote the cell "
            '("1,318.1") or remove the separator (1318.1). A stray delimiter inside a name '
            "does the same",
        )
    if len(cells) < width:
        missing = width - len(cells)
        raise DataError(
            table.path,
            f"the row has {len(cells)} cells but the header has {width} columns: "
            f"the last {missing} cell{'s are' if missing > 1 else ' is'} missing",
            row=where(),
            column=f"{table.header[len(cells)]!r}"
            + (f" to {table.header[-1]!r}" if missing > 1 else ""),
            expected=f"{width} cells per row, as in the header on line {table.header_line}",
            hint="the row was cut short (a truncated export or a line break inside a cell); "
            "re-export the extract, or write a missing-value placeholder (—) in each empty cell "
            "so that a gap is a decision, not an accident",
        )
    return list(cells)


def _raw_label(line, cells, key_pos, year) -> str:
    """``line N (city code name, year Y)`` from the raw cells, as far as they can be read."""

    def cell(key):
        pos = key_pos.get(key)
        return _text(cells[pos]) if pos is not None and pos < len(cells) else ""

    code, name = cell("city_code"), cell("city_name")
    if year is None and cell("year").isdigit():
        year = int(cell("year"))
    if code or name:
        return _row_label(line, code, name, year)
    return f"line {line} (year {year})" if year is not None else f"line {line}"


def _totals_label(cells, key_pos, raw_code, raw_name, resolver, source) -> str | None:
    """Why a row is a total or subtotal (national, provincial, 合计, 全市 …), or ``None``."""
    if source.grain in ("city_year", "city"):
        return resolver.totals_label(raw_code, raw_name)
    pos = key_pos.get("year")
    label = re.sub(r"\s+", "", _text(cells[pos])) if pos is not None and pos < len(cells) else ""
    return label if label in TOTAL_LABELS or label.endswith(TOTAL_SUFFIXES) else None


def _classify_rows(table, is_header, units) -> list[str]:
    """Label each row ``data``, ``header`` (repeated), ``unit``, ``title`` or ``note``.

    A unit row counts only directly under the header or a repeated header; a title row only
    directly above a repeated header (concatenated exports).
    """
    kinds = ["data"] * len(table.rows)
    after_header = True
    for i, cells in enumerate(table.rows):
        if is_header(cells):
            kinds[i] = "header"
            after_header = True
            continue
        if after_header and _is_unit_row(cells, units):
            kinds[i] = "unit"
        elif _is_note(cells):
            kinds[i] = "note"
        after_header = False
    for i in range(len(table.rows) - 2, -1, -1):
        if (
            kinds[i] == "data"
            and kinds[i + 1] in ("header", "title")
            and _is_title_like(table.rows[i])
        ):
            kinds[i] = "title"
    return kinds


def map_header(table, source: Source) -> dict[int, tuple[str, str]]:
    """Map column positions to codebook entries; reject unknown and missing columns."""
    lookup = source.header_lookup()
    mapping: dict[int, tuple[str, str]] = {}
    seen: dict[str, str] = {}
    for pos, header in enumerate(table.header):
        if header == "":
            raise DataError(
                table.path,
                f"column {pos + 1} has an empty header",
                column=f"#{pos + 1}",
                hint="name the column, or delete it if it is empty",
            )
        entry = lookup.get(header)
        if entry is None:
            closest = source.closest(header)
            raise DataError(
                table.path,
                "unknown header",
                column=repr(header),
                expected=f"a header listed for source '{source.name}' in resources/codebook.yaml",
                hint=(f"closest codebook header: {closest}. " if closest else "")
                + "If the column is that variable, add this header to its `headers` list; "
                "if it is not needed, add it to the source's `ignore` list",
            )
        kind, name = entry
        if kind == "ignore":
            continue
        if name in seen:
            raise DataError(
                table.path,
                f"two columns map to {name!r}: {seen[name]!r} and {header!r}",
                column=repr(header),
                hint="delete one of the two columns",
            )
        seen[name] = header
        mapping[pos] = entry
    for key in source.keys:
        if key in ("city_code", "city_name"):
            continue  # either a code or a name column identifies a city: checked below
        if key not in seen:
            raise DataError(
                table.path,
                f"missing required column {key!r}",
                column=key,
                expected=f"one of the headers {list(source.keys[key])}",
                hint="rename the identifier column, or add its header to the codebook keys",
            )
    if "city_code" in source.keys and "city_code" not in seen and "city_name" not in seen:
        raise DataError(
            table.path,
            "missing required column 'city_code' (and no city name column)",
            column="city_code",
            expected=f"one of the headers {list(source.keys['city_code'])}",
        )
    for var in source.variables.values():
        if var.required and var.name not in seen:
            raise DataError(
                table.path,
                f"missing required column {var.name!r}",
                column=f"{var.headers[0]!r} ({var.name})",
                expected=f"one of the headers {list(var.headers)} ({var.description})",
                hint="add the column to the extract, or, if the extract labels it differently, "
                "add that label to the variable's `headers` in resources/codebook.yaml",
            )
    return mapping


def ingest_table(
    path,
    source: Source,
    resolver: CityResolver | None,
    years: tuple[int, int],
    *,
    year: int | None = None,
):
    """Read and validate one raw file of ``source`` into a DataFrame.

    The DataFrame of :func:`ingest_columns` (same parameters): keys (``city_code`` as
    strings, ``year`` as int64), float64 variables in canonical units, and :data:`SOURCE_LINE`
    (int64), sorted by the keys, with a RangeIndex.
    """
    return columns_frame(ingest_columns(path, source, resolver, years, year=year))


def ingest_columns(
    path,
    source: Source,
    resolver: CityResolver | None,
    years: tuple[int, int],
    *,
    year: int | None = None,
) -> dict[str, tuple[str, list]]:
    """Read and validate one raw file of ``source`` into a column table.

    Parameters
    ----------
    path : path-like
        The raw file (CSV in UTF-8/GBK, or xlsx).
    source : Source
        Its codebook entry.
    resolver : CityResolver or None
        Needed for sources with a city grain.
    years : (int, int)
        Admissible data years, inclusive.
    year : int, optional
        The data year of a file without a year column (the yearbook: one file per year).

    Returns
    -------
    dict
        A column table (``{name: (kind, values)}``, :func:`nqp_resilience.data.io.write_columns`):
        the keys (``city_code`` as ``str``, ``year`` as ``int64``, as the grain requires), the
        variables in canonical units (``float64``, ``nan`` where missing) and
        :data:`SOURCE_LINE` (``int64``, the record's line in the raw file), the rows sorted by
        the keys.
    """
    is_header = header_matcher(source)
    table = read_raw_table(path, is_header=is_header)
    for note in table.notes:
        log.info("%s: %s", table.path, note)
    if table.sheet is not None:
        log.info("%s: sheet %r, header on row %d", table.path, table.sheet, table.header_line)
    mapping = map_header(table, source)
    if year is not None and not years[0] <= year <= years[1]:
        raise DataError(
            table.path,
            f"data year {year} is outside the configured range {years[0]}–{years[1]}",
            expected=f"a year in {years[0]}–{years[1]}",
            hint="widen `years` in config.yaml or remove the file",
        )
    key_pos = {name: pos for pos, (kind, name) in mapping.items() if kind == "key"}
    var_pos = [
        (pos, source.variables[name]) for pos, (kind, name) in mapping.items() if kind == "var"
    ]
    units = UNIT_WORDS | {v.unit for v in source.variables.values()}
    kinds = _classify_rows(table, is_header, units)
    # every variable cell of the data rows at once, where they are all plain numbers or blank
    # and admissible (None: some cell needs the per-cell path and its message)
    fast = _plain_values(table, kinds, var_pos)
    records = []
    origin: dict[tuple, int] = {}
    skipped = {
        "header": "a repeated header row",
        "unit": "a unit row",
        "title": "a title row above a repeated header",
        "note": "a note row",
    }
    for row, (cells, line, kind) in enumerate(
        zip(table.rows, table.line_numbers, kinds, strict=True)
    ):
        if kind != "data":
            if kind == "unit":
                _check_unit_row(cells, line, table, var_pos, source)
            log.info(
                "%s: line %d: skipped %s (%s)",
                table.path,
                line,
                skipped[kind],
                preview_cells(cells),
            )
            continue
        raw_code = (
            _text(cells[key_pos["city_code"]])
            if key_pos.get("city_code", len(cells)) < len(cells)
            else ""
        )
        raw_name = (
            _text(cells[key_pos["city_name"]])
            if key_pos.get("city_name", len(cells)) < len(cells)
            else ""
        )
        total = _totals_label(cells, key_pos, raw_code, raw_name, resolver, source)
        if total is not None:
            log.info("%s: line %d: skipped a totals row (%s)", table.path, line, total)
            continue
        # row labels are partials, built only for a message: most rows need none
        cells = _check_width(cells, line, table, partial(_raw_label, line, cells, key_pos, year))
        rec: dict = {}
        label = partial("line {}".format, line)
        if "year" in key_pos:
            where = label
            if raw_code or raw_name:
                where = partial(_row_label, line, raw_code, raw_name, None)
            rec["year"] = _parse_year(cells[key_pos["year"]], table.path, where, years)
        elif year is not None:
            rec["year"] = year
        if source.grain in ("city_year", "city"):
            if not raw_code and not raw_name:
                raise DataError(
                    table.path,
                    f"the row has neither a city code nor a city name ({preview_cells(cells)})",
                    row=_raw_label(line, cells, key_pos, rec.get("year")),
                    column="city code",
                    expected="a 6-digit city code (or a city name) in every data row",
                    hint="if it is a title, unit or note row, delete it; "
                    "otherwise fill in the code",
                )
            rec["city_code"] = resolver.resolve(
                raw_code,
                raw_name,
                year=rec.get("year"),
                file=table.path,
                row=partial(_row_label, line, raw_code, raw_name, rec.get("year")),
            )
            label = partial(
                _row_label,
                line,
                rec["city_code"],
                resolver.names.get(rec["city_code"], raw_name),
                rec.get("year"),
            )
        elif "year" in rec:
            label = partial("line {} (year {})".format, line, rec["year"])
        if fast is None:
            for pos, var in var_pos:
                rec[var.name] = _parse_cell(cells[pos], var, table, label, pos)
        else:
            rec[_ROW] = row
        key = tuple(rec[k] for k in ("city_code", "year") if k in rec)
        if key in origin:
            raise DataError(
                table.path,
                f"duplicate record for {_key_text(key, source.grain)}: lines "
                f"{origin[key]} and {line}",
                row=label(),
                expected="one row per " + source.grain.replace("_", " × "),
                hint="delete one of the two rows; if they are a city under an old and a new "
                "code, keep the row of the code valid in that year",
            )
        origin[key] = line
        rec[SOURCE_LINE] = line
        records.append(rec)
    if not records:
        raise DataError(
            table.path,
            "the file has no data rows (only headers, units, titles, notes or totals)",
            hint="re-export the extract with its records",
        )
    keys = [k for k in ("city_code", "year") if k in records[0]]
    present = {var.name for _, var in var_pos}
    columns = keys + [name for name in source.variables if name in present] + [SOURCE_LINE]
    # the keys are unique (duplicates are an error above), so the order is the keys' order
    records.sort(key=itemgetter(*keys))
    dtypes = {"city_code": "str", "year": "int64", SOURCE_LINE: "int64"}
    parsed = {}
    if fast is not None:
        import numpy as np

        rows = np.array([rec[_ROW] for rec in records], dtype=np.int64)
        parsed = {var.name: fast[pos][rows] for pos, var in var_pos}
    return {
        name: (
            dtypes.get(name, "float64"),
            parsed[name] if name in parsed else [rec[name] for rec in records],
        )
        for name in columns
    }


#: the row of a record in the raw table (when its values were parsed column by column)
_ROW = "\0row"
#: :data:`nqp_resilience.data.io._PLAIN` for pyarrow (RE2: ``\d`` is ASCII, ``$`` the end)
_PLAIN_RE2 = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


def _plain_values(table, kinds, var_pos) -> dict | None:
    """{position: float64 values of the variable in every row of the table (NaN outside the
    data rows)}, parsed column by column, when every variable cell of every data row is a
    plain ASCII number or blank and within its variable's bounds: the values
    :func:`_parse_cell` gives (correctly rounded, times the unit factor; blank is missing).
    None when any cell is anything else (a text cell, a placeholder, a separator, a short or
    long row, an inadmissible value): the file then takes the per-cell path, which reports
    the first such cell exactly as before. A county extract of 57,000 rows parses in a tenth
    of the per-cell time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    data = [i for i, kind in enumerate(kinds) if kind == "data"]
    width = len(table.header)
    if not data or not var_pos or any(len(table.rows[i]) != width for i in data):
        return None
    by_column = list(zip(*(table.rows[i] for i in data), strict=True))
    out = {}
    for pos, var in var_pos:
        cells = by_column[pos]
        try:
            joined = "".join(cells)  # a TypeError for a spreadsheet number or an empty cell
        except TypeError:
            return None
        if not joined.isascii():
            return None  # a plain number is ASCII
        # an Arrow string array from its buffers, blanks null (pa.array and pa.scalar would
        # import pandas, which the ingest jobs do without)
        lengths = np.fromiter(map(len, cells), dtype=np.int64, count=len(cells))
        filled = lengths > 0
        offsets = np.zeros(len(cells) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        validity = None if filled.all() else pa.py_buffer(np.packbits(filled, bitorder="little"))
        text = pa.Array.from_buffers(
            pa.large_string(),
            len(cells),
            [validity, pa.py_buffer(offsets), pa.py_buffer(joined.encode("ascii"))],
        )
        values = np.full(len(cells), np.nan)  # blank: missing
        if filled.any():
            try:
                if not pc.all(pc.match_substring_regex(text, _PLAIN_RE2)).as_py():
                    return None
                parsed = pc.cast(text, pa.float64())
            except (pa.ArrowException, ValueError):
                return None
            numbers = np.frombuffer(
                parsed.buffers()[1], dtype=np.float64, count=len(parsed), offset=8 * parsed.offset
            )
            values[filled] = numbers[filled]
        present = values[~np.isnan(values)]
        if (
            (var.positive and np.any(present <= 0))
            or (var.min is not None and np.any(present < var.min))
            or (var.max is not None and np.any(present > var.max))
        ):
            return None
        column = np.full(len(table.rows), np.nan)
        column[data] = values * var.factor
        out[pos] = column
    return out


def _row_label(line, code, name, year) -> str:
    parts = ["city " + " ".join(str(x).strip() for x in (code, name) if str(x).strip())]
    if year is not None:
        parts.append(f"year {year}")
    return f"line {line} ({', '.join(parts)})"


def _key_text(key, grain) -> str:
    if grain == "city_year":
        return f"city {key[0]}, year {key[1]}"
    return f"{grain} {key[0]}"


def _parse_year(cell, file, where, years) -> int:
    """The year of a year cell; ``where()`` gives the row's label for a message."""
    try:
        value = parse_number(cell)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value != int(value):
        raise DataError(
            file,
            f"year {cell!r} is not a whole number",
            row=where(),
            column="year",
            expected="a four-digit year",
        )
    value = int(value)
    if not years[0] <= value <= years[1]:
        raise DataError(
            file,
            f"year {value} is outside the configured range {years[0]}–{years[1]}",
            row=where(),
            column="year",
            expected=f"years {years[0]}–{years[1]}",
            hint="drop rows outside the study period from the extract, "
            "or widen `years` in config.yaml",
        )
    return value


def _parse_cell(cell, var, table, where, pos) -> float:
    """The value of a variable's cell in the canonical unit; ``where()`` gives the row's label
    for a message."""
    if table.delimiter == ";" and isinstance(cell, str) and _DECIMAL_COMMA.match(_text(cell)):
        # semicolon exports come from locales that write decimal commas: 1,318 may be 1.318
        raise DataError(
            table.path,
            f"the value {cell!r} has a comma in a semicolon-delimited file: a decimal "
            "comma or a thousands separator?",
            row=where(),
            column=_column(table, pos, var),
            expected=f"a number in {var.unit} with a period as the decimal mark",
            hint="save the extract with a period as the decimal mark and no thousands separators, "
            "or as 'CSV UTF-8 (comma delimited)'",
        )
    try:
        value = parse_number(cell)
    except ValueError:
        raise DataError(
            table.path,
            f"non-numeric value {cell!r}",
            row=where(),
            column=_column(table, pos, var),
            expected=f"a number in {var.unit}, or a missing-value placeholder (blank, —, …, -)",
            hint="correct the cell; footnote marks and units inside cells must be removed",
        ) from None
    if math.isnan(value):
        return value
    if var.positive and value <= 0:
        raise DataError(
            table.path,
            f"value {value:g} is not positive, but {var.name} is a denominator "
            "of a ratio downstream",
            row=where(),
            column=_column(table, pos, var),
            expected=f"a number > 0 in {var.unit}",
            hint="if the value is unknown, leave the cell blank so it is interpolated; "
            "otherwise correct it",
        )
    if var.min is not None and value < var.min:
        raise DataError(
            table.path,
            f"value {value:g} is below the admissible minimum {var.min:g}",
            row=where(),
            column=_column(table, pos, var),
            expected=f"{var.min:g} ≤ value in {var.unit}",
            hint="check the sign and the unit of the cell",
        )
    if var.max is not None and value > var.max:
        raise DataError(
            table.path,
            f"value {value:g} is above the admissible maximum {var.max:g}",
            row=where(),
            column=_column(table, pos, var),
            expected=f"value ≤ {var.max:g} in {var.unit}",
            hint="check the unit: percentages are expected in %, not as fractions or per mille",
        )
    return value * var.factor


def _column(table, pos, var) -> str:
    """A variable's column for a message: its raw header and canonical name."""
    return f"{table.header[pos]!r} ({var.name})"


# --------------------------------------------------------------------------- reports

_REPORT_NAME = re.compile(r"^(\d{6})_(\d{4})\.txt$")


def ingest_reports(paths, province_codes, years: tuple[int, int]):
    """Read government work reports into a DataFrame (province_code, year, n_chars, text): the
    DataFrame of :func:`report_columns`."""
    return columns_frame(report_columns(paths, province_codes, years))


def report_columns(paths, province_codes, years: tuple[int, int]) -> dict[str, tuple[str, list]]:
    """Read government work reports into a column table (province_code, year, n_chars, text),
    sorted by file name; n_chars counts non-whitespace characters, as Nqp1 does.

    Each file must be named ``{PROVINCE_CODE}_{YEAR}.txt`` (``000000`` = central government),
    be non-empty and be UTF-8. Files for years outside ``years`` are skipped.
    """
    from nqp_resilience.indices.nqp_text import n_characters

    records = []
    valid = set(province_codes) | {"000000"}
    for path in sorted(map(Path, paths)):
        m = _REPORT_NAME.match(path.name)
        if not m:
            raise DataError(
                path,
                "report file name not understood",
                expected="{PROVINCE_CODE}_{YEAR}.txt, e.g. 130000_2015.txt",
                hint="rename the file; the province code is the 6-digit code ending in 0000",
            )
        prov, year = m.group(1), int(m.group(2))
        if prov not in valid:
            raise DataError(
                path,
                f"unknown province code {prov}",
                column="file name",
                expected="a province_code of resources/cities/city_attributes.csv, or 000000",
                hint="province codes end in 0000, e.g. 130000 for 河北省",
            )
        if not years[0] <= year <= years[1]:
            continue
        data = path.read_bytes()
        if not data.strip():
            raise DataError(
                path,
                "the report file is empty",
                row=f"province {prov}, year {year}",
                hint="paste the full text of the government work report",
            )
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            try:
                _, enc = decode_bytes(path, data, ("gb18030",))
                found = f"it decodes as {enc.upper()}"
            except DataError:
                found = "its encoding is unknown"
            raise DataError(
                path,
                f"the report is not UTF-8 (invalid byte at offset {exc.start}; {found})",
                row=f"province {prov}, year {year}",
                expected="UTF-8 text",
                hint=f"convert it: iconv -f GB18030 -t UTF-8 {path.name} > fixed.txt",
            ) from None
        text = normalise_text(text)
        records.append(
            {"province_code": prov, "year": year, "n_chars": n_characters(text), "text": text}
        )
    dtypes = {"province_code": "str", "year": "int64", "n_chars": "int64", "text": "str"}
    return {name: (dtype, [rec[name] for rec in records]) for name, dtype in dtypes.items()}


def load_source(codebook_path, source_name: str) -> Source:
    """The codebook entry of one source."""
    return Codebook(codebook_path)[source_name]
