"""Reading raw extracts and writing outputs atomically.

Raw side: :func:`read_raw_table` returns the header and the cell strings of a CSV (comma,
semicolon or tab delimited; UTF-8, UTF-8 with BOM, GBK/GB18030, UTF-16) or ``.xlsx`` file (the
sheet whose header maps to the codebook), skipping title rows above the header, and
:func:`parse_number` turns one cell into a float, understanding the yearbooks' placeholders,
thousands separators and full-width digits.

Output side: every file is written to a temporary name in the target folder and renamed into
place, so a failing job never leaves a half-written output and earlier results stay intact.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import unicodedata
from pathlib import Path

from nqp_resilience.errors import DataError

#: Cell values that mean "missing" in yearbook extracts (after NFKC normalisation).
PLACEHOLDERS = frozenset(
    {"", "—", "——", "-", "--", "…", "...", "……", "NA", "N/A", "na", "nan", "NaN", "null", "无"}
)

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

#: Encodings tried in order for CSV files. GB18030 is a superset of GBK and GB2312.
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


#: Field delimiters recognised in CSV files, with the names used in messages and logs.
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}

#: Leading rows searched for the header (title rows above it are skipped).
MAX_LEADING_ROWS = 20


class RawTable:
    """A raw table as read from disk: header strings and rows of cells.

    ``line_numbers[i]`` is the 1-based line (CSV) or sheet row (xlsx) of ``rows[i]``, so
    messages can point a user at the exact place in their file. Rows keep the number of cells
    they have in the file (the ingest checks it against the header). ``notes`` lists what the
    reader decided (delimiter, sheet, skipped title rows) for the job log.
    """

    def __init__(
        self,
        path,
        header,
        rows,
        line_numbers,
        encoding,
        *,
        delimiter=None,
        sheet=None,
        header_line=1,
        notes=(),
    ):
        self.path = str(path)
        self.header = header
        self.rows = rows
        self.line_numbers = line_numbers
        self.encoding = encoding
        self.delimiter = delimiter
        self.sheet = sheet
        self.header_line = header_line
        self.notes = list(notes)


#: The full-width forms of the ASCII characters and the ideographic space, and their NFKC.
FULL_WIDTH = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)} | {"\u3000": " "}
_FULL_WIDTH = re.compile("[\u3000\uff01-\uff5e]")


def normalise_text(value: str) -> str:
    """NFKC-normalise and strip a header or cell (full-width digits and brackets become ASCII)."""
    if value.isascii():
        return value.strip()  # NFKC leaves ASCII text as it is
    # The full-width forms first, one by one: their NFKC is the ASCII character, so the result is
    # the same; Chinese text is then mostly left as it is by NFKC, which checks that quickly,
    # where one full-width comma would make it rebuild the whole text (work reports: 10x slower).
    for ch in set(_FULL_WIDTH.findall(value)):
        value = value.replace(ch, FULL_WIDTH[ch])
    return unicodedata.normalize("NFKC", value).strip()


def decode_bytes(path, data: bytes, encodings=CSV_ENCODINGS) -> tuple[str, str]:
    """Decode ``data`` with the first encoding that works; raise :class:`DataError` otherwise.

    A UTF-16 byte-order mark (Excel's "Unicode text" export) selects UTF-16 first: GB18030
    would otherwise decode those bytes into nonsense without complaint.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encodings = ("utf-16", *encodings)
    for enc in encodings:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise DataError(
        path,
        "the file cannot be decoded as text",
        expected="a CSV in UTF-8, UTF-8 with BOM, or GBK/GB18030",
        hint="open it in a spreadsheet program and save it as 'CSV UTF-8', or convert with "
        "`iconv -f <encoding> -t UTF-8`",
    )


def _blank(cell) -> bool:
    return cell is None or str(cell).strip() == ""


def _filled(cells) -> int:
    """Number of non-blank cells of a record."""
    return sum(not _blank(c) for c in cells)


def read_raw_table(path, is_header=None, header_only: bool = False) -> RawTable:
    """Read a raw CSV or xlsx file into a :class:`RawTable` of strings.

    Parameters
    ----------
    path : path-like
        A CSV (comma, semicolon or tab delimited; UTF-8, UTF-8 with BOM, GBK/GB18030, UTF-16)
        or ``.xlsx`` file.
    is_header : callable, optional
        ``is_header(cells) -> bool`` recognises the header row (the ingest passes a test against
        the codebook). It selects the delimiter, the sheet of a workbook and the header row: rows
        above the header (titles) are skipped. Without it, or when no row passes, the header is
        the first row with at least two filled cells.
    header_only : bool
        Read a CSV only as far as its header needs (the leading rows and one record after them):
        the same header and errors, and the table's rows are only those first records.

    Empty files, files with a header but no rows, undecodable files, ambiguous delimiters and
    unreadable workbooks raise :class:`DataError`. Numbers in xlsx cells are kept as numbers.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "the file does not exist", hint="check raw_dir and the file name")
    if path.stat().st_size == 0:
        raise DataError(
            path,
            "the file is empty",
            expected="a header row and one row per record",
            hint="re-export the extract; an interrupted download leaves empty files",
        )
    notes: list[str] = []
    if path.suffix.lower() == ".xlsx":
        sheet, records = _read_xlsx(path, is_header, notes)
        delimiter, enc = None, "xlsx"
    else:
        text, enc = decode_bytes(path, path.read_bytes())
        delimiter = _detect_delimiter(path, text, is_header)
        notes.append(f"delimiter: {DELIMITERS[delimiter]}, encoding: {enc}")
        limit = MAX_LEADING_ROWS + 1 if header_only else None
        sheet, records = None, _csv_records(text, delimiter, limit=limit)
    pos = _header_position(records, is_header)
    if pos is None:
        raise DataError(
            path, "the file has no header row", expected="column names in the first row"
        )
    header_line, header = records[pos]
    for line, cells in records[:pos]:
        notes.append(f"line {line}: skipped a title row above the header ({preview_cells(cells)})")
    header = [normalise_text(str(c)) for c in header]
    while header and header[-1] == "":
        header.pop()  # spreadsheet exports pad the header with empty cells
    rows = [cells for _, cells in records[pos + 1 :]]
    lines = [line for line, _ in records[pos + 1 :]]
    if not rows:
        raise DataError(
            path,
            "the file has a header but no data rows",
            hint="re-export the extract with its records",
        )
    return RawTable(
        path,
        header,
        rows,
        lines,
        enc,
        delimiter=delimiter,
        sheet=sheet,
        header_line=header_line,
        notes=notes,
    )


def preview_cells(cells, n: int = 3) -> str:
    """The first ``n`` filled cells of a record, quoted, for messages and logs."""
    shown = [str(c).strip() for c in cells if not _blank(c)][:n]
    return ", ".join(repr(s) for s in shown) or "blank"


def _header_position(records, is_header) -> int | None:
    """Index of the header among the non-blank ``records``: the first that ``is_header`` accepts
    within the leading rows, else the first with two or more filled cells, else the first."""
    if not records:
        return None
    lead = records[:MAX_LEADING_ROWS]
    if is_header is not None:
        for i, (_, cells) in enumerate(lead):
            if is_header(cells):
                return i
    for i, (_, cells) in enumerate(lead):
        if _filled(cells) >= 2:
            return i
    return 0


def _csv_records(text: str, delimiter: str, limit: int | None = None):
    """Non-blank records of a CSV text as ``(line, cells)``; ``line`` is the record's last line."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    records = []
    for record in reader:
        if not any(c.strip() for c in record):
            continue
        records.append((reader.line_num, record))
        if limit is not None and len(records) >= limit:
            break
    return records


def _detect_delimiter(path, text: str, is_header) -> str:
    """The field delimiter among :data:`DELIMITERS`.

    A delimiter under which a leading row is a codebook header wins. Otherwise a delimiter is
    plausible if it splits the multi-cell leading rows into a consistent number (>= 2) of cells
    (at least 80 % of them agree); exactly one plausible delimiter is used, several are an error
    naming them (guessing could shift every column).
    """
    head = {d: _csv_records(text, d, limit=50) for d in DELIMITERS}
    if is_header is not None:
        mapped = [
            d for d, recs in head.items() if any(is_header(c) for _, c in recs[:MAX_LEADING_ROWS])
        ]
        if len(mapped) == 1:
            return mapped[0]
        if mapped:
            head = {d: head[d] for d in mapped}
    plausible = {}
    for d, recs in head.items():
        widths = [len(c) for _, c in recs if len(c) >= 2]
        if len(widths) < 1:
            continue
        mode = max(set(widths), key=widths.count)
        if widths.count(mode) >= 0.8 * len(widths):
            plausible[d] = mode
    if len(plausible) == 1:
        return next(iter(plausible))
    if not plausible:
        return ","  # one column only: the header check reports what is missing
    found = ", ".join(f"{DELIMITERS[d]} ({w} columns)" for d, w in plausible.items())
    raise DataError(
        path,
        f"the field delimiter is ambiguous: {found} all split the rows consistently",
        expected="one of comma, semicolon or tab separating the cells",
        hint="save the extract as 'CSV UTF-8 (comma delimited)' from a spreadsheet program",
    )


def _read_xlsx(path: Path, is_header, notes):
    """Read every sheet of a workbook and pick the one with the header.

    Returns ``(sheet name, records)``. Any failure of the zip container, the workbook XML or a
    sheet's XML (also while streaming its rows) is a :class:`DataError` naming the file.
    """
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
        sheets = {}
        try:
            for ws in wb.worksheets:
                records = []
                for idx, record in enumerate(ws.iter_rows(values_only=True), start=1):
                    cells = ["" if c is None else c for c in record]
                    if any(str(c).strip() for c in cells):
                        records.append((idx, cells))
                sheets[ws.title] = records
        finally:
            wb.close()
    except DataError:
        raise
    except Exception as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise DataError(
            path,
            f"the file is not a readable .xlsx workbook ({exc.__class__.__name__}"
            + (f": {detail}" if detail else "")
            + ")",
            hint="open and re-save it in a spreadsheet program, or export it as CSV; "
            "a download that was interrupted or a file renamed to .xlsx looks like this",
        ) from None
    names = list(sheets)
    if not names:
        raise DataError(path, "the workbook has no worksheet", hint="export the table again")
    if is_header is None or len(names) == 1:
        return names[0], sheets[names[0]]
    found = [n for n in names if any(is_header(c) for _, c in sheets[n][:MAX_LEADING_ROWS])]
    if len(found) == 1:
        others = [n for n in names if n != found[0]]
        notes.append(
            f"sheet {found[0]!r} (its header maps to the codebook); skipped sheets: "
            + ", ".join(repr(n) for n in others)
        )
        return found[0], sheets[found[0]]
    listing = "; ".join(
        f"{n!r} (first row: {preview_cells(sheets[n][0][1]) if sheets[n] else 'empty'})"
        for n in names
    )
    if found:
        raise DataError(
            path,
            "several sheets have a header that maps to the codebook: "
            + ", ".join(repr(n) for n in found),
            expected="one sheet with the extract",
            hint=f"sheets: {listing}. Delete the sheets that are not this extract (e.g. a "
            "市辖区 scope next to 全市), or save the one you want as CSV",
        )
    raise DataError(
        path,
        "no sheet has a header row that maps to the codebook",
        expected="one sheet whose header has the identifier and variable columns of the codebook",
        hint=f"sheets: {listing}. Rename the headers to those of resources/codebook.yaml, "
        "or save the sheet with the data as CSV",
    )


def parse_number(cell) -> float:
    """Parse one raw cell into a float; missing placeholders give ``nan``.

    Handles full-width digits (``１２３``), thousands separators (``1,234.5``), and the
    placeholders in :data:`PLACEHOLDERS`. Raises ``ValueError`` for anything else.
    """
    if type(cell) is str and cell.isascii() and _PLAIN.match(cell):
        return float(cell)  # a plain ASCII number (most cells): what the steps below make of it
    if cell is None:
        return math.nan
    if isinstance(cell, bool):
        raise ValueError(f"{cell!r} is a boolean")
    if isinstance(cell, (int, float)):
        return float(cell)
    text = normalise_text(str(cell))
    if text in PLACEHOLDERS:
        return math.nan
    text = text.replace(" ", "")
    if _THOUSANDS.match(text):
        text = text.replace(",", "")
    if not _PLAIN.match(text):
        raise ValueError(f"{cell!r} is not a number")
    return float(text)


# --------------------------------------------------------------------------- outputs


def atomic_write(path, write) -> None:
    """Call ``write(tmp)`` on a temporary file in the target folder, then rename it into place
    with the usual permissions; on failure nothing is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""

    def _w(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    atomic_write(path, _w)


def write_text(path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` atomically, with Unix newlines."""
    write_bytes(path, text.encode(encoding))


def write_parquet(df, path) -> None:
    """Write a DataFrame to Parquet atomically and deterministically (no index, zstd)."""
    atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False, compression="zstd"))


