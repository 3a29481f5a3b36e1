"""Fuzz suite: realistic mistakes and quirks of real yearbook / CNRDS / CEIC downloads.

Every case starts from a shipped raw file (``resources/raw/``), applies one small mutation that
users have met in real extracts, writes the result to ``tmp_path`` and runs the ingest entry
point (:func:`~nqp_resilience.data.ingest.ingest_table`). A case is either

* **harmless**: the ingest result equals the ingest of the unmodified copy (data columns exactly;
  ``source_line`` must point at a line of the mutated file that holds that record), or
* **an error**: a :class:`~nqp_resilience.errors.DataError` naming the file and, as applicable,
  the line, city, year, column, problem and hint.

No case may pass with changed results. Two end-to-end cases (two extracts for one year, a
deleted raw file) run the real Snakemake, because that behaviour lives in the workflow.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from nqp_resilience.data.cities import CityResolver
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.ingest import SOURCE_LINE, ingest_table
from nqp_resilience.errors import DataError

from conftest import ALIASES, ATTRIBUTES, CODEBOOK, RAW, snakemake

YEARS = (2010, 2021)
N_ROWS = 40  # rows of the shipped file kept in each copy (includes 110000 北京市 … 130300 秦皇岛市)
YEAR = 2016
YB_FILE = RAW / "yearbook" / f"city_yearbook_{YEAR}.csv"


# --------------------------------------------------------------------------- base extracts


def read_shipped(path: Path, n: int | None = N_ROWS):
    """Header and first ``n`` rows of a shipped CSV, read with the csv module (not our reader)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("gb18030")
    records = list(csv.reader(io.StringIO(text)))
    return records[0], [r for r in records[1:] if r][:n]


@dataclass
class Extract:
    """One mutated extract: records (rows of cells, the header among them) and how to write them."""

    source: str
    name: str
    records: list
    delimiter: str = ","
    encoding: str = "utf-8"
    newline: str = "\n"
    quoting: int = csv.QUOTE_MINIMAL
    raw_lines: dict = field(default_factory=dict)  # record index -> text written verbatim
    xlsx: dict | None = None  # sheet name -> records, for workbooks
    data: bytes | None = None  # bytes written verbatim

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if self.data is not None:
            path.write_bytes(self.data)
        elif self.xlsx is not None:
            write_xlsx(path, self.xlsx)
        else:
            buf = io.StringIO()
            writer = csv.writer(
                buf, delimiter=self.delimiter, lineterminator=self.newline, quoting=self.quoting
            )
            for i, rec in enumerate(self.records):
                if i in self.raw_lines:
                    buf.write(self.raw_lines[i] + self.newline)
                else:
                    writer.writerow(rec)
            path.write_bytes(buf.getvalue().encode(self.encoding))
        return path


def xlsx_value(cell: str):
    """A cell as a spreadsheet stores it: numbers as numbers (no thousands commas), text as text."""
    plain = cell.replace(",", "")
    if re.fullmatch(r"-?\d+", plain):
        return int(plain)
    if re.fullmatch(r"-?\d*\.\d+", plain):
        return float(plain)
    return cell


def write_xlsx(path: Path, sheets: dict) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, records in sheets.items():
        ws = wb.create_sheet(name)
        for rec in records:
            ws.append([xlsx_value(c) if isinstance(c, str) else c for c in rec])
    wb.save(path)


def yearbook(n=N_ROWS):
    header, rows = read_shipped(YB_FILE, n)
    return header, [list(r) for r in rows]


def yb(records, **kw) -> Extract:
    return Extract("yearbook", f"city_yearbook_{YEAR}.csv", records, **kw)


def col(header, name) -> int:
    return header.index(name)


def row_of(rows, code) -> int:
    return next(i for i, r in enumerate(rows) if r[0] == code)


FULL_WIDTH = str.maketrans("0123456789.,-", "０１２３４５６７８９．，－")


# --------------------------------------------------------------------------- harmless quirks


def h_bom():
    header, rows = yearbook()
    return yb([header, *rows], encoding="utf-8-sig")


def h_gbk():
    header, rows = yearbook()
    return yb([header, *rows], encoding="gbk")


def h_crlf():
    header, rows = yearbook()
    return yb([header, *rows], newline="\r\n")


def h_trailing_blank_columns():
    header, rows = yearbook()
    return yb([header + ["", "", ""]] + [r + ["", "", ""] for r in rows])


def h_title_row():
    header, rows = yearbook()
    title = [f"{YEAR}年中国城市统计年鉴 地级市数据"] + [""] * (len(header) - 1)
    return yb([title, header, *rows])


