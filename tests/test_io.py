"""Raw-cell parsing, raw-table reading and atomic output writing."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nqp_resilience.data.cities import CityResolver
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.ingest import ingest_table
from nqp_resilience.data.io import parse_number, read_raw_table, write_parquet, write_text
from nqp_resilience.errors import DataError

from conftest import ALIASES, ATTRIBUTES, CODEBOOK


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
