"""Realistic value mistakes planted into the clean ingested default data.

Each mistake is one a user made with a real extract (a shifted decimal point, a unit mix-up in
one cell, one year or one city, swapped columns, a sign error). Each must be found with the
file, line, city, year, column and likely cause, and cleared by the corrections file: replacing
the value with the right one, or confirming it. An end-to-end run shows the run stopping before
the panel with the finding in the job log, and a replace row letting it through.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.plausibility import (
    CORRECTION_COLUMNS,
    TableInput,
    check_tables,
    read_corrections,
)
from test_plausibility import city_names, ingest_folder

from conftest import CODEBOOK, copy_workflow, snakemake


@pytest.fixture(scope="module")
def clean():
    from conftest import RAW

    return ingest_folder(RAW)


@dataclass
class Cell:
    """One planted cell: where, and the value it had (raw unit)."""

    table: str
    city: str
    year: int
    variable: str
    line: int
    original: float


class Panel:
    """Copies of the clean tables to plant mistakes in (canonical units, as ingested)."""

    def __init__(self, tables):
        self.tables = {
            t.name: TableInput(t.name, t.source, t.file, t.data.copy(), t.headers) for t in tables
        }
        self.codebook = Codebook(CODEBOOK)

    def df(self, name):
        return self.tables[name].data

    def factor(self, name, variable):
        return self.codebook[self.tables[name].source].variables[variable].factor

    def city(self, variable, years, table_of=lambda y: f"yearbook_{y}", rank=0):
        """A city (the ``rank``-th in code order) observed for ``variable`` in all of ``years``."""
        ok = None
        for y in years:
            df = self.df(table_of(y))
            if "year" in df.columns:
                df = df[df["year"] == y]
            have = set(df.loc[df[variable].notna() & (df[variable] > 0), "city_code"])
            ok = have if ok is None else ok & have
        return sorted(ok)[rank]

    def plant(self, name, city, year, variable, times=None, value=None) -> Cell:
        """Multiply one cell by ``times`` (or set it to ``value``, in the raw unit)."""
        df = self.df(name)
        mask = df["city_code"] == city if "city_code" in df.columns else df["year"] == year
        if "year" in df.columns and "city_code" in df.columns:
            mask &= df["year"] == year
        [i] = df.index[mask]
        f = self.factor(name, variable)
        cell = Cell(
            name, city, year, variable, int(df.at[i, "source_line"]), float(df.at[i, variable] / f)
        )
        df.at[i, variable] = df.at[i, variable] * times if times is not None else value * f
        return cell

    def inputs(self):
        return list(self.tables.values())


def replace_rows(cells) -> list[str]:
    return [
        f"{c.table},{c.city},{c.year if c.table in ('patents', 'innovation', 'national') else ''},"
        f"{c.variable},replace,{c.original!r},restored"
        for c in cells
    ]


def confirm_column(table, variable) -> str:
    return f"{table},,,{variable},confirm,,the column is right"


# Each plant returns (expected findings as (check, table, city, year, variable) with cells for
# their lines, the cause words, the correction rows that clear them).


def pop_x10(p):
    c = p.plant(
        "yearbook_2015", p.city("population", [2014, 2015, 2016]), 2015, "population", times=10
    )
    return (
        [("decimal_shift", c)],
        "decimal point shifted, or a digit added (×10)",
        replace_rows([c]),
    )


def pop_x01(p):
    c = p.plant(
        "yearbook_2013",
        p.city("population", [2012, 2013, 2014], rank=40),
        2013,
        "population",
        times=0.1,
    )
    return (
        [("decimal_shift", c)],
        "decimal point shifted, or a digit dropped (×0.1)",
        replace_rows([c]),
    )


def gdp_in_yuan(p):
    c = p.plant(
        "yearbook_2018", p.city("gdp", [2017, 2018, 2019], rank=100), 2018, "gdp", times=1e4
    )
    return [("decimal_shift", c)], "looks like 元, not 万元 (×10,000)", replace_rows([c])


def population_year_in_persons(p):
    p.df("yearbook_2016")["population"] *= 1e4
    return (
        [("column", "yearbook_2016", "population")],
        "looks like persons (人), not 万人 (×10,000)",
        [confirm_column("yearbook_2016", "population")],
    )


def growth_year_as_fraction(p):
    p.df("yearbook_2014")["gdp_growth"] *= 0.01
    return (
        [("column", "yearbook_2014", "gdp_growth")],
        "looks like a fraction, not % (×0.01)",
        [confirm_column("city_yearbook_2014.csv", "地区生产总值增长率(%)")],
    )


def wage_extra_zero(p):
    c = p.plant(
        "yearbook_2019", p.city("avg_wage", [2018, 2019, 2020], rank=7), 2019, "avg_wage", times=10
    )
    return (
        [("decimal_shift", c)],
        "decimal point shifted, or a digit added (×10)",
        replace_rows([c]),
    )


def city_employment_in_persons(p):
    years = range(2010, 2022)
    city = p.city("urban_employment", years, rank=60)
    cells = [p.plant(f"yearbook_{y}", city, y, "urban_employment", times=1e4) for y in years]
    return (
        [("cross_city", c) for c in cells],
        "looks like persons (人), not 万人 (×10,000)",
        replace_rows(cells),
    )


def fdi_in_usd(p):
    c = p.plant("yearbook_2012", p.city("fdi", [2011, 2012, 2013], rank=20), 2012, "fdi", times=1e4)
    return [("decimal_shift", c)], "looks like 美元, not 万美元 (×10,000)", replace_rows([c])


def swapped_gdp_components(p):
    df = p.df("yearbook_2017")
    df["gdp_primary"], df["gdp_tertiary"] = df["gdp_tertiary"].copy(), df["gdp_primary"].copy()
    return (
        [("swap", "yearbook_2017", "gdp_primary"), ("swap", "yearbook_2017", "gdp_tertiary")],
        "looks swapped",
        [
            confirm_column("yearbook_2017", "gdp_primary"),
            confirm_column("yearbook_2017", "gdp_tertiary"),
        ],
    )


def negative_investment(p):
    c = p.plant(
        "yearbook_2011",
        p.city("fixed_asset_investment", [2011], rank=3),
        2011,
        "fixed_asset_investment",
        times=-1,
    )
    return [("bounds", c)], "sign error", replace_rows([c])


def negative_growth_rate(p):
    c = p.plant(
        "yearbook_2019",
        p.city("gdp_growth", [2018, 2019, 2020], rank=90),
        2019,
        "gdp_growth",
        times=-1,
    )
    return [("jump", c)], "sign error", replace_rows([c])


def energy_in_tonnes(p):
    city = p.city(
        "energy_consumption", [2015, 2016, 2017], table_of=lambda y: "innovation", rank=30
    )
    c = p.plant("innovation", city, 2016, "energy_consumption", times=1e4)
    return (
        [("decimal_shift", c)],
        "looks like 吨标准煤, not 万吨标准煤 (×10,000)",
        replace_rows([c]),
    )


def forest_cover_as_fraction(p):
    city = p.city("forest_cover", [2019, 2020, 2021], table_of=lambda y: "innovation", rank=11)
    c = p.plant("innovation", city, 2021, "forest_cover", times=0.01)
    return [("decimal_shift", c)], "looks like a fraction, not % (×0.01)", replace_rows([c])


def national_growth_as_fraction(p):
    c = p.plant("national", "", 2015, "national_gdp_growth", times=0.01)
    return (
        [("decimal_shift", c)],
        "looks like a fraction, not % (×0.01)",
        [f"ceic/national.csv,,2015,national_gdp_growth,replace,{c.original!r},restored"],
    )


def relief_in_km(p):
    city = p.city("relief", [None], table_of=lambda y: "relief", rank=50)
    c = p.plant("relief", city, None, "relief", times=0.001)
    return (
        [("cross_city", c)],
        "looks like km, not metres (×0.001)",
        [f"relief,{city},,relief,replace,{c.original!r},restored"],
    )


def students_year_in_10k(p):
    p.df("yearbook_2020")["college_students"] *= 1e-4
    return (
        [("column", "yearbook_2020", "college_students")],
        "looks like 万人, not 人 (×0.0001)",
        [confirm_column("yearbook_2020", "college_students")],
    )


def patents_x10_confirmed(p):
    city = p.city("patent_applications", [2013, 2014, 2015], table_of=lambda y: "patents", rank=77)
    c = p.plant("patents", city, 2014, "patent_applications", times=10)
    # a real tenfold jump, confirmed with its value: the confirmation, not a replacement, clears it
    return (
        [("decimal_shift", c)],
        "(×10)",
        [
            f"cnrds/patents.csv,{city},2014,patent_applications,confirm,"
            f"{c.original * 10!r},a subsidy programme"
        ],
    )


MISTAKES = [
    pop_x10,
    pop_x01,
    gdp_in_yuan,
    population_year_in_persons,
    growth_year_as_fraction,
    wage_extra_zero,
    city_employment_in_persons,
    fdi_in_usd,
    swapped_gdp_components,
    negative_investment,
    negative_growth_rate,
    energy_in_tonnes,
    forest_cover_as_fraction,
    national_growth_as_fraction,
    relief_in_km,
    students_year_in_10k,
    patents_x10_confirmed,
]


def _key(f):
    return f.check, f.table, f.variable


@pytest.mark.parametrize("plant", MISTAKES, ids=[m.__name__.replace("_", "-") for m in MISTAKES])
def test_planted_mistake_is_found_named_and_cleared(clean, tmp_path, plant):
    p = Panel(clean)
    expected, cause, rows = plant(p)
    codebook, names = Codebook(CODEBOOK), city_names()
    result = check_tables(p.inputs(), codebook, city_names=names)
    found = result.findings
    assert len(found) == len(expected), "\n".join(f.full_text() for f in found)
    for f, (check, *where) in zip(
        sorted(found, key=lambda f: (f.table, f.variable, f.year)),
        sorted(expected, key=lambda e: _sort_key(e)),
        strict=True,
    ):
        # a shifted cell is named by the neighbour pattern, or by its distance from the trend
        assert f.check == check or (check == "decimal_shift" and f.check == "jump"), f.full_text()
        assert cause in f.cause, f.full_text()
        if isinstance(where[0], Cell):
            c = where[0]
            assert (f.table, f.variable, f.line) == (c.table, c.variable, str(c.line)), (
                f.full_text()
            )
            assert f.city_code == c.city and f.year == ("" if c.year is None else str(c.year))
            assert f.file == p.tables[c.table].file
            assert f.header == p.tables[c.table].headers[c.variable]
            assert f.city_name == names.get(c.city, "")
            assert f.expected
        else:
            table, variable = where
            assert (f.table, f.variable) == (table, variable) and f.year == table.rsplit("_", 1)[1]
            assert f.line == "2–" + f.line.split("–")[1] and f.file == p.tables[table].file
    # the corrections file clears it: replaced values flow into the tables, confirmations hold
    path = tmp_path / "corrections.csv"
    path.write_text(",".join(CORRECTION_COLUMNS) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    fixed = check_tables(
        p.inputs(), codebook, corrections=read_corrections(path), corrections_path=path
    )
    assert [f.full_text() for f in fixed.findings] == []
    assert len(fixed.corrections) == len(rows)
    assert len(fixed.confirmed) == (
        len(found) if all(r.split(",")[4] == "confirm" for r in rows) else 0
    )
    for e in expected:
        if isinstance(e[1], Cell) and "replace" in rows[0]:
            c = e[1]
            df = fixed.tables[c.table]
            mask = df["source_line"] == c.line
            assert df.loc[mask, c.variable].item() == pytest.approx(
                c.original * p.factor(c.table, c.variable)
            )


def _sort_key(e):
    if isinstance(e[1], Cell):
        return (e[1].table, e[1].variable, "" if e[1].year is None else str(e[1].year))
    return (e[1], e[2], e[1].rsplit("_", 1)[1])


def _plant_raw_population(raw_dir: Path, year: int, rank: int = 10):
    """Multiply one population cell of a UTF-8 yearbook CSV by 10; return line, city and values."""
    path = raw_dir / "yearbook" / f"city_yearbook_{year}.csv"
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    header = rows[0]
    col, code = header.index("年末户籍人口(万人)"), header.index("城市代码")
    i = 1 + rank
    old = rows[i][col]
    rows[i][col] = f"{float(old) * 10:.2f}"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    return i + 1, rows[i][code], old, rows[i][col]


@pytest.mark.slow
def test_workflow_stops_before_the_panel_and_a_replacement_lets_it_through(tmp_path):
    import pandas as pd

    work = copy_workflow(tmp_path / "wf")
    line, city, old, typed = _plant_raw_population(work / "resources" / "raw", 2017)
    proc = snakemake(work, "--cores", "2", "results/panel/panel.parquet", check=False)
    assert proc.returncode != 0
    assert not (work / "results" / "panel" / "panel.parquet").exists()
    log = (work / "results" / "logs" / "plausibility" / "plausibility.log").read_text(
        encoding="utf-8"
    )
    assert "PlausibilityError: 1 implausible value in the ingested data" in log
    assert (
        f"file resources/raw/yearbook/city_yearbook_2017.csv, line {line}, city {city}" in log
        and "year 2017, column '年末户籍人口(万人)' (population)" in log
    ), log
    assert f"value {float(typed):,.0f} 万人" in log or f"value {typed}" in log
    assert "decimal point shifted, or a digit added (×10)" in log
    assert "plausibility: warn" in log
    # the user restores the value in the corrections file: the panel is built with it
    with (work / "resources" / "corrections.csv").open("a", encoding="utf-8") as fh:
        fh.write(
            f"yearbook/city_yearbook_2017.csv,{city},,population,replace,{old},"
            "restored from the 2018 yearbook\n"
        )
    snakemake(work, "--cores", "2", "results/panel/panel.parquet")
    panel = pd.read_parquet(
        work / "results" / "panel" / "panel.parquet", columns=["city_code", "year", "population"]
    )
    row = panel[(panel["city_code"] == city) & (panel["year"] == 2017)]
    if len(row):  # the city may be outside the sample
        assert row["population"].item() == pytest.approx(float(old) * 1e4)
    audit = (work / "results" / "audit" / "plausibility.md").read_text(encoding="utf-8")
    assert (
        "Corrections applied: 1 (1 replace, 0 confirm)" in audit
        and "restored from the 2018 yearbook" in audit
    )