def h_title_and_scope_rows():
    header, rows = yearbook()
    return yb([["中国城市统计年鉴"], ["地级以上城市：全市"], header, *rows])


def h_unit_row():
    header, rows = yearbook()
    units = [
        re.search(r"\(([^()]*)\)$", h).group(1) if re.search(r"\(([^()]*)\)$", h) else ""
        for h in header
    ]
    units[0], units[1] = "单位", ""
    return yb([header, units, *rows])


def h_unit_row_full_width_brackets():
    header, rows = yearbook()
    units = ["", ""] + [f"（{re.search(r'[(]([^()]*)[)]$', h).group(1)}）" for h in header[2:]]
    return yb([header, units, *rows])


def h_totals_row_heji():
    header, rows = yearbook()
    total = ["", "合计"] + ["123,456"] * (len(header) - 2)
    return yb([header, *rows, total])


def h_totals_row_national_code():
    header, rows = yearbook()
    return yb([header, ["000000", "全国"] + ["9,999,999"] * (len(header) - 2), *rows])


def h_totals_row_province_code():
    header, rows = yearbook()
    i = row_of(rows, "130100")
    subtotal = ["130000", "河北省"] + ["888,888"] * (len(header) - 2)
    return yb([header, *rows[:i], subtotal, *rows[i:]])


def h_totals_row_quanshi_and_shixiaqu():
    header, rows = yearbook()
    i = row_of(rows, "130300")
    extra = [["", "全市"] + ["1"] * (len(header) - 2), ["", "市 辖 区"] + ["2"] * (len(header) - 2)]
    return yb([header, *rows[:i], *extra, *rows[i:]])


def h_totals_province_name_subtotal():
    header, rows = yearbook()
    i = row_of(rows, "130200")
    return yb([header, *rows[:i], ["", "河北省合计"] + ["7"] * (len(header) - 2), *rows[i:]])


def h_repeated_header():
    header, rows = yearbook()
    return yb([header, *rows[:20], header, *rows[20:]])


def h_concatenated_exports():
    header, rows = yearbook()
    title = [f"{YEAR}年中国城市统计年鉴（续表）"]
    units = ["", ""] + [re.search(r"\(([^()]*)\)$", h).group(1) for h in header[2:]]
    return yb([title, header, units, *rows[:15], title, header, units, *rows[15:]])


def h_reordered_columns():
    header, rows = yearbook()
    order = list(range(len(header)))[::-1]
    return yb([[header[j] for j in order]] + [[r[j] for j in order] for r in rows])


def h_reordered_rows():
    header, rows = yearbook()
    return yb([header, *rows[::-1]])


def h_semicolon():
    header, rows = yearbook()
    return yb([header, *[[c.replace(",", "") for c in r] for r in rows]], delimiter=";")


def h_tab():
    header, rows = yearbook()
    return yb([header, *rows], delimiter="\t")


def h_utf16_tab():
    """Excel's "Unicode text" export: UTF-16 with a byte-order mark, tab-delimited."""
    header, rows = yearbook()
    return yb([header, *rows], delimiter="\t", encoding="utf-16", newline="\r\n")


def h_quote_everything():
    header, rows = yearbook()
    return yb([header, *rows], quoting=csv.QUOTE_ALL)


def h_thousands_removed():
    header, rows = yearbook()
    return yb([header, *[r[:2] + [c.replace(",", "") for c in r[2:]] for r in rows]])


def h_full_width_digits():
    header, rows = yearbook()
    return yb(
        [
            header,
            *[[c.translate(FULL_WIDTH) if j != 1 else c for j, c in enumerate(r)] for r in rows],
        ]
    )


def h_dash_placeholders():
    header, rows = yearbook()
    return yb([header, *[[c if c.strip() else "—" for c in r] for r in rows]])


def h_footnote_row():
    header, rows = yearbook()
    return yb([header, *rows, ["注：本表按全市口径统计，资料来源：中国城市统计年鉴。"]])


def h_xlsx():
    header, rows = yearbook()
    return Extract("yearbook", f"city_yearbook_{YEAR}.xlsx", [], xlsx={"Sheet1": [header, *rows]})


def h_xlsx_notes_sheet_first():
    header, rows = yearbook()
    notes = [["说明"], ["本表数据来源于中国城市统计年鉴"], ["口径：全市"]]
    return Extract(
        "yearbook",
        f"city_yearbook_{YEAR}.xlsx",
        [],
        xlsx={"说明": notes, "数据": [[f"{YEAR}年 地级市"], header, *rows]},
    )