# A column table is what the ingest jobs build and write without pandas (importing it takes
# longer than the rest of such a job): ``{name: (kind, values)}`` in column order, the values a
# list of Python objects and the kind one of the pandas dtypes below (pandas 3's string dtype is
# "str"), which is also the ``numpy_type`` ``DataFrame.to_parquet`` records for the column.

#: The ``pandas_type`` ``DataFrame.to_parquet`` records for a column of each kind (pyarrow's name
#: for a ``large_string`` column, where pandas 3 writes its strings, is "object").
_PANDAS_TYPES = {"str": "object", "int64": "int64", "float64": "float64"}


def columns_frame(columns):
    """The DataFrame of a column table: one column per entry, of its kind's dtype, and a
    RangeIndex."""
    import pandas as pd

    return pd.DataFrame(
        {name: pd.Series(values, dtype=kind) for name, (kind, values) in columns.items()}
    )


def pandas_version() -> str:
    """The installed pandas version, without importing pandas: its version module (meson builds
    of pandas), else the distribution's metadata."""
    import sys

    if "pandas" in sys.modules:
        return sys.modules["pandas"].__version__
    import importlib.util

    spec = importlib.util.find_spec("pandas")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        try:
            text = Path(folder, "_version_meson.py").read_text(encoding="utf-8")
        except OSError:
            continue
        m = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
        if m:
            return m.group(1)
    from importlib.metadata import version

    return version("pandas")


