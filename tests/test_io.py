"""Raw-cell parsing, raw-table reading and atomic output writing."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
import random
import subprocess
import sys
import unicodedata

import pandas as pd
import pytest

from nqp_resilience.data.cities import CityResolver
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.ingest import (
    header_matcher,
    ingest_columns,
    ingest_reports,
    ingest_table,
    report_columns,
)
from nqp_resilience.data.io import (
    MAX_LEADING_ROWS,
    columns_frame,
    installed_version,
    is_plain,
    normalise_text,
    pandas_version,
    parse_number,
    read_raw_table,
    read_yaml,
    read_yaml_cached,
    write_columns,
    write_parquet,
    write_text,
)
from nqp_resilience.errors import DataError

from conftest import ALIASES, ATTRIBUTES, CODEBOOK, RAW


@pytest.mark.parametrize(
    "cell, value",
    [
        ("1234.5", 1234.5),
        ("1,234,567.25", 1234567.25),
        ("１２３４", 1234.0),
        ("１，２３４．５", 1234.5),
        ("-2", -2.0),
        (" 7 ", 7.0),
        ("1e3", 1000.0),
        (12, 12.0),
        (3.25, 3.25),
        ("－3", -3.0),
    ],
)
def test_parse_number_values(cell, value):
    assert parse_number(cell) == value


@pytest.mark.parametrize("cell", ["", "—", "——", "…", "...", "-", "NA", None, "  "])
def test_parse_number_placeholders_are_missing(cell):
    assert math.isnan(parse_number(cell))


@pytest.mark.parametrize("cell", ["12a3", "1,23", "12%", "1.2.3", "约100", True])
def test_parse_number_rejects_text(cell):
    with pytest.raises(ValueError):
        parse_number(cell)


def test_csv_and_xlsx_give_the_same_table(tmp_path):
    """The same extract as GBK CSV, UTF-8-BOM CSV and xlsx ingests to identical tables."""
    from openpyxl import Workbook

    header = ["城市代码", "城市名称", "关键指标(万元)"]
    rows = [
        ["110000", "北京市", "1,234"],
        ["120000", "天津市", "—"],
        ["130100", "石家庄市", "５６"],
    ]
    text = (
        "\n".join(",".join(f'"{c}"' if "," in c else c for c in r) for r in [header, *rows]) + "\n"
    )
    (tmp_path / "a.csv").write_bytes(text.encode("gbk"))
    (tmp_path / "b.csv").write_bytes(text.encode("utf-8-sig"))
    wb = Workbook()
    wb.active.append(header)
    for r in ([110000, "北京市", 1234], ["120000", "天津市", "—"], ["130100", "石家庄市", 56]):
        wb.active.append(r)
    wb.save(tmp_path / "c.xlsx")
    tables = [read_raw_table(tmp_path / n) for n in ("a.csv", "b.csv", "c.xlsx")]
    assert [t.encoding for t in tables] == ["gb18030", "utf-8-sig", "xlsx"]
    parsed = [[[parse_number(c) for c in r[2:]] for r in t.rows] for t in tables]
    assert parsed[0] == parsed[1]
    assert parsed[0][0] == [1234.0] and math.isnan(parsed[0][1][0]) and parsed[0][2] == [56.0]
    assert parsed[2][0] == [1234.0] and parsed[2][2] == [56.0]
    assert [t.header for t in tables] == [header] * 3


def test_unit_conversion_and_name_only_rows(tmp_path):
    source = Codebook(CODEBOOK)["relief"]
    resolver = CityResolver(ATTRIBUTES, ALIASES)
    path = tmp_path / "relief.csv"
    path.write_text("城市名称,地形起伏度(米)\n襄樊市,120.5\n北京市,—\n", encoding="utf-8")
    df = ingest_table(path, source, resolver, (2010, 2021))
    assert df["city_code"].tolist() == ["110000", "420600"]
    assert math.isnan(df["relief"].iloc[0]) and df["relief"].iloc[1] == 120.5
    yb = Codebook(CODEBOOK)["yearbook"]
    assert yb.variables["gdp"].factor == 10000 and yb.variables["gdp_growth"].factor == 0.01


def test_code_and_name_that_disagree(tmp_path):
    resolver = CityResolver(ATTRIBUTES, ALIASES)
    with pytest.raises(
        DataError, match="130100 is 石家庄市 in the attribute table, but the row names 唐山市"
    ):
        resolver.resolve("130100", "唐山市", file="x.csv", row="line 2")
    assert resolver.resolve("522400", "毕节地区", year=2010) == "520500"
    assert resolver.resolve("130100.0", "") == "130100"


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out" / "panel.parquet"
    write_parquet(pd.DataFrame({"a": [1, 2]}), target)
    before = target.read_bytes()

    class Boom(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            with open(args[0], "wb") as fh:
                fh.write(b"partial")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_parquet(Boom({"a": [3]}), target)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == [
        "panel.parquet"
    ]  # no temporary left behind


def test_parquet_output_is_deterministic(tmp_path):
    df = pd.DataFrame({"city_code": ["110000", "120000"], "x": [1.5, 2.5]})
    write_parquet(df, tmp_path / "a.parquet")
    write_parquet(df, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    write_text(tmp_path / "t.md", "一\n")
    assert (tmp_path / "t.md").read_bytes() == "一\n".encode()


# --------------------------------------------------------------------------- ingest without pandas
# The ingest jobs build their tables as column tables and write them with pyarrow
# (``write_columns``): importing pandas would take longer than the rest of such a job. The files
# must stay byte for byte those pandas wrote, and the tables those ``ingest_table`` returns.


def _column_table():
    return {
        "city_code": ("str", ["110000", "北京市", "", "a\u00e9 b"]),
        "year": ("int64", [2010, -1, 0, 2**40]),
        "x": ("float64", [1.5, math.nan, -0.0, float("inf")]),
        "all_missing": ("float64", [math.nan] * 4),
    }


@pytest.mark.parametrize("rows", [4, 0])
def test_write_columns_writes_the_bytes_pandas_writes(tmp_path, rows):
    columns = {k: (kind, values[:rows]) for k, (kind, values) in _column_table().items()}
    write_columns(columns, tmp_path / "arrow.parquet")
    write_parquet(columns_frame(columns), tmp_path / "pandas.parquet")
    assert (tmp_path / "arrow.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "arrow.parquet")
    pd.testing.assert_frame_equal(back, columns_frame(columns))
    if rows:
        assert back["x"].isna().tolist() == [False, True, False, False]  # nan stored as null


def _shipped_extracts():
    """(raw file, source, data year) of every shipped extract."""
    out = [(p, "yearbook", int(p.stem[-4:])) for p in sorted((RAW / "yearbook").glob("*.*"))]
    files = Codebook(CODEBOOK).files()
    return out + [(RAW / files[name], name, None) for name in files]


@pytest.mark.parametrize(
    "raw, source, year", _shipped_extracts(), ids=lambda x: getattr(x, "name", str(x))
)
def test_ingest_columns_is_the_ingest_table(tmp_path, raw, source, year):
    """The ingest job's file equals, byte for byte, the DataFrame ``ingest_table`` written by
    pandas, and reads back as that DataFrame."""
    codebook = Codebook(CODEBOOK)
    src = codebook[source]
    resolver = CityResolver(ATTRIBUTES, ALIASES) if src.grain != "year" else None
    years = (2010 - src.years_before, 2021)
    columns = ingest_columns(raw, src, resolver, years, year=year)
    df = ingest_table(raw, src, resolver, years, year=year)
    write_columns(columns, tmp_path / "job.parquet")
    write_parquet(df, tmp_path / "frame.parquet")
    assert (tmp_path / "job.parquet").read_bytes() == (tmp_path / "frame.parquet").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "job.parquet"), df)


def _numbers(rng, n):
    """Plain numbers in every spelling a CSV cell may have (signs, no integer or no fraction
    digits, exponents, long digit strings that round), and blanks."""
    out = []
    for _ in range(n):
        v = rng.uniform(0.001, 5e6)
        style = rng.randrange(9)
        if style == 0:
            out.append("")
        elif style == 1:
            out.append(str(int(v)))
        elif style == 2:
            out.append(f"{v:.2f}")
        elif style == 3:
            out.append(repr(v))
        elif style == 4:
            out.append(f"{v:.17e}")
        elif style == 5:
            out.append(f"+{v:.6E}")
        elif style == 6:
            out.append(f"{int(v)}.")
        elif style == 7:
            out.append(f"{v:.40f}"[:30])  # more digits than a double holds
        else:
            out.append(f".{rng.randrange(10**8):08d}")
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_columns_parse_as_the_cells_do(tmp_path, monkeypatch, seed):
    """A file whose variable cells are all plain numbers or blank is parsed column by column;
    its table is, bit for bit, the one of the per-cell path (Python's float of each cell times
    the unit factor). A file with one cell that needs more (a thousands separator, a
    placeholder, a negative count) takes the per-cell path, with its value or its message."""
    import csv

    from nqp_resilience.data import ingest

    rng = random.Random(seed)
    codebook = Codebook(CODEBOOK)
    src = codebook["patents"]
    resolver = CityResolver(ATTRIBUTES, ALIASES)
    raw = RAW / codebook.files()["patents"]
    with open(raw, encoding="utf-8-sig", newline="") as fh:
        header, *rows = list(csv.reader(fh))
    for row in rows:
        row[3:] = _numbers(rng, len(row) - 3)
    used = []
    real = ingest._plain_values
    monkeypatch.setattr(ingest, "_plain_values", lambda *a: used.append(real(*a)) or used[-1])

    def both(rows, name):
        path = tmp_path / name
        with open(path, "w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows([header, *rows])
        fast = ingest_columns(path, src, resolver, (2010, 2021))
        monkeypatch.setattr(ingest, "_plain_values", lambda *a: None)
        try:
            slow = ingest_columns(path, src, resolver, (2010, 2021))
        finally:
            monkeypatch.setattr(
                ingest, "_plain_values", lambda *a: used.append(real(*a)) or used[-1]
            )
        write_columns(fast, tmp_path / "fast.parquet")
        write_columns(slow, tmp_path / "slow.parquet")
        assert (tmp_path / "fast.parquet").read_bytes() == (tmp_path / "slow.parquet").read_bytes()
        for name_, (kind, values) in slow.items():
            if kind == "float64":
                got = [float(v) for v in fast[name_][1]]
                assert [math.copysign(1, v) if math.isnan(v) else v for v in got] == [
                    math.copysign(1, v) if math.isnan(v) else v for v in values
                ], name_

    both(rows, "plain.csv")
    assert used[-1] is not None  # taken column by column
    rows[7][4] = "1,318"
    both(rows, "separator.csv")
    assert used[-1] is None  # one cell needs the per-cell path: the whole file takes it
    rows[7][4] = "—"
    both(rows, "placeholder.csv")
    assert used[-1] is None
    rows[7][4] = "-3"
    path = tmp_path / "negative.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    with pytest.raises(DataError, match="line 9") as err:
        ingest_columns(path, src, resolver, (2010, 2021))
    assert used[-1] is None and "-3" in str(err.value)


def test_report_columns_is_ingest_reports(tmp_path):
    paths = sorted((RAW / "reports").glob("*_2015.txt"))
    provinces = {p.name[:6] for p in paths}
    write_columns(report_columns(paths, provinces, (2010, 2021)), tmp_path / "a.parquet")
    df = ingest_reports(paths, provinces, (2010, 2021))
    write_parquet(df, tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert list(df.columns) == ["province_code", "year", "n_chars", "text"]


_NO_PANDAS_JOBS = """
import sys
from types import SimpleNamespace as NS
from nqp_resilience.data import jobs