def h_patents_gbk_crlf_reordered():
    header, rows = read_shipped(RAW / "cnrds" / "patents.csv")
    return Extract("patents", "patents.csv", [header, *rows[::-1]], encoding="gbk", newline="\r\n")


def h_national_semicolon_title():
    header, rows = read_shipped(RAW / "ceic" / "national.csv", None)
    return Extract(
        "national", "national.csv", [["CEIC 国家宏观数据"], header, *rows], delimiter=";"
    )


def h_national_totals_row():
    header, rows = read_shipped(RAW / "ceic" / "national.csv", None)
    return Extract(
        "national", "national.csv", [header, *rows, ["合计"] + ["1"] * (len(header) - 1)]
    )


def h_relief_unit_row_tab():
    header, rows = read_shipped(RAW / "static" / "relief.csv")
    return Extract("relief", "relief.csv", [header, ["", "", "米"], *rows], delimiter="\t")


HARMLESS = {
    "bom_vs_no_bom": h_bom,
    "gbk_encoding": h_gbk,
    "crlf_line_ends": h_crlf,
    "trailing_blank_columns": h_trailing_blank_columns,
    "title_row_above_header": h_title_and_scope_rows,
    "title_row_padded_with_commas": h_title_row,
    "unit_row_under_header": h_unit_row,
    "unit_row_full_width_brackets": h_unit_row_full_width_brackets,
    "totals_row_heji": h_totals_row_heji,
    "totals_row_code_000000": h_totals_row_national_code,
    "subtotal_row_province_code": h_totals_row_province_code,
    "summary_rows_quanshi_shixiaqu": h_totals_row_quanshi_and_shixiaqu,
    "subtotal_row_province_name": h_totals_province_name_subtotal,
    "repeated_header_mid_file": h_repeated_header,
    "concatenated_exports_title_header_units": h_concatenated_exports,
    "reordered_columns": h_reordered_columns,
    "reordered_rows": h_reordered_rows,
    "semicolon_delimiter": h_semicolon,
    "tab_delimiter": h_tab,
    "utf16_tab_unicode_text": h_utf16_tab,
    "every_cell_quoted": h_quote_everything,
    "thousands_separators_removed": h_thousands_removed,
    "full_width_digits": h_full_width_digits,
    "dash_placeholders_for_blanks": h_dash_placeholders,
    "footnote_row_at_end": h_footnote_row,
    "xlsx_instead_of_csv": h_xlsx,
    "xlsx_notes_sheet_first": h_xlsx_notes_sheet_first,
    "patents_gbk_crlf_reordered": h_patents_gbk_crlf_reordered,
    "national_semicolon_with_title": h_national_semicolon_title,
    "national_totals_row": h_national_totals_row,
    "relief_tab_with_unit_row": h_relief_unit_row_tab,
}

#: What the job log must say for the harmless cases that skip or choose something.
LOGGED = {
    "title_row_above_header": "skipped a title row above the header",
    "unit_row_under_header": "skipped a unit row",
    "totals_row_heji": "skipped a totals row (合计)",
    "totals_row_code_000000": "skipped a totals row (code 000000)",
    "subtotal_row_province_code": "skipped a totals row (province code 130000 (河北省))",
    "summary_rows_quanshi_shixiaqu": "skipped a totals row (市辖区)",
    "subtotal_row_province_name": "skipped a totals row (河北省合计)",
    "repeated_header_mid_file": "skipped a repeated header row",
    "concatenated_exports_title_header_units": "skipped a title row above a repeated header",
    "semicolon_delimiter": "delimiter: semicolon",
    "tab_delimiter": "delimiter: tab",
    "utf16_tab_unicode_text": "delimiter: tab, encoding: utf-16",
    "footnote_row_at_end": "skipped a note row",
    "xlsx_notes_sheet_first": (
        "sheet '数据' (its header maps to the codebook); skipped sheets: '说明'"
    ),
}


# --------------------------------------------------------------------------- fixtures and runner


@pytest.fixture(scope="module")
def codebook():
    return Codebook(CODEBOOK)


@pytest.fixture(scope="module")
def resolver():
    return CityResolver(ATTRIBUTES, ALIASES)


def run_ingest(path: Path, source: str, codebook, resolver):
    src = codebook[source]
    years = (YEARS[0] - src.years_before, YEARS[1])
    return ingest_table(
        path,
        src,
        resolver if src.grain != "year" else None,
        years,
        year=YEAR if source == "yearbook" else None,
    )


