"""User-facing error messages for bad input data and bad configuration (docs/design.md#errors).

Every test builds a small malformed copy of a real raw extract in ``tmp_path`` (read with the
project's own reader; ``resources/`` is never modified), runs the real entry point, and checks
that the :class:`~nqp_resilience.errors.DataError` / :class:`~nqp_resilience.errors.ConfigError`
names the file, the row (line, city code, year) and/or the column (raw header, canonical name),
the problem and the hint. Positive controls check that the unmodified files ingest, so the
suite can fail in both directions.
"""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import pandas as pd
import pytest

from nqp_resilience.config import validate_config
from nqp_resilience.data.cities import CityResolver, read_attributes
from nqp_resilience.data.clean import SampleOptions, build_panel
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.ingest import ingest_reports, ingest_table
from nqp_resilience.data.io import read_raw_table, read_yaml
from nqp_resilience.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "resources" / "raw"
YEARBOOK = RAW / "yearbook"
CODEBOOK = ROOT / "resources" / "codebook.yaml"
ATTRIBUTES = ROOT / "resources" / "cities" / "city_attributes.csv"
ALIASES = ROOT / "resources" / "cities" / "city_name_aliases.csv"
SCHEMA = ROOT / "schemas" / "config.schema.yaml"
CONFIG = ROOT / "config.yaml"
YEARS = (2010, 2021)

#: Rows kept in the small copies: header is line 1, so ``rows[i]`` is on line ``i + 2``.
N_ROWS = 5


# --------------------------------------------------------------------------- fixtures / helpers


@pytest.fixture(scope="module")
def codebook():
    return Codebook(CODEBOOK)


@pytest.fixture(scope="module")
def resolver():
    return CityResolver(ATTRIBUTES, ALIASES)


@pytest.fixture(scope="module")
def province_codes():
    return {r["province_code"] for r in read_attributes(ATTRIBUTES)}


def sample_of(path, n=N_ROWS):
    """Header and the first ``n`` rows (as strings) of a real raw file, via the project's reader."""
    table = read_raw_table(path)
    return list(table.header), [
        ["" if c is None else str(c) for c in row] for row in table.rows[:n]
    ]