out, raw, codebook, attributes, aliases, reports = sys.argv[1:7]
common = dict(codebook=codebook, attributes=attributes, aliases=aliases)
params = NS(years=[2010, 2021])
jobs.ingest_yearbook_job(NS(
    input=NS(raw=raw + "/yearbook/city_yearbook_2015.csv", **common),
    output=NS(table=out + "/yearbook_2015.parquet"), params=params, wildcards=NS(year="2015")))
jobs.ingest_source_job(NS(
    input=NS(raw=raw + "/cnrds/patents.csv", **common),
    output=NS(table=out + "/patents.parquet"), params=params, wildcards=NS(source="patents")))
jobs.ingest_reports_job(NS(
    input=NS(reports=reports.split(","), attributes=attributes),
    output=NS(table=out + "/reports.parquet"), params=params))
print(sorted({"pandas", "openpyxl"} & set(sys.modules)))
"""


def test_ingest_jobs_do_not_import_pandas(tmp_path):
    reports = ",".join(str(p) for p in sorted((RAW / "reports").glob("*.txt")))
    args = [tmp_path, RAW, CODEBOOK, ATTRIBUTES, ALIASES, reports]
    proc = subprocess.run(
        [sys.executable, "-c", _NO_PANDAS_JOBS, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "[]"
    codebook = Codebook(CODEBOOK)
    resolver = CityResolver(ATTRIBUTES, ALIASES)
    for name, source, year in [("yearbook_2015", "yearbook", 2015), ("patents", "patents", None)]:
        src = codebook[source]
        raw = RAW / (f"yearbook/city_yearbook_{year}.csv" if year else codebook.files()[name])
        df = ingest_table(raw, src, resolver, (2010 - src.years_before, 2021), year=year)
        write_parquet(df, tmp_path / "frame.parquet")
        job = (tmp_path / f"{name}.parquet").read_bytes()
        assert job == (tmp_path / "frame.parquet").read_bytes()


def test_installed_version_is_the_metadata_version_of_every_distribution():
    names = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert len(names) > 50
    for name in sorted(names):
        assert installed_version(name) == importlib.metadata.version(name), name
        # the name as users spell it: other case, "-" for "_" and back
        assert installed_version(name.upper().replace("-", "_")) == installed_version(name)
    assert installed_version("no-such-distribution-here") is None


def test_installed_version_leaves_other_layouts_to_importlib_metadata(tmp_path, monkeypatch):
    egg = tmp_path / "demo_pkg-1.0.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert installed_version("demo_pkg") == importlib.metadata.version("demo_pkg") == "1.0"


def test_read_yaml_cached_keeps_the_document_in_a_workflow_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = tmp_path / "schema.yaml"
    doc.write_text("b: 1\na: [1.5, null, true, {x: '2'}]\nc: .inf\n", encoding="utf-8")
    assert read_yaml_cached(doc) == read_yaml(doc)  # no .snakemake: nothing kept
    assert not (tmp_path / ".snakemake").exists()

    (tmp_path / ".snakemake").mkdir()
    first = read_yaml_cached(doc)
    kept = list((tmp_path / ".snakemake" / "nqp_resilience" / "yaml").glob("*.json"))
    assert len(kept) == 1
    second = read_yaml_cached(doc)  # from the JSON: same values, types and key order
    assert second == first == read_yaml(doc)
    assert list(second) == ["b", "a", "c"] and isinstance(second["a"][2], bool)

    doc.write_text("b: 2\n", encoding="utf-8")  # another content: another key
    assert read_yaml_cached(doc) == {"b": 2}
    kept[0].write_text("{not json", encoding="utf-8")  # a damaged file is read again
    doc.write_text("b: 1\na: [1.5, null, true, {x: '2'}]\nc: .inf\n", encoding="utf-8")
    assert read_yaml_cached(doc) == first


def test_read_yaml_cached_keeps_only_json_documents(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".snakemake").mkdir()
    doc = tmp_path / "dates.yaml"
    doc.write_text("when: 2024-06-01\n1: one\n", encoding="utf-8")
    assert not is_plain(read_yaml(doc))
    assert read_yaml_cached(doc) == read_yaml(doc)
    assert not (tmp_path / ".snakemake" / "nqp_resilience" / "yaml").exists()
    with pytest.raises(DataError, match="invalid YAML"):
        (tmp_path / "bad.yaml").write_text("a: [1,\n", encoding="utf-8")
        read_yaml_cached(tmp_path / "bad.yaml")


def test_pandas_version_without_importing_pandas(monkeypatch):
    assert pandas_version() == pd.__version__  # pandas imported: its own attribute
    monkeypatch.delitem(sys.modules, "pandas")
    assert pandas_version() == pd.__version__  # its version module
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert pandas_version() == importlib.metadata.version("pandas")  # the distribution


# --------------------------------------------------------------------------- fast paths
# Shortcuts for the common cells (ASCII numbers, rows without a header cell) must give what the
# general steps give.

_TEXTS = [
    "",
    "  ",
    " 1 ",
    "１２３",
    "（万元）",
    "\u3000北京市\u3000",
    "Ａ\u0301",  # a full-width letter and a combining accent: composed after folding
    "e\u0301",
    "ｶﾞ",  # half-width katakana: NFKC composes the voiced mark
    "①",
    "x\u00a0",
    "新质生产力，科技创新；（２０２３）",
    "ﬁ ligature",
]


@pytest.mark.parametrize("text", _TEXTS)
def test_normalise_text_is_nfkc_and_strip(text):
    assert normalise_text(text) == unicodedata.normalize("NFKC", text).strip()


def test_normalise_text_is_nfkc_on_random_text():
    rng = random.Random(1)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + list(
        "，。：；（）！？％\u3000\u0301\u0308ｶﾞ①新质生产力\u00a0ﬁ"
    )
    alphabet += [chr(c) for c in range(0xFF01, 0xFF5F)]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert normalise_text(text) == unicodedata.normalize("NFKC", text).strip(), repr(text)


@pytest.mark.parametrize(
    "cell",
    ["1", "+3", "-0", ".5", "5.", "1e3", "1E-2", "1e400", "007", "1\n", "12345678901234567890"],
)
def test_parse_number_plain_ascii_numbers(cell):
    assert parse_number(cell) == float(cell.strip())
    assert parse_number(cell) == parse_number(f"{cell} ")  # the general path (a space to strip)


def test_header_test_equals_the_cell_by_cell_test():
    """``is_header`` decides most rows from the whole row at once; the answer must be the one
    of looking the cells up one by one."""
    source = Codebook(CODEBOOK)["yearbook"]
    lookup = source.header_lookup()
    is_header = header_matcher(source)

    def cell_by_cell(cells):
        kinds = [
            lookup.get(unicodedata.normalize("NFKC", str(c)).strip())
            for c in cells
            if c is not None and str(c).strip()
        ]
        keys = sum(k is not None and k[0] == "key" for k in kinds)
        return keys >= 1 and sum(k is not None for k in kinds) >= 2

    headers = [h for hs in source.keys.values() for h in hs]
    headers += [h for v in source.variables.values() for h in v.headers]
    pool = headers + ["", " ", "1.5", "北京市", "110000", None, 12, 3.5, "\0", "合计", "单位"]
    pool += [f" {h} " for h in headers[:5]] + ["城市代码\0年份", "（万元）", "ｶﾞ"]
    pool += [h.translate({ord(a): ord(a) + 0xFEE0 for a in "()0123456789"}) for h in headers]
    rng = random.Random(2)
    results = []
    for _ in range(3000):
        cells = [rng.choice(pool) for _ in range(rng.randint(0, 8))]
        assert is_header(cells) == cell_by_cell(cells), cells
        results.append(cell_by_cell(cells))
    assert any(results) and not all(results)


@pytest.mark.parametrize("titles", [0, 1, MAX_LEADING_ROWS - 1])
def test_header_only_reads_the_same_header_and_raises_the_same_errors(tmp_path, titles):
    """The header of a raw CSV read only as far as it needs equals the whole read's, with title
    rows above it, for every delimiter; a header without data rows is still an error."""
    header = ["城市代码", "城市", "地区生产总值(万元)"]
    rows = [[str(110000 + i), f"城市{i}", str(i * 10)] for i in range(200)]
    for delimiter in (",", ";", "\t"):
        lines = [f"标题 {i}" for i in range(titles)]
        lines += [delimiter.join(r) for r in [header, *rows]]
        path = tmp_path / f"t{ord(delimiter)}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        full, head = read_raw_table(path), read_raw_table(path, header_only=True)
        assert head.header == full.header == header
        assert (head.header_line, head.delimiter) == (full.header_line, full.delimiter)
        assert head.rows == full.rows[: len(head.rows)] and 1 <= len(head.rows) < len(full.rows)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n".join([*(f"标题 {i}" for i in range(titles)), ",".join(header)]) + "\n")
    for header_only in (False, True):
        with pytest.raises(DataError, match="a header but no data rows"):
            read_raw_table(empty, header_only=header_only)