def clean_copy(extract: Extract, folder: Path) -> Path:
    """The unmodified shipped rows of the same source, written plainly."""
    if extract.source == "yearbook":
        header, rows = yearbook()
    else:
        shipped = {
            "patents": "cnrds/patents.csv",
            "national": "ceic/national.csv",
            "relief": "static/relief.csv",
        }
        header, rows = read_shipped(
            RAW / shipped[extract.source], None if extract.source == "national" else N_ROWS
        )
    folder.mkdir()
    return Extract(extract.source, extract.name.replace(".xlsx", ".csv"), [header, *rows]).write(
        folder
    )


@pytest.mark.parametrize("case", list(HARMLESS), ids=list(HARMLESS))
def test_harmless_quirk_gives_the_clean_result(case, codebook, resolver, tmp_path, caplog):
    extract = HARMLESS[case]()
    reference = run_ingest(
        clean_copy(extract, tmp_path / "clean"), extract.source, codebook, resolver
    )
    (tmp_path / "mutated").mkdir()
    path = extract.write(tmp_path / "mutated")
    with caplog.at_level(logging.INFO, logger="nqp_resilience"):
        result = run_ingest(path, extract.source, codebook, resolver)
    assert len(reference) > 4
    pd.testing.assert_frame_equal(
        result.drop(columns=SOURCE_LINE), reference.drop(columns=SOURCE_LINE)
    )
    if case in LOGGED:
        assert LOGGED[case] in caplog.text
    if path.suffix == ".csv":  # source_line points at the record's own line in the mutated file
        data = path.read_bytes()
        text = (
            data.decode("utf-16") if extract.encoding == "utf-16" else data.decode(extract.encoding)
        )
        lines = text.splitlines()
        key = "city_code" if "city_code" in result else "year"
        for rec in result.itertuples():
            value = getattr(rec, key)
            line = lines[getattr(rec, SOURCE_LINE) - 1].translate(
                {ord(a): b for a, b in zip("０１２３４５６７８９", "0123456789", strict=True)}
            )
            if key == "city_code" and value in ("420600", "520500"):
                continue  # alias codes and names
            assert str(value) in line


def test_log_names_delimiter_and_skipped_rows(codebook, resolver, tmp_path, caplog):
    """The job log says what was skipped, by line."""
    extract = h_concatenated_exports()
    path = extract.write(tmp_path)
    with caplog.at_level(logging.INFO, logger="nqp_resilience"):
        run_ingest(path, "yearbook", codebook, resolver)
    assert "delimiter: comma" in caplog.text
    assert "line 1: skipped a title row above the header" in caplog.text
    assert "line 3: skipped a unit row" in caplog.text
    assert "line 19: skipped a title row above a repeated header" in caplog.text
    assert "line 20: skipped a repeated header row" in caplog.text
    assert "line 21: skipped a unit row" in caplog.text


# --------------------------------------------------------------------------- mistakes


@dataclass
class Expect:
    """What a DataError must say (substrings; ``None`` = not checked)."""

    problem: str
    row: str | None = None
    column: str | None = None
    hint: str | None = None
    expected: str | None = None
    in_message: tuple = ()


def city(code, name, line, year=YEAR):
    return f"line {line} (city {code} {name}, year {year})"