def installed_version(name: str) -> str | None:
    """``importlib.metadata.version(name)``, or None when ``name`` is not installed, without
    importing ``importlib.metadata`` (about 20 ms in a job) when the distribution is a
    ``*.dist-info`` folder: the first one on ``sys.path`` whose normalised name matches, and the
    ``Version`` field of its ``METADATA``, as ``importlib.metadata`` finds them. Anything else
    (an ``.egg-info``, a zip, an unreadable file) is left to ``importlib.metadata``."""
    import sys

    wanted = re.sub(r"[-_.]+", "_", name).lower()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem, dot, suffix = folder.rpartition(".")
            if suffix not in ("dist-info", "egg-info") or not dot:
                continue
            if re.sub(r"[-_.]+", "_", stem.partition("-")[0]).lower() != wanted:
                continue
            if suffix == "dist-info":
                version = _metadata_version(Path(entry or ".", folder, "METADATA"))
                if version is not None:
                    return version
            return _metadata_version_of(name)
    return _metadata_version_of(name)


def _metadata_version(path: Path) -> str | None:
    """The ``Version`` header of a core metadata file, None if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    return None  # end of the headers
                key, sep, value = line.partition(":")
                if sep and key.lower() == "version":
                    return value.strip()
    except (OSError, UnicodeDecodeError):
        return None
    return None


def _metadata_version_of(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _arrow_array(kind: str, values: list):
    """An Arrow array of one column of a column table, built from its buffers: ``pa.array``
    imports pandas to check whether the values are a pandas object.

    ``nan`` in a float column becomes null, as ``pa.array(..., from_pandas=True)`` makes it;
    string and integer columns have no missing values.
    """
    import numpy as np
    import pyarrow as pa

    n = len(values)
    if kind == "str":
        data = [v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(b) for b in data], out=offsets[1:])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))]
        return pa.Array.from_buffers(pa.large_string(), n, buffers, null_count=0)
    if kind == "int64":
        buffers = [None, pa.py_buffer(np.array(values, dtype=np.int64))]
        return pa.Array.from_buffers(pa.int64(), n, buffers, null_count=0)
    if kind != "float64":
        raise ValueError(f"unknown column kind {kind!r}, expected one of {list(_PANDAS_TYPES)}")
    array = np.array(values, dtype=np.float64)
    missing = np.isnan(array)
    nulls = int(missing.sum())
    validity = pa.py_buffer(np.packbits(~missing, bitorder="little")) if nulls else None
    return pa.Array.from_buffers(pa.float64(), n, [validity, pa.py_buffer(array)], null_count=nulls)


def write_columns(columns, path) -> None:
    """Write a column table to Parquet atomically, without pandas: the same bytes as
    :func:`write_parquet` of :func:`columns_frame` of the table.

    pyarrow builds the table; the schema carries the pandas metadata ``DataFrame.to_parquet``
    records (no index, the column dtypes, the pyarrow and pandas versions), so readers get the
    same DataFrame. As there, ``nan`` in a float column is stored as null. tests/test_io.py
    compares the bytes with those pandas writes.
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays, fields = [], []
    for name, (kind, values) in columns.items():
        arrays.append(_arrow_array(kind, values))
        fields.append(
            {
                "name": name,
                "field_name": name,
                "pandas_type": _PANDAS_TYPES[kind],
                "numpy_type": kind,
                "metadata": None,
            }
        )
    metadata = {
        "index_columns": [],
        "column_indexes": [],
        "columns": fields,
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": pandas_version(),
    }
    table = pa.Table.from_arrays(
        arrays, names=list(columns), metadata={b"pandas": json.dumps(metadata).encode("utf8")}
    )
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_csv(df, path, float_format: str | None = None) -> None:
    """Write a DataFrame to CSV atomically (UTF-8, ``\\n`` line ends, no index)."""
    atomic_write(
        path,
        lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n", float_format=float_format),
    )


