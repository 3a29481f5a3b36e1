"""Ingest: one raw file -> one tidy table with canonical names and units.

Input: a raw extract (SPEC §3) and its codebook source. Output: a DataFrame with
``city_code`` and/or ``year`` keys and one float column per canonical variable, in the
canonical unit. Every malformed cell raises :class:`~nqp_resilience.errors.DataError` naming
the file, the row (line, city, year) and the column.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from nqp_resilience.cities import CityResolver
from nqp_resilience.codebook import Codebook, Source
from nqp_resilience.errors import DataError
from nqp_resilience.io import decode_bytes, normalise_text, parse_number, read_raw_table
from nqp_resilience.text import n_characters

#: Column of every ingested table holding the line (CSV) or sheet row (xlsx) of the raw file the
#: record came from, so that later checks (plausibility) can point at the exact place. The panel
#: step drops it.
SOURCE_LINE = "source_line"


def map_header(table, source: Source) -> dict[int, tuple[str, str]]:
    """Map column positions to codebook entries; reject unknown and missing columns."""
    lookup = source.header_lookup()
    mapping: dict[int, tuple[str, str]] = {}
    seen: dict[str, str] = {}
    for pos, header in enumerate(table.header):
        if header == "":
            raise DataError(table.path, f"column {pos + 1} has an empty header", column=f"#{pos + 1}",
                            hint="name the column, or delete it if it is empty")
        entry = lookup.get(header)
        if entry is None:
            closest = source.closest(header)
            raise DataError(table.path, "unknown header", column=repr(header),
                            expected=f"a header listed for source '{source.name}' in resources/codebook.yaml",
                            hint=(f"closest codebook header: {closest}. " if closest else "")
                            + "If the column is that variable, add this header to its `headers` list; "
                            "if it is not needed, add it to the source's `ignore` list")
        kind, name = entry
        if kind == "ignore":
            continue
        if name in seen:
            raise DataError(table.path, f"two columns map to {name!r}: {seen[name]!r} and {header!r}",
                            column=repr(header), hint="delete one of the two columns")
        seen[name] = header
        mapping[pos] = entry
    for key in source.keys:
        if key in ("city_code", "city_name"):
            continue  # either a code or a name column identifies a city: checked below
        if key not in seen:
            raise DataError(table.path, f"missing required column {key!r}", column=key,
                            expected=f"one of the headers {list(source.keys[key])}",
                            hint="rename the identifier column, or add its header to the codebook keys")
    if "city_code" in source.keys and "city_code" not in seen and "city_name" not in seen:
        raise DataError(table.path, "missing required column 'city_code' (and no city name column)",
                        column="city_code", expected=f"one of the headers {list(source.keys['city_code'])}")
    for var in source.variables.values():
        if var.required and var.name not in seen:
            raise DataError(table.path, f"missing required column {var.name!r}", column=f"{var.headers[0]!r} ({var.name})",
                            expected=f"one of the headers {list(var.headers)} ({var.description})",
                            hint="add the column to the extract, or, if the extract labels it differently, "
                            "add that label to the variable's `headers` in resources/codebook.yaml")
    return mapping


def ingest_table(path, source: Source, resolver: CityResolver | None, years: tuple[int, int], *,
                 year: int | None = None):
    """Read and validate one raw file of ``source``.

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
    pandas.DataFrame
        Keys (``city_code``, ``year`` as the grain requires), float variables in canonical
        units, and :data:`SOURCE_LINE` (the record's line in the raw file), sorted by the keys.
    """
    import pandas as pd

    table = read_raw_table(path)
    mapping = map_header(table, source)
    if year is not None and not years[0] <= year <= years[1]:
        raise DataError(table.path, f"data year {year} is outside the configured range {years[0]}–{years[1]}",
                        expected=f"a year in {years[0]}–{years[1]}", hint="widen `years` in config.yaml or remove the file")
    key_pos = {name: pos for pos, (kind, name) in mapping.items() if kind == "key"}
    var_pos = [(pos, source.variables[name]) for pos, (kind, name) in mapping.items() if kind == "var"]
    records = []
    origin: dict[tuple, int] = {}
    for cells, line in zip(table.rows, table.line_numbers):
        cells = list(cells) + [""] * (len(table.header) - len(cells))
        rec: dict = {}
        label = f"line {line}"
        raw_code = str(cells[key_pos["city_code"]]).strip() if "city_code" in key_pos else ""
        raw_name = str(cells[key_pos["city_name"]]).strip() if "city_name" in key_pos else ""
        if "year" in key_pos:
            where = _row_label(line, raw_code, raw_name, None) if raw_code or raw_name else label
            rec["year"] = _parse_year(cells[key_pos["year"]], table.path, where, years)
        elif year is not None:
            rec["year"] = year
        if source.grain in ("city_year", "city"):
            rec["city_code"] = resolver.resolve(raw_code, raw_name, year=rec.get("year"), file=table.path,
                                                row=_row_label(line, raw_code, raw_name, rec.get("year")))
            label = _row_label(line, rec["city_code"], resolver.names.get(rec["city_code"], raw_name), rec.get("year"))
        elif "year" in rec:
            label = f"line {line} (year {rec['year']})"
        for pos, var in var_pos:
            rec[var.name] = _parse_cell(cells[pos], var, table, label, pos)
        key = tuple(rec[k] for k in ("city_code", "year") if k in rec)
        if key in origin:
            raise DataError(table.path, f"duplicate record for {_key_text(key, source.grain)}: lines "
                            f"{origin[key]} and {line}", row=label,
                            expected="one row per " + source.grain.replace("_", " × "),
                            hint="delete one of the two rows; if they are a city under an old and a new "
                            "code, keep the row of the code valid in that year")
        origin[key] = line
        rec[SOURCE_LINE] = line
        records.append(rec)
    keys = [k for k in ("city_code", "year") if k in records[0]]
    present = {var.name for _, var in var_pos}
    columns = keys + [name for name in source.variables if name in present] + [SOURCE_LINE]
    df = pd.DataFrame.from_records(records, columns=columns)
    df[SOURCE_LINE] = df[SOURCE_LINE].astype("int64")
    for _, var in var_pos:
        df[var.name] = df[var.name].astype("float64")
    if "year" in df:
        df["year"] = df["year"].astype("int64")
    if "city_code" in df:
        df["city_code"] = df["city_code"].astype(str)
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def _row_label(line, code, name, year) -> str:
    parts = ["city " + " ".join(str(x).strip() for x in (code, name) if str(x).strip())]
    if year is not None:
        parts.append(f"year {year}")
    return f"line {line} ({', '.join(parts)})"


def _key_text(key, grain) -> str:
    if grain == "city_year":
        return f"city {key[0]}, year {key[1]}"
    return f"{grain} {key[0]}"


def _parse_year(cell, file, label, years) -> int:
    try:
        value = parse_number(cell)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value != int(value):
        raise DataError(file, f"year {cell!r} is not a whole number", row=label, column="year",
                        expected="a four-digit year")
    value = int(value)
    if not years[0] <= value <= years[1]:
        raise DataError(file, f"year {value} is outside the configured range {years[0]}–{years[1]}",
                        row=label, column="year", expected=f"years {years[0]}–{years[1]}",
                        hint="drop rows outside the study period from the extract, or widen `years` in config.yaml")
    return value


def _parse_cell(cell, var, table, label, pos) -> float:
    column = f"{table.header[pos]!r} ({var.name})"
    try:
        value = parse_number(cell)
    except ValueError:
        raise DataError(table.path, f"non-numeric value {cell!r}", row=label, column=column,
                        expected=f"a number in {var.unit}, or a missing-value placeholder (blank, —, …, -)",
                        hint="correct the cell; footnote marks and units inside cells must be removed") from None
    if math.isnan(value):
        return value
    if var.positive and value <= 0:
        raise DataError(table.path, f"value {value:g} is not positive, but {var.name} is a denominator "
                        "of a ratio downstream", row=label, column=column,
                        expected=f"a number > 0 in {var.unit}",
                        hint="if the value is unknown, leave the cell blank so it is interpolated; "
                        "otherwise correct it")
    if var.min is not None and value < var.min:
        raise DataError(table.path, f"value {value:g} is below the admissible minimum {var.min:g}",
                        row=label, column=column, expected=f"{var.min:g} ≤ value in {var.unit}",
                        hint="check the sign and the unit of the cell")
    if var.max is not None and value > var.max:
        raise DataError(table.path, f"value {value:g} is above the admissible maximum {var.max:g}",
                        row=label, column=column, expected=f"value ≤ {var.max:g} in {var.unit}",
                        hint="check the unit: percentages are expected in %, not as fractions or per mille")
    return value * var.factor


# --------------------------------------------------------------------------- reports

_REPORT_NAME = re.compile(r"^(\d{6})_(\d{4})\.txt$")


def ingest_reports(paths, province_codes, years: tuple[int, int]):
    """Read government work reports into a table (province_code, year, n_chars, text);
    n_chars counts non-whitespace characters, as Nqp1 does.

    Each file must be named ``{PROVINCE_CODE}_{YEAR}.txt`` (``000000`` = central government),
    be non-empty and be UTF-8. Files for years outside ``years`` are skipped.
    """
    import pandas as pd

    records = []
    valid = set(province_codes) | {"000000"}
    for path in sorted(map(Path, paths)):
        m = _REPORT_NAME.match(path.name)
        if not m:
            raise DataError(path, "report file name not understood", expected="{PROVINCE_CODE}_{YEAR}.txt, e.g. 130000_2015.txt",
                            hint="rename the file; the province code is the 6-digit code ending in 0000")
        prov, year = m.group(1), int(m.group(2))
        if prov not in valid:
            raise DataError(path, f"unknown province code {prov}", column="file name",
                            expected="a province_code of resources/cities/city_attributes.csv, or 000000",
                            hint="province codes end in 0000, e.g. 130000 for 河北省")
        if not years[0] <= year <= years[1]:
            continue
        data = path.read_bytes()
        if not data.strip():
            raise DataError(path, "the report file is empty", row=f"province {prov}, year {year}",
                            hint="paste the full text of the government work report")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            try:
                _, enc = decode_bytes(path, data, ("gb18030",))
                found = f"it decodes as {enc.upper()}"
            except DataError:
                found = "its encoding is unknown"
            raise DataError(path, f"the report is not UTF-8 (invalid byte at offset {exc.start}; {found})",
                            row=f"province {prov}, year {year}", expected="UTF-8 text",
                            hint=f"convert it: iconv -f GB18030 -t UTF-8 {path.name} > fixed.txt") from None
        text = normalise_text(text)
        records.append({"province_code": prov, "year": year, "n_chars": n_characters(text), "text": text})
    return pd.DataFrame.from_records(records, columns=["province_code", "year", "n_chars", "text"])


def load_source(codebook_path, source_name: str) -> Source:
    """The codebook entry of one source."""
    return Codebook(codebook_path)[source_name]