def unquoted(row, cell: str) -> str:
    """The CSV line of ``row`` with ``cell`` written without quotes (other cells as usual)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    assert f'"{cell}"' in buf.getvalue()
    return buf.getvalue().replace(f'"{cell}"', cell)


def e_unquoted_thousands_last_column():
    header, rows = yearbook()
    i = row_of(rows, "130200")
    rows[i][-1] = "1,318.1"
    ext = yb([header, *rows])
    ext.raw_lines = {i + 1: unquoted(rows[i], "1,318.1")}
    return ext, Expect(
        "the row has 28 cells but the header has 27 columns",
        row=city("130200", "唐山市", i + 2),
        hint="an unquoted thousands separator such as 1,318.1 splits a cell; quote the cell",
        in_message=("'1' and '318.1' under '互联网宽带接入用户数(万户)'",),
    )


def e_unquoted_thousands_middle_column():
    header, rows = yearbook()
    i, j = row_of(rows, "120000"), col(header, "在岗职工平均工资(元)")
    rows[i][j] = "82,740"
    ext = yb([header, *rows])
    ext.raw_lines = {i + 1: unquoted(rows[i], "82,740")}
    return ext, Expect(
        "the row has 28 cells but the header has 27 columns",
        row=city("120000", "天津市", i + 2),
        hint="quote the cell",
        in_message=("'82' and '740' under '在岗职工平均工资(元)'",),
    )


def e_row_missing_last_ten_cells():
    header, rows = yearbook()
    i = row_of(rows, "130300")
    rows[i] = rows[i][:-10]
    return yb([header, *rows]), Expect(
        "the row has 17 cells but the header has 27 columns: the last 10 cells are missing",
        row=city("130300", "秦皇岛市", i + 2),
        column=f"{header[17]!r} to {header[-1]!r}",
        hint="re-export the extract",
    )


def e_stray_delimiter_in_name():
    header, rows = yearbook()
    i = row_of(rows, "130100")
    rows[i] = rows[i][:2] + ["长安区"] + rows[i][2:]
    return yb([header, *rows]), Expect(
        "the row has 28 cells but the header has 27 columns",
        row=city("130100", "石家庄市", i + 2),
        hint="stray delimiter",
    )


def e_unit_row_contradicts_codebook():
    header, rows = yearbook()
    units = ["", ""] + [re.search(r"\(([^()]*)\)$", h).group(1) for h in header[2:]]
    units[col(header, "地区生产总值(当年价格)(万元)")] = "亿元"
    return yb([header, units, *rows]), Expect(
        "the unit row says '亿元' for this column, but the codebook's unit is '万元'",
        row="line 2 (unit row under the header)",
        column="'地区生产总值(当年价格)(万元)' (gdp)",
        hint="convert the column's values to 万元",
    )


def e_unit_row_per_mille():
    header, rows = yearbook()
    units = ["单位", ""] + ["" for _ in header[2:]]
    units[col(header, "地区生产总值增长率(%)")] = "‰"
    return yb([header, units, *rows]), Expect(
        "the unit row says '‰' for this column, but the codebook's unit is '%'",
        column="'地区生产总值增长率(%)' (gdp_growth)",
    )


def e_semicolon_decimal_comma():
    header, rows = yearbook()
    rows = [[c.replace(",", "") for c in r] for r in rows]
    i, j = row_of(rows, "130100"), col(header, "地区生产总值增长率(%)")
    rows[i][j] = rows[i][j].replace(".", ",")
    return yb([header, *rows], delimiter=";"), Expect(
        "has a comma in a semicolon-delimited file",
        row=city("130100", "石家庄市", i + 2),
        column="'地区生产总值增长率(%)' (gdp_growth)",
        hint="period as the decimal mark",
    )


def e_ambiguous_delimiter():
    """A European-locale export with English headers: decimal commas, semicolons between cells."""
    header, rows = read_shipped(RAW / "ceic" / "national.csv", None)
    english = ["year", "GDP growth", "internet users", "CNY per USD", "employment", "college share"]
    body = [[r[0]] + [c.replace(".", ",") for c in r[1:]] for r in rows]
    ext = Extract("national", "national.csv", [english, *body], delimiter=";")
    return ext, Expect(
        "the field delimiter is ambiguous: comma (6 columns), semicolon (6 columns)",
        hint="CSV UTF-8 (comma delimited)",
    )


def e_xlsx_two_data_sheets():
    header, rows = yearbook()
    return (
        Extract(
            "yearbook",
            f"city_yearbook_{YEAR}.xlsx",
            [],
            xlsx={"全市": [header, *rows], "市辖区": [header, *rows]},
        ),
        Expect(
            "several sheets have a header that maps to the codebook: '全市', '市辖区'",
            hint="市辖区 scope",
        ),
    )


def e_xlsx_no_data_sheet():
    header, rows = yearbook()
    header = ["code", "name"] + header[2:]
    return (
        Extract(
            "yearbook",
            f"city_yearbook_{YEAR}.xlsx",
            [],
            xlsx={"说明": [["说明"], ["口径"]], "Sheet2": [header, *rows]},
        ),
        Expect(
            "no sheet has a header row that maps to the codebook",
            hint="sheets: '说明' (first row: '说明'); 'Sheet2'",
        ),
    )


def _xlsx_bytes(header, rows) -> bytes:
    buf = io.BytesIO()
    from openpyxl import Workbook

    wb = Workbook()
    for rec in [header, *rows]:
        wb.active.append([xlsx_value(c) for c in rec])
    wb.save(buf)
    return buf.getvalue()


def e_xlsx_truncated_download():
    header, rows = yearbook()
    data = _xlsx_bytes(header, rows)
    return (
        Extract("yearbook", f"city_yearbook_{YEAR}.xlsx", [], data=data[: len(data) // 2]),
        Expect("the file is not a readable .xlsx workbook (BadZipFile", hint="interrupted"),
    )


def e_xlsx_broken_sheet_xml():
    header, rows = yearbook()
    src = zipfile.ZipFile(io.BytesIO(_xlsx_bytes(header, rows)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = body[: len(body) * 2 // 3]  # valid zip, sheet XML cut off mid-way
            dst.writestr(item, body)
    return (
        Extract("yearbook", f"city_yearbook_{YEAR}.xlsx", [], data=out.getvalue()),
        Expect("the file is not a readable .xlsx workbook", hint="re-save it"),
    )


def e_csv_renamed_to_xlsx():
    return (
        Extract("yearbook", f"city_yearbook_{YEAR}.xlsx", [], data=YB_FILE.read_bytes()),
        Expect("the file is not a readable .xlsx workbook"),
    )


def e_unknown_header():
    header, rows = yearbook()
    header[col(header, "年末户籍人口(万人)")] = "年末户籍人口(人)"
    return yb([header, *rows]), Expect(
        "unknown header",
        column="'年末户籍人口(人)'",
        hint="closest codebook header: '年末户籍人口(万人)' (canonical name 'population')",
    )


def e_missing_column():
    header, rows = yearbook()
    j = col(header, "教育支出(万元)")
    return (
        yb([header[:j] + header[j + 1 :], *[r[:j] + r[j + 1 :] for r in rows]]),
        Expect(
            "missing required column 'education_expenditure'",
            column="'教育支出(万元)' (education_expenditure)",
            hint="add the column",
        ),
    )


def e_non_numeric_cell():
    header, rows = yearbook()
    i, j = row_of(rows, "130200"), col(header, "公路里程(公里)")
    rows[i][j] = "15,000公里"
    return yb([header, *rows]), Expect(
        "non-numeric value '15,000公里'",
        row=city("130200", "唐山市", i + 2),
        column="'公路里程(公里)' (road_length)",
        hint="units inside cells must be removed",
    )


def e_negative_denominator():
    header, rows = yearbook()
    i, j = row_of(rows, "120000"), col(header, "第二产业增加值(万元)")
    rows[i][j] = "-5,307,931"
    return yb([header, *rows]), Expect(
        "value -5.30793e+06 is not positive",
        row=city("120000", "天津市", i + 2),
        column="'第二产业增加值(万元)' (gdp_secondary)",
        hint="leave the cell blank",
    )


def e_duplicate_city_year():
    header, rows = read_shipped(RAW / "cnrds" / "patents.csv")
    rows = rows + [list(rows[3])]
    code, name, year = rows[3][1], rows[3][2], rows[3][0]
    return (
        Extract("patents", "patents.csv", [header, *rows]),
        Expect(
            f"duplicate record for city {code}, year {year}: lines 5 and {len(rows) + 1}",
            row=f"line {len(rows) + 1} (city {code} {name}, year {year})",
            hint="delete one of the two rows",
        ),
    )


def e_city_scope_row_with_code():
    """A 全市 row carrying a real city code is that city's: a second record, not a silent skip."""
    header, rows = yearbook()
    i = row_of(rows, "130100")
    rows.append(["130100", "全市"] + rows[i][2:])
    return yb([header, *rows]), Expect(
        f"duplicate record for city 130100, year {YEAR}: lines {i + 2} and {len(rows) + 1}"
    )