def write_table(path: Path, header, rows, encoding="utf-8") -> Path:
    """Write a CSV with one physical line per record (header on line 1)."""
    with open(path, "w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def line_of(i: int) -> int:
    """The file line of ``rows[i]`` in a file written by :func:`write_table`."""
    return i + 2


def index_of(rows, code: str, col: int = 0) -> int:
    """Index of the first row whose column ``col`` holds ``code``."""
    return next(i for i, r in enumerate(rows) if r[col] == code)


def raises_data_error(func, *args, **kwargs) -> DataError:
    with pytest.raises(DataError) as exc:
        func(*args, **kwargs)
    return exc.value


def assert_names_file(err: DataError, path: Path) -> str:
    """The message starts with the file; return the message."""
    msg = str(err)
    assert err.file == str(path)
    assert msg.startswith(f"file {path}")
    assert path.name in msg
    return msg


# --------------------------------------------------------------------------- positive controls


@pytest.mark.parametrize(
    "name, year, encoding",
    [
        ("city_yearbook_2010.csv", 2010, "gb18030"),
        ("city_yearbook_2013.csv", 2013, "utf-8-sig"),
        ("city_yearbook_2021.xlsx", 2021, "xlsx"),
    ],
)
def test_unmodified_yearbook_ingests(codebook, resolver, name, year, encoding):
    path = YEARBOOK / name
    table = read_raw_table(path)
    assert table.encoding == encoding
    df = ingest_table(path, codebook["yearbook"], resolver, YEARS, year=year)
    assert len(df) == len(table.rows) > 250
    assert (df["year"] == year).all()
    assert not df.duplicated(["city_code", "year"]).any()
    assert set(df["city_code"]) <= set(resolver.names)  # only attribute-table codes
    assert {"420600", "520500"} <= set(df["city_code"])  # 襄阳市, 毕节市
    assert "522400" not in set(df["city_code"])  # 毕节地区's old code is mapped
    assert df["gdp"].notna().mean() > 0.9


def test_2010_old_aliases_resolve_to_attribute_codes(codebook, resolver):
    path = YEARBOOK / "city_yearbook_2010.csv"
    header, rows = sample_of(path, n=None)
    raw = {r[1]: r for r in rows}
    assert raw["襄樊市"][0] == "420600"  # old name under the (unchanged) code
    assert raw["毕节地区"][0] == "522400"  # predecessor code
    gdp = header.index("地区生产总值(万元)")
    df = ingest_table(path, codebook["yearbook"], resolver, YEARS, year=2010).set_index("city_code")
    assert df.loc["420600", "gdp"] == pytest.approx(float(raw["襄樊市"][gdp]) * 10_000)
    assert df.loc["520500", "gdp"] == pytest.approx(float(raw["毕节地区"][gdp]) * 10_000)
    # the resolver alone, by name without a code, and by the old code
    assert resolver.resolve("", "襄樊市", year=2010) == "420600"
    assert resolver.resolve("522400", "毕节地区", year=2010) == "520500"


def test_small_copy_ingests(codebook, resolver, tmp_path):
    """The helpers themselves produce a valid file (so the failures below come from the edit)."""
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    path = write_table(tmp_path / "city_yearbook_2016.csv", header, rows)
    df = ingest_table(path, codebook["yearbook"], resolver, YEARS, year=2016)
    assert list(df["city_code"]) == [r[0] for r in rows]


# --------------------------------------------------------------------------- 1. missing column


def test_missing_required_column(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    drop = header.index("第二产业增加值(万元)")
    header = header[:drop] + header[drop + 1 :]
    rows = [r[:drop] + r[drop + 1 :] for r in rows]
    path = write_table(tmp_path / "yb_missing_column.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    assert err.column == "'第二产业增加值(万元)' (gdp_secondary)"
    assert "column '第二产业增加值(万元)' (gdp_secondary)" in msg
    assert "missing required column 'gdp_secondary'" in err.problem
    assert "第二产业增加值(万元)" in err.expected and "第二产业增加值(万元)" in msg
    assert "add the column" in err.hint and "codebook.yaml" in err.hint


# --------------------------------------------------------------------------- 2. unknown header


def test_unknown_header_suggests_closest(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2010.csv")
    header[header.index("地区生产总值(万元)")] = "地区生产总值(亿元)"
    path = write_table(tmp_path / "yb_unknown_header.csv", header, rows, encoding="gbk")
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2010)
    msg = assert_names_file(err, path)
    assert err.column == "'地区生产总值(亿元)'"
    assert "column '地区生产总值(亿元)'" in msg
    assert err.problem == "unknown header"
    assert "closest codebook header: '地区生产总值(万元)' (canonical name 'gdp')" in err.hint
    assert "headers" in err.hint and "ignore" in err.hint
    assert err.hint in msg


# --------------------------------------------------------------------------- 3. non-numeric cell


def test_non_numeric_cell(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    i, col = index_of(rows, "130100"), header.index("年末户籍人口(万人)")
    rows[i][col] = "12a3"
    path = write_table(tmp_path / "yb_non_numeric.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    assert err.row == f"line {line_of(i)} (city 130100 石家庄市, year 2016)"
    assert f"row line {line_of(i)} (city 130100 石家庄市, year 2016)" in msg
    assert err.column == "'年末户籍人口(万人)' (population)"
    assert "年末户籍人口(万人)" in msg and "(population)" in msg
    assert "non-numeric value '12a3'" in err.problem
    assert "万人" in err.expected
    assert "correct the cell" in err.hint


# --------------------------------------------------------------------------- 4. value constraints


@pytest.mark.parametrize("value, shown", [("0", "0"), ("-3.5", "-3.5")])
def test_non_positive_denominator(codebook, resolver, tmp_path, value, shown):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    i, col = index_of(rows, "130200"), header.index("年末户籍人口(万人)")
    rows[i][col] = value
    path = write_table(tmp_path / "yb_population.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    assert err.row == f"line {line_of(i)} (city 130200 唐山市, year 2016)"
    assert err.column == "'年末户籍人口(万人)' (population)"
    assert err.row in msg and err.column in msg
    assert f"value {shown} is not positive" in err.problem
    assert "denominator" in err.problem
    assert "> 0" in err.expected
    assert "leave the cell blank" in err.hint


def test_value_above_admissible_maximum(codebook, resolver, tmp_path):
    header, rows = sample_of(RAW / "cnrds" / "innovation.csv")
    i, col = 2, header.index("森林覆盖率(%)")
    rows[i][col] = "150"
    year, code = rows[i][header.index("年份")], rows[i][header.index("城市代码")]
    assert code == "110000"
    path = write_table(tmp_path / "innovation_forest.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["innovation"], resolver, YEARS)
    msg = assert_names_file(err, path)
    assert err.row == f"line {line_of(i)} (city 110000 北京市, year {year})"
    assert err.column == "'森林覆盖率(%)' (forest_cover)"
    assert err.row in msg and err.column in msg
    assert "value 150 is above the admissible maximum 100" in err.problem
    assert "100" in err.expected and "%" in err.expected
    assert "percentages are expected in %" in err.hint


# --------------------------------------------------------------------------- 5. duplicates


def test_duplicate_city_year_in_patents(codebook, resolver, tmp_path):
    header, rows = sample_of(RAW / "cnrds" / "patents.csv")
    rows.append(list(rows[1]))
    code, name, year = rows[1][1], rows[1][2], rows[1][0]
    path = write_table(tmp_path / "patents_dup.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["patents"], resolver, YEARS)
    msg = assert_names_file(err, path)
    first, second = line_of(1), line_of(len(rows) - 1)
    assert (
        f"duplicate record for city {code}, year {year}: lines {first} and {second}" in err.problem
    )
    assert err.row == f"line {second} (city {code} {name}, year {year})"
    assert err.row in msg
    assert "city × year" in err.expected
    assert "delete one of the two rows" in err.hint


def test_duplicate_city_in_yearbook_year(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    i = index_of(rows, "130300")
    rows.append(list(rows[i]))
    path = write_table(tmp_path / "yb_dup.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    first, second = line_of(i), line_of(len(rows) - 1)
    assert f"duplicate record for city 130300, year 2016: lines {first} and {second}" in err.problem
    assert err.row == f"line {second} (city 130300 秦皇岛市, year 2016)"
    assert err.row in msg
    assert "delete one of the two rows" in err.hint


# --------------------------------------------------------------------------- 6. unknown cities


def test_unknown_city_code(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    i = index_of(rows, "130100")
    rows[i][0] = "139999"
    path = write_table(tmp_path / "yb_bad_code.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    assert err.row == f"line {line_of(i)} (city 139999 石家庄市, year 2016)"
    assert err.column == "city code"
    assert err.row in msg and "column city code" in msg
    assert "unknown city code 139999 (石家庄市)" in err.problem
    assert "city_attributes.csv" in err.expected
    # the name is known exactly, so the hint points at the mistyped code
    assert "石家庄市 is city code 130100" in err.hint and "mistyped" in err.hint


def test_unknown_city_name_without_code(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    i = index_of(rows, "130100")
    rows[i][0], rows[i][1] = "", "石家庒市"  # misspelt 石家庄市, no code
    path = write_table(tmp_path / "yb_bad_name.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    msg = assert_names_file(err, path)
    assert err.row.startswith(f"line {line_of(i)} (city ")
    assert "石家庒市" in err.row and err.row.endswith(", year 2016)")
    assert err.column == "city name"
    assert err.row in msg and "column city name" in msg
    assert "unknown city name '石家庒市' and no city code" in err.problem
    assert "closest known names:" in err.hint and "石家庄市" in err.hint
    assert "city_name_aliases.csv" in err.hint


# --------------------------------------------------------------------------- 7. years out of range


def test_year_row_outside_range(codebook, resolver, tmp_path):
    header, rows = sample_of(RAW / "cnrds" / "patents.csv")
    extra = list(rows[0])
    extra[header.index("年份")] = "2009"
    rows.append(extra)
    path = write_table(tmp_path / "patents_2009.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["patents"], resolver, YEARS)
    msg = assert_names_file(err, path)
    assert err.row == f"line {line_of(len(rows) - 1)} (city 110000 北京市)"
    assert err.column == "year"
    assert f"row line {line_of(len(rows) - 1)} (city 110000 北京市), column year" in msg
    assert "year 2009 is outside the configured range 2010–2021" in err.problem
    assert "drop rows outside the study period" in err.hint and "`years`" in err.hint


def test_yearbook_file_year_outside_range(codebook, resolver, tmp_path):
    header, rows = sample_of(YEARBOOK / "city_yearbook_2016.csv")
    path = write_table(tmp_path / "city_yearbook_2030.csv", header, rows)
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2030)
    assert_names_file(err, path)
    assert "data year 2030 is outside the configured range 2010–2021" in err.problem
    assert "2010–2021" in err.expected
    assert "widen `years` in config.yaml" in err.hint and "remove the file" in err.hint


# --------------------------------------------------------------------------- 8. empty / undecodable


def test_empty_file(codebook, resolver, tmp_path):
    path = tmp_path / "city_yearbook_2016.csv"
    path.write_bytes(b"")
    err = raises_data_error(ingest_table, path, codebook["yearbook"], resolver, YEARS, year=2016)
    assert_names_file(err, path)
    assert err.problem == "the file is empty"
    assert err.row is None and err.column is None
    assert "re-export the extract" in err.hint


def test_header_without_rows(codebook, resolver, tmp_path):
    header, _ = sample_of(RAW / "cnrds" / "patents.csv")
    path = write_table(tmp_path / "patents_header_only.csv", header, [])
    err = raises_data_error(ingest_table, path, codebook["patents"], resolver, YEARS)
    assert_names_file(err, path)
    assert "header but no data rows" in err.problem
    assert "re-export the extract" in err.hint


def test_undecodable_file(codebook, resolver, tmp_path):
    header, _ = sample_of(RAW / "cnrds" / "patents.csv")
    bad = b"\x81\x30\xff\xff\x81\x30\xff\xff"
    data = (",".join(header) + "\n").encode("utf-8") + b"2010,110000," + bad + b",1,1,1,1,1\n"
    for enc in ("utf-8", "utf-8-sig", "gb18030", "gbk"):  # the bytes really fail every decoding
        with pytest.raises(UnicodeDecodeError):
            data.decode(enc)
    path = tmp_path / "patents_garbled.csv"
    path.write_bytes(data)
    err = raises_data_error(ingest_table, path, codebook["patents"], resolver, YEARS)
    assert_names_file(err, path)
    assert "cannot be decoded" in err.problem
    assert "UTF-8" in err.expected and "GB18030" in err.expected
    assert "CSV UTF-8" in err.hint and "iconv" in err.hint


# --------------------------------------------------------------------------- 9. reports


def test_report_not_utf8(province_codes, tmp_path):
    text = (RAW / "reports" / "130000_2015.txt").read_text(encoding="utf-8")
    path = tmp_path / "130000_2015.txt"
    path.write_bytes(text.encode("gbk"))
    err = raises_data_error(ingest_reports, [path], province_codes, YEARS)
    msg = assert_names_file(err, path)
    assert err.row == "province 130000, year 2015"
    assert "row province 130000, year 2015" in msg
    assert "not UTF-8" in err.problem and "GB18030" in err.problem
    assert err.expected == "UTF-8 text"
    assert "UTF-8" in err.hint and "iconv" in err.hint and path.name in err.hint


def test_report_empty(province_codes, tmp_path):
    good = RAW / "reports" / "110000_2015.txt"
    path = tmp_path / "130000_2016.txt"
    path.write_bytes(b"")
    err = raises_data_error(ingest_reports, [good, path], province_codes, YEARS)
    msg = assert_names_file(err, path)
    assert err.row == "province 130000, year 2016"
    assert err.row in msg
    assert "report file is empty" in err.problem
    assert "paste the full text" in err.hint


def test_reports_positive_control(province_codes):
    paths = [RAW / "reports" / "000000_2010.txt", RAW / "reports" / "130000_2015.txt"]
    df = ingest_reports(paths, province_codes, YEARS)
    assert list(df["province_code"]) == ["000000", "130000"]
    assert (df["n_chars"] > 100).all()


# --------------------------------------------------------------------------- 10. config


@pytest.fixture
def config():
    return copy.deepcopy(read_yaml(CONFIG))


def raises_config_error(config) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        validate_config(config, SCHEMA)
    return exc.value


def test_config_positive_control(config):
    assert validate_config(config, SCHEMA)["years"] == {"start": 2010, "end": 2021}


def test_config_unknown_key(config):
    config["sample"]["max_mising_share"] = config["sample"].pop("max_missing_share")
    err = raises_config_error(config)
    msg = str(err)
    assert err.key == "sample.max_mising_share"
    assert msg.startswith("config.yaml, key 'sample.max_mising_share': unknown key")
    assert "did you mean 'max_missing_share'?" in err.hint
    assert "allowed keys here:" in err.hint and err.hint in msg


def test_config_wrong_type(config):
    # "2010" (as --config hands numbers over) is read as the integer; "2010a" cannot be
    config["years"]["start"] = "2010a"
    err = raises_config_error(config)
    msg = str(err)
    assert err.key == "years.start"
    assert msg.startswith("config.yaml, key 'years.start': ")
    assert "wrong type: '2010a' is not of type 'integer'" in err.problem
    assert "README" in err.hint


def test_config_value_not_in_enum(config):
    config["interpolation"]["edge"] = "cubic"
    err = raises_config_error(config)
    msg = str(err)
    assert err.key == "interpolation.edge"
    assert msg.startswith("config.yaml, key 'interpolation.edge': ")
    assert "'cubic' is not allowed" in err.problem
    assert "choose one of nearest, linear_extrapolate, none" in err.hint


def test_config_start_after_end(config):
    config["years"] = {"start": 2022, "end": 2021}
    err = raises_config_error(config)
    msg = str(err)
    assert err.key == "years"
    assert msg.startswith("config.yaml, key 'years': ")
    assert "start 2022 is after end 2021" in err.problem
    assert "swap the two values" in err.hint


# --------------------------------------------------------------------------- 11. required_variables


def test_unknown_required_variable():
    city_year = [
        pd.DataFrame(
            {
                "city_code": ["110000", "120000"],
                "year": [2010, 2010],
                "gdp": [1.0, 2.0],
                "population": [3.0, 4.0],
            }
        )
    ]
    options = SampleOptions(years=YEARS, required_variables=("gdp", "gpd_growth"))
    with pytest.raises(ConfigError) as exc:
        build_panel(
            city_year,
            [],
            pd.DataFrame({"year": []}),
            pd.DataFrame({"city_code": []}),
            options,
            ["gdp", "gdp_growth", "population"],
        )
    err, msg = exc.value, str(exc.value)
    assert err.key == "sample.required_variables"
    assert msg.startswith("config.yaml, key 'sample.required_variables': ")
    assert "unknown variable(s) ['gpd_growth']" in err.problem
    assert "canonical city-year variables are: gdp, population" in err.hint
