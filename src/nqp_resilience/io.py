"""Reading raw extracts and writing outputs atomically.

Raw side: :func:`read_raw_table` returns the header and the cell strings of a CSV (UTF-8,
UTF-8 with BOM, GBK/GB18030) or ``.xlsx`` file, and :func:`parse_number` turns one cell into a
float, understanding the yearbooks' placeholders, thousands separators and full-width digits.

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
PLACEHOLDERS = frozenset({"", "—", "——", "-", "--", "…", "...", "……", "NA", "N/A", "na", "nan", "NaN", "null", "无"})

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")

#: Encodings tried in order for CSV files. GB18030 is a superset of GBK and GB2312.
CSV_ENCODINGS = ("utf-8-sig", "gb18030")


class RawTable:
    """A raw table as read from disk: header strings and rows of cells.

    ``line_numbers[i]`` is the 1-based line (CSV) or sheet row (xlsx) of ``rows[i]``, so
    messages can point a user at the exact place in their file.
    """

    def __init__(self, path, header, rows, line_numbers, encoding):
        self.path = str(path)
        self.header = header
        self.rows = rows
        self.line_numbers = line_numbers
        self.encoding = encoding


def normalise_text(value: str) -> str:
    """NFKC-normalise and strip a header or cell (full-width digits and brackets become ASCII)."""
    return unicodedata.normalize("NFKC", value).strip()


def decode_bytes(path, data: bytes, encodings=CSV_ENCODINGS) -> tuple[str, str]:
    """Decode ``data`` with the first encoding that works; raise :class:`DataError` otherwise."""
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


def read_raw_table(path) -> RawTable:
    """Read a raw CSV or xlsx file into a :class:`RawTable` of strings.

    Empty files, files with a header but no rows, and undecodable files raise
    :class:`DataError`. Numbers in xlsx cells are kept as numbers.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(path, "the file does not exist", hint="check raw_dir and the file name")
    if path.stat().st_size == 0:
        raise DataError(path, "the file is empty", expected="a header row and one row per record",
                        hint="re-export the extract; an interrupted download leaves empty files")
    if path.suffix.lower() == ".xlsx":
        header, rows, lines, enc = _read_xlsx(path)
    else:
        header, rows, lines, enc = _read_csv(path)
    if not header or all(h == "" for h in header):
        raise DataError(path, "the file has no header row", expected="column names in the first row")
    if not rows:
        raise DataError(path, "the file has a header but no data rows",
                        hint="re-export the extract with its records")
    return RawTable(path, header, rows, lines, enc)


def _read_csv(path: Path):
    import csv
    import io

    text, enc = decode_bytes(path, path.read_bytes())
    reader = csv.reader(io.StringIO(text))
    header = None
    rows, lines = [], []
    for record in reader:
        if header is None:
            if not any(c.strip() for c in record):
                continue
            header = [normalise_text(c) for c in record]
            continue
        if not any(c.strip() for c in record):
            continue
        rows.append(record)
        lines.append(reader.line_num)
    return header or [], rows, lines, enc


def _read_xlsx(path: Path):
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise DataError(path, f"the file is not a readable .xlsx workbook ({exc.__class__.__name__})",
                        hint="open and re-save it in a spreadsheet program, or export it as CSV") from None
    ws = wb.worksheets[0]
    header = None
    rows, lines = [], []
    for idx, record in enumerate(ws.iter_rows(values_only=True), start=1):
        cells = ["" if c is None else c for c in record]
        if header is None:
            if not any(str(c).strip() for c in cells):
                continue
            header = [normalise_text(str(c)) for c in cells]
            continue
        if not any(str(c).strip() for c in cells):
            continue
        rows.append(cells)
        lines.append(idx)
    wb.close()
    return header or [], rows, lines, "xlsx"


def parse_number(cell) -> float:
    """Parse one raw cell into a float; missing placeholders give ``nan``.

    Handles full-width digits (``１２３``), thousands separators (``1,234.5``), and the
    placeholders in :data:`PLACEHOLDERS`. Raises ``ValueError`` for anything else.
    """
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


def write_csv(df, path, float_format: str | None = None) -> None:
    """Write a DataFrame to CSV atomically (UTF-8, ``\\n`` line ends, no index)."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, lineterminator="\n", float_format=float_format))


def read_yaml(path):
    """Load a YAML file; a syntax error names the file and line."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = f"line {mark.line + 1}" if mark is not None else None
        raise DataError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}", row=row,
                        hint="check indentation and quoting at that line") from None