def e_unknown_city_code():
    header, rows = yearbook()
    i = row_of(rows, "130300")
    rows[i][0] = "130399"
    return yb([header, *rows]), Expect(
        "unknown city code 130399 (秦皇岛市)",
        row=city("130399", "秦皇岛市", i + 2),
        column="city code",
        hint="秦皇岛市 is city code 130300",
    )


def e_province_code_typo():
    """130100 typed as 130000 (a province code): the row is reported, not skipped as a subtotal."""
    header, rows = yearbook()
    i = row_of(rows, "130100")
    rows[i][0] = "130000"
    return yb([header, *rows]), Expect(
        "unknown city code 130000 (石家庄市)",
        row=city("130000", "石家庄市", i + 2),
        column="city code",
        hint="石家庄市 is city code 130100",
    )


def e_row_without_city():
    header, rows = yearbook()
    i = row_of(rows, "130200")
    rows[i][0], rows[i][1] = "", ""
    return yb([header, *rows]), Expect(
        "the row has neither a city code nor a city name",
        row=f"line {i + 2}",
        column="city code",
        hint="delete it",
    )


def e_year_out_of_range():
    header, rows = read_shipped(RAW / "cnrds" / "patents.csv")
    rows[2][0] = "2009"
    return (
        Extract("patents", "patents.csv", [header, *rows]),
        Expect(
            "year 2009 is outside the configured range 2010–2021",
            row=f"line 4 (city {rows[2][1]} {rows[2][2]})",
            column="year",
            hint="drop rows outside the study period",
        ),
    )