def read_yaml(path):
    """Load a YAML file; a syntax error names the file and line."""
    import yaml

    # libyaml's parser when PyYAML has it: the same documents, ten times faster, which matters
    # for the files the workflow reads each time Snakemake parses it (schema, codebook, ...)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=loader)  # a safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = f"line {mark.line + 1}" if mark is not None else None
        raise DataError(
            path,
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            row=row,
            hint="check indentation and quoting at that line",
        ) from None


#: The project's caches in a workflow folder (inside Snakemake's own ``.snakemake`` folder).
WORKFLOW_CACHE = Path(".snakemake") / "nqp_resilience"


def is_plain(value) -> bool:
    """Is ``value`` made of JSON types only (mappings with string keys), so that it survives a
    JSON round trip with the same types?"""
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is None or isinstance(value, (str, bool, int, float))


def read_yaml_cached(path):
    """:func:`read_yaml`, kept as JSON in ``.snakemake/nqp_resilience/yaml/<sha256 of the
    file>.json`` when the current folder is a workflow folder (it has ``.snakemake``): a job that
    reads a YAML file (the estimate schema) then needs neither PyYAML's import (about 10 ms) nor
    the parse. Only a document of JSON types is kept; a missing or unreadable cache file, a file
    that changes while it is read, or any other folder reads the YAML as usual."""
    import hashlib
    import json

    if not WORKFLOW_CACHE.parent.is_dir():
        return read_yaml(path)
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return read_yaml(path)  # its own error
    cached = WORKFLOW_CACHE / "yaml" / f"{digest}.json"
    try:
        return _plain_document(json.loads(cached.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    document = read_yaml(path)
    try:
        unchanged = hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
        if unchanged and is_plain(document):
            write_text(cached, json.dumps({"document": document}, ensure_ascii=False))
    except OSError:
        pass  # a read-only folder: read the YAML every time
    return document


def _plain_document(kept):
    if not (isinstance(kept, dict) and kept.keys() == {"document"} and is_plain(kept)):
        raise ValueError("not a kept document")
    return kept["document"]