def e_empty_file():
    return Extract("yearbook", f"city_yearbook_{YEAR}.csv", [], data=b""), Expect(
        "the file is empty", hint="re-export"
    )


def e_header_only():
    header, _ = yearbook()
    return yb([header]), Expect("the file has a header but no data rows")


def e_only_totals_and_units():
    header, _ = yearbook()
    units = ["", ""] + [re.search(r"\(([^()]*)\)$", h).group(1) for h in header[2:]]
    return yb([header, units, ["", "合计"] + ["1"] * (len(header) - 2)]), Expect(
        "the file has no data rows"
    )


def e_undecodable_file():
    header, rows = yearbook(3)
    data = (
        ",".join(header).encode()
        + b"\n110000,\x81\x30\xff\xff,"
        + b",".join(c.encode() for c in rows[0][2:])
        + b"\n"
    )
    return Extract("yearbook", f"city_yearbook_{YEAR}.csv", [], data=data), Expect(
        "cannot be decoded", hint="iconv"
    )


MISTAKES = {
    "unquoted_thousands_in_last_column": e_unquoted_thousands_last_column,
    "unquoted_thousands_in_middle_column": e_unquoted_thousands_middle_column,
    "row_missing_last_ten_cells": e_row_missing_last_ten_cells,
    "stray_delimiter_in_a_row": e_stray_delimiter_in_name,
    "unit_row_contradicts_codebook": e_unit_row_contradicts_codebook,
    "unit_row_per_mille_for_percent": e_unit_row_per_mille,
    "semicolon_file_with_decimal_comma": e_semicolon_decimal_comma,
    "ambiguous_delimiter": e_ambiguous_delimiter,
    "xlsx_two_data_sheets": e_xlsx_two_data_sheets,
    "xlsx_no_sheet_maps": e_xlsx_no_data_sheet,
    "xlsx_truncated_download": e_xlsx_truncated_download,
    "xlsx_broken_sheet_xml": e_xlsx_broken_sheet_xml,
    "csv_renamed_to_xlsx": e_csv_renamed_to_xlsx,
    "unknown_header": e_unknown_header,
    "missing_column": e_missing_column,
    "non_numeric_cell": e_non_numeric_cell,
    "negative_denominator": e_negative_denominator,
    "duplicate_city_year": e_duplicate_city_year,
    "city_scope_row_with_code": e_city_scope_row_with_code,
    "unknown_city_code": e_unknown_city_code,
    "row_without_city": e_row_without_city,
    "province_code_typo_for_a_city": e_province_code_typo,
    "year_out_of_range": e_year_out_of_range,
    "empty_file": e_empty_file,
    "header_only": e_header_only,
    "only_totals_and_units": e_only_totals_and_units,
    "undecodable_file": e_undecodable_file,
}


@pytest.mark.parametrize("case", list(MISTAKES), ids=list(MISTAKES))
def test_mistake_is_an_error_naming_it(case, codebook, resolver, tmp_path):
    extract, expect = MISTAKES[case]()
    path = extract.write(tmp_path)
    with pytest.raises(DataError) as info:
        run_ingest(path, extract.source, codebook, resolver)
    err, msg = info.value, str(info.value)
    assert err.file == str(path) and msg.startswith(f"file {path}")
    assert expect.problem in err.problem, err.problem
    for part, want in (
        ("row", expect.row),
        ("column", expect.column),
        ("hint", expect.hint),
        ("expected", expect.expected),
    ):
        if want is not None:
            got = getattr(err, part)
            assert got is not None and want in got, f"{part}: {got!r}"
            assert got in msg
    for text in expect.in_message:
        assert text in msg


def test_suite_covers_at_least_thirty_cases():
    assert len(HARMLESS) + len(MISTAKES) >= 30


# --------------------------------------------------------------------------- in the workflow


@pytest.mark.slow
def test_two_extracts_for_one_year_stop_the_run(workflow_copy):
    """A .csv and an .xlsx for the same year: an error naming both, before any job runs."""
    folder = workflow_copy / "resources" / "raw" / "yearbook"
    shutil.copy2(folder / "city_yearbook_2021.xlsx", folder / "city_yearbook_2015.xlsx")
    before = (workflow_copy / "results" / "interim" / "yearbook_2015.parquet").stat().st_mtime_ns
    proc = snakemake(workflow_copy, "--cores", "1", check=False)
    assert proc.returncode != 0
    assert "two extracts for data year 2015" in proc.stdout
    assert (
        "city_yearbook_2015.csv and resources/raw/yearbook/city_yearbook_2015.xlsx" in proc.stdout
    )
    assert "delete or move the one you do not want to use" in proc.stdout
    assert 'File "' not in proc.stdout  # the message, without Snakemake's traceback frames
    assert (
        workflow_copy / "results" / "interim" / "yearbook_2015.parquet"
    ).stat().st_mtime_ns == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "relative, problem, hint",
    [
        (
            "yearbook/city_yearbook_2015.csv",
            "no yearbook extract for data year 2015",
            "add the extract of that year",
        ),
        ("cnrds/patents.csv", "the raw file of source 'patents' is missing", "restore the file"),
        ("static/relief.csv", "the raw file of source 'relief' is missing", "restore the file"),
        (
            "reports/130000_2015.txt",
            "1 government work report(s) missing: 130000_2015.txt",
            "add the report",
        ),
    ],
    ids=["yearbook_year", "cnrds_file", "static_file", "work_report"],
)
def test_raw_file_deleted_after_a_run_is_an_error(workflow_copy, relative, problem, hint):
    """Snakemake would rerun the reports on the remaining files (their input was a glob) or keep
    the old results; each deletion must instead stop the run naming the file."""
    (workflow_copy / "resources" / "raw" / relative).unlink()
    proc = snakemake(workflow_copy, "-n", check=False)
    assert proc.returncode != 0
    assert f"file resources/raw/{relative}" in proc.stdout
    assert problem in proc.stdout and hint in proc.stdout


# --------------------------------------------------------------------------- raw folder checks


def raw_folder(tmp_path: Path) -> Path:
    """A raw folder with the shipped layout (files copied, so they can be deleted)."""
    raw = tmp_path / "raw"
    shutil.copytree(RAW, raw)
    return raw


def test_raw_folder_check_passes_on_the_shipped_files(tmp_path):
    from nqp_resilience.data.raw_files import check_raw_files, report_paths, yearbook_path

    raw = raw_folder(tmp_path)
    check_raw_files(raw, YEARS, ATTRIBUTES)
    assert yearbook_path(raw, 2021).endswith("city_yearbook_2021.xlsx")
    assert len(report_paths(raw, ATTRIBUTES, YEARS)) == 32 * 12  # 31 provinces and the centre


@pytest.mark.parametrize(
    "change, problem, hint",
    [
        (
            lambda raw: shutil.copy(
                raw / "yearbook/city_yearbook_2021.xlsx", raw / "yearbook/city_yearbook_2012.xlsx"
            ),
            "two extracts for data year 2012",
            "delete or move the one",
        ),
        (
            lambda raw: (raw / "yearbook/city_yearbook_2012.csv").rename(
                raw / "yearbook/city_yearbook_2012.xls"
            ),
            "no yearbook extract for data year 2012",
            "old binary Excel format",
        ),
        (
            lambda raw: (raw / "yearbook/city_yearbook_2012.csv").unlink(),
            "no yearbook extract for data year 2012",
            "narrow `years`",
        ),
        (
            lambda raw: (raw / "ceic/national.csv").rename(raw / "ceic/national.xlsx"),
            "the raw file of source 'national' is missing",
            "found national.xlsx instead",
        ),
        (
            lambda raw: [
                (raw / f"reports/{n}.txt").unlink() for n in ("650000_2010", "650000_2021")
            ],
            "2 government work report(s) missing: 650000_2010.txt, 650000_2021.txt",
            "add the report",
        ),
    ],
    ids=["csv_and_xlsx", "old_xls", "year_missing", "source_as_xlsx", "reports_missing"],
)
def test_raw_folder_check_names_the_file(tmp_path, change, problem, hint):
    from nqp_resilience.data.raw_files import check_raw_files

    raw = raw_folder(tmp_path)
    change(raw)
    with pytest.raises(DataError) as info:
        check_raw_files(raw, YEARS, ATTRIBUTES)
    assert problem in info.value.problem and hint in info.value.hint
    assert str(info.value).startswith(f"file {raw}")
