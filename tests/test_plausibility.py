"""Plausibility layer: no finding on clean simulated data (default and other seeds), the
corrections file's rules, the config shorthand, and the rule's job in stop and warn mode."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.plausibility import (
    CORRECTION_COLUMNS,
    PlausibilityError,
    TableInput,
    Thresholds,
    check_tables,
    read_corrections,
    table_source,
    unit_cause,
)
from nqp_resilience.errors import ConfigError, DataError, ProjectError

from conftest import ALIASES, ATTRIBUTES, CODEBOOK, PARAMS, RAW, ROOT

YEARS = (2010, 2021)


def ingest_folder(raw_dir) -> list[TableInput]:
    """Every city-year, static and national table of a raw folder, ingested as the workflow does."""
    from nqp_resilience.data.cities import CityResolver
    from nqp_resilience.data.ingest import ingest_table
    from nqp_resilience.data.plausibility import raw_headers
    from nqp_resilience.data.raw_files import raw_file_table, raw_source_path, yearbook_path

    codebook = Codebook(CODEBOOK)
    resolver = CityResolver(ATTRIBUTES, ALIASES)
    out = []
    for year in range(YEARS[0], YEARS[1] + 1):
        path = yearbook_path(raw_dir, year)
        df = ingest_table(path, codebook["yearbook"], resolver, YEARS, year=year)
        out.append(
            TableInput(
                f"yearbook_{year}", "yearbook", path, df, raw_headers(path, codebook["yearbook"])
            )
        )
    for name in raw_file_table():
        source = codebook[name]
        path = raw_source_path(raw_dir, name)
        df = ingest_table(
            path,
            source,
            resolver if source.grain != "year" else None,
            (YEARS[0] - source.years_before, YEARS[1]),
        )
        out.append(TableInput(name, name, path, df, raw_headers(path, source)))
    return out


def city_names() -> dict:
    from nqp_resilience.data.cities import read_attributes

    return {r["city_code"]: r["city_name"] for r in read_attributes(ATTRIBUTES)}


@pytest.fixture(scope="module")
def default_tables():
    return ingest_folder(RAW)


def test_default_data_has_no_finding(default_tables):
    result = check_tables(default_tables, Codebook(CODEBOOK), Thresholds())
    assert result.cells_checked > 140_000
    assert [f.full_text() for f in result.findings] == []
    assert result.corrections == [] and result.confirmed == []


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_other_simulator_seeds_have_no_finding(seed, tmp_path):
    raw = tmp_path / "raw"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nqp_resilience.sim.simulate",
            "--seed",
            str(seed),
            "--params",
            str(PARAMS),
            "--out",
            str(raw),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    result = check_tables(ingest_folder(raw), Codebook(CODEBOOK), Thresholds())
    assert result.cells_checked > 140_000
    assert [f.full_text() for f in result.findings] == []


def test_unit_causes_name_the_likely_mix_up():
    assert unit_cause("万人", 4) == "looks like persons (人), not 万人 (×10,000)"
    assert unit_cause("万元", 4) == "looks like 元, not 万元 (×10,000)"
    assert unit_cause("万美元", 4) == "looks like 美元, not 万美元 (×10,000)"
    assert unit_cause("%", -2) == "looks like a fraction, not % (×0.01)"
    assert unit_cause("人", -4) == "looks like 万人, not 人 (×0.0001)"
    assert "decimal point shifted" in unit_cause("万元", 1) and "(×10)" in unit_cause("万元", 1)
    assert "(×0.1)" in unit_cause("件", -1)


def test_thresholds_from_config_reject_unknown_keys():
    assert Thresholds.from_config({"z_jump": 7}).z_jump == 7.0
    assert Thresholds.from_config({"min_years": 6}).min_years == 6
    with pytest.raises(ConfigError, match="plausibility.thresholds.z_jmp"):
        Thresholds.from_config({"z_jmp": 7})


def test_config_shorthand_warn_expands_and_keeps_defaults():
    from nqp_resilience.config import validate_config

    schema = ROOT / "schemas" / "config.schema.yaml"
    cfg = validate_config({"plausibility": "warn"}, schema)
    assert cfg["plausibility"]["action"] == "warn"
    assert cfg["plausibility"]["corrections"] == "resources/corrections.csv"
    assert cfg["plausibility"]["thresholds"]["z_jump"] == 6.0
    with pytest.raises(ConfigError) as exc:
        validate_config({"plausibility": "ignore"}, schema)
    assert exc.value.key == "plausibility.action"
    with pytest.raises(ConfigError) as exc:
        validate_config({"plausibility": {"thresholds": {"z": 3}}}, schema)
    assert "unknown key" in str(exc.value)


def test_shipped_corrections_file_is_empty_with_its_header():
    path = ROOT / "resources" / "corrections.csv"
    assert read_corrections(path) == []
    header = [
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    ][0]
    assert header.split(",") == list(CORRECTION_COLUMNS)
    for column in CORRECTION_COLUMNS:  # every column is explained in the comment block
        assert f"#   {column}" in path.read_text(encoding="utf-8")


def _write(tmp_path, *rows, name="corrections.csv") -> Path:
    path = tmp_path / name
    path.write_text(
        "# comment\n" + ",".join(CORRECTION_COLUMNS) + "\n" + "".join(r + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def _first_row(tables, name="yearbook_2015"):
    df = next(t for t in tables if t.name == name).data
    return df.iloc[0]


@pytest.mark.parametrize(
    "row, column, words",
    [
        (
            "yearbook_2099,{city},,population,confirm,,",
            "file_or_source",
            "no ingested table matches",
        ),
        ("yearbook_2015,{city},,populaton,confirm,,", "variable", "unknown variable"),
        ("yearbook_2015,{city},,population,keep,,", "action", "not understood"),
        ("yearbook_2015,{city},,population,replace,,", "value", "needs a value"),
        ("yearbook_2015,{city},,population,replace,abc,", "value", "not a number"),
        ("yearbook_2015,999999,,population,confirm,,", "city_code", "matches no cell"),
        ("yearbook_2015,{city},,population,confirm,1.5,", "value", "differs from the cell"),
        ("yearbook_2015,,,population,replace,1.5,", "city_code", "exactly one cell"),
        ("national,,2015,population,confirm,,", "variable", "unknown variable"),
    ],
    ids=[
        "unknown-file",
        "unknown-variable",
        "unknown-action",
        "replace-without-value",
        "non-numeric-value",
        "no-matching-cell",
        "confirmed-value-differs",
        "replace-of-a-column",
        "variable-of-another-source",
    ],
)
def test_bad_corrections_name_file_line_and_column(default_tables, tmp_path, row, column, words):
    city = _first_row(default_tables)["city_code"]
    path = _write(tmp_path, row.format(city=city))
    with pytest.raises(DataError) as exc:
        check_tables(
            default_tables,
            Codebook(CODEBOOK),
            corrections=read_corrections(path),
            corrections_path=path,
        )
    assert exc.value.file == str(path)
    assert exc.value.row == "line 3"
    assert column in exc.value.column
    assert words in str(exc.value)


def test_two_corrections_of_one_cell_are_an_error(default_tables, tmp_path):
    city = _first_row(default_tables)["city_code"]
    path = _write(
        tmp_path,
        f"yearbook_2015,{city},,population,confirm,,",
        f"yearbook/city_yearbook_2015.csv,{city},,年末户籍人口(万人),replace,100,",
    )
    with pytest.raises(DataError, match="second correction for the same cell") as exc:
        check_tables(
            default_tables,
            Codebook(CODEBOOK),
            corrections=read_corrections(path),
            corrections_path=path,
        )
    assert exc.value.row == "line 4"


def test_corrections_header_must_match(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("file,city_code,year,variable,action,value,note\n", encoding="utf-8")
    with pytest.raises(DataError, match="not the corrections header"):
        read_corrections(path)
    with pytest.raises(DataError, match="does not exist"):
        read_corrections(tmp_path / "missing.csv")


def test_replace_changes_the_value_downstream_and_is_listed(default_tables, tmp_path):
    from nqp_resilience.data.plausibility import audit_markdown

    row = _first_row(default_tables)
    old = row["population"] / 1e4
    new = round(old * 1.01, 2)
    path = _write(
        tmp_path,
        f"city_yearbook_2015.csv,{row['city_code']},,年末户籍人口(万人),replace,"
        f'{new},"checked, by hand"',
    )
    result = check_tables(default_tables, Codebook(CODEBOOK), corrections=read_corrections(path))
    df = result.tables["yearbook_2015"]
    assert df.loc[df["city_code"] == row["city_code"], "population"].item() == pytest.approx(
        new * 1e4
    )
    # the input tables are untouched
    assert (
        next(t for t in default_tables if t.name == "yearbook_2015").data["population"].iat[0]
        == row["population"]
    )
    assert result.findings == []
    [c] = result.corrections
    assert (c.action, c.variable, c.old_value, c.value, c.note) == (
        "replace",
        "population",
        pytest.approx(old),
        new,
        "checked, by hand",
    )
    text = audit_markdown(result, "stop")
    assert "Corrections applied: 1 (1 replace, 0 confirm)" in text
    assert f"| yearbook_2015 | {row['city_code']} |" in text and "checked, by hand" in text


def _smk(tmp_path, tables, corrections, action):
    """A stand-in for Snakemake's ``snakemake`` object of rule plausibility."""
    from nqp_resilience.data.io import write_parquet

    interim = []
    for t in tables:
        p = tmp_path / "interim" / f"{t.name}.parquet"
        write_parquet(t.data, p)
        interim.append(str(p))
    out = tmp_path / "results"
    yearbook = [t for t in tables if t.source == "yearbook"]
    others = [t for t in tables if t.source != "yearbook"]
    return SimpleNamespace(
        input=SimpleNamespace(
            yearbook=interim[: len(yearbook)],
            sources=interim[len(yearbook) :],
            raw_yearbook=[t.file for t in yearbook],
            raw_sources=[t.file for t in others],
            corrections=str(corrections),
            codebook=str(CODEBOOK),
            attributes=str(ATTRIBUTES),
        ),
        output=SimpleNamespace(
            yearbook=[str(out / "checked" / f"{t.name}.parquet") for t in yearbook],
            sources=[str(out / "checked" / f"{t.name}.parquet") for t in others],
            report=str(out / "audit" / "plausibility.md"),
            table=str(out / "audit" / "plausibility.csv"),
        ),
        params=SimpleNamespace(action=action, thresholds={}),
        log=[],
    )


def _planted(default_tables):
    """The default tables with one population cell ×10 (a decimal point one place off)."""
    tables = [
        TableInput(t.name, t.source, t.file, t.data.copy(), t.headers) for t in default_tables
    ]
    df = next(t for t in tables if t.name == "yearbook_2015").data
    df.loc[df.index[5], "population"] *= 10
    return tables, df.iloc[5]


def test_raw_files_are_read_again_only_for_a_finding(default_tables, monkeypatch):
    from nqp_resilience.data import plausibility

    codebook, real, reads = Codebook(CODEBOOK), plausibility.raw_headers, []

    def counted(path, source):
        reads.append(Path(path).name)
        return real(path, source)

    monkeypatch.setattr(plausibility, "raw_headers", counted)

    def lazy(tables):
        headers = plausibility.RawHeaders
        return [
            TableInput(t.name, t.source, t.file, t.data, headers(t.file, codebook[t.source]))
            for t in tables
        ]

    assert check_tables(lazy(default_tables), codebook, Thresholds()).findings == []
    assert reads == []  # no finding: no raw file read again
    tables, _ = _planted(default_tables)
    [finding] = check_tables(lazy(tables), codebook, Thresholds()).findings
    assert finding.header == "年末户籍人口(万人)"  # the header of the raw file, read for it
    assert reads == [Path(finding.file).name]


def test_warn_mode_writes_the_audit_and_goes_on(default_tables, tmp_path):
    import pandas as pd

    from nqp_resilience.data.jobs import plausibility_job

    tables, row = _planted(default_tables)
    smk = _smk(tmp_path, tables, ROOT / "resources" / "corrections.csv", "warn")
    plausibility_job(smk)
    audit = pd.read_csv(smk.output.table, dtype=str)
    assert len(audit) == 1
    assert (
        audit.loc[0, "city_code"] == row["city_code"] and audit.loc[0, "variable"] == "population"
    )
    assert audit.loc[0, "line"] == str(row["source_line"]) and audit.loc[0, "year"] == "2015"
    assert audit.loc[0, "header"] == "年末户籍人口(万人)"
    text = Path(smk.output.report).read_text(encoding="utf-8")
    assert "- Findings: 1" in text and "Action: warn" in text and "decimal point shifted" in text
    # every checked table is written, the flagged value kept as it is
    checked = pd.read_parquet(smk.output.yearbook[5])
    assert (
        checked.loc[checked["city_code"] == row["city_code"], "population"].item()
        == row["population"]
    )
    assert len(smk.output.yearbook) + len(smk.output.sources) == 17
    assert all(Path(p).exists() for p in [*smk.output.yearbook, *smk.output.sources])


def test_stop_mode_raises_with_every_finding_and_a_hint(default_tables, tmp_path):
    import pandas as pd

    from nqp_resilience.data.jobs import plausibility_job

    tables, row = _planted(default_tables)
    smk = _smk(tmp_path, tables, ROOT / "resources" / "corrections.csv", "stop")
    with pytest.raises(PlausibilityError) as exc:
        plausibility_job(smk)
    assert isinstance(exc.value, ProjectError)
    msg = str(exc.value)
    assert msg.startswith("1 implausible value in the ingested data")
    assert f"line {row['source_line']}, city {row['city_code']}" in msg and "year 2015" in msg
    assert (
        "'年末户籍人口(万人)' (population)" in msg
        and "plausibility: warn" in msg
        and "corrections.csv" in msg
    )
    assert not any(Path(p).exists() for p in smk.output.yearbook)  # nothing for the panel
    assert len(pd.read_csv(smk.output.table)) == 1  # the audit is there


def test_stop_mode_without_finding_writes_an_empty_audit(default_tables, tmp_path):
    import pandas as pd

    from nqp_resilience.data.jobs import plausibility_job
    from nqp_resilience.data.plausibility import FINDING_COLUMNS

    smk = _smk(tmp_path, default_tables, ROOT / "resources" / "corrections.csv", "stop")
    plausibility_job(smk)
    audit = pd.read_csv(smk.output.table)
    assert list(audit.columns) == list(FINDING_COLUMNS) and audit.empty
    assert "- Findings: 0" in Path(smk.output.report).read_text(encoding="utf-8")


def test_table_source_of_interim_names():
    codebook = Codebook(CODEBOOK)
    assert table_source("yearbook_2015", codebook) == "yearbook"
    assert table_source("telephones_1984", codebook) == "telephones_1984"
    with pytest.raises(DataError):
        table_source("weather", codebook)


def test_import_is_cheap():
    code = (
        "import sys, nqp_resilience.data.plausibility;"
        " print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_column_medians_are_numpys_median_of_each_column(seed):
    """The swap check's medians of all years at once equal numpy.median of each year's values
    bit for bit: odd and even counts, ties, short and long columns, a column without values."""
    from nqp_resilience.data.plausibility import column_medians

    rng = np.random.default_rng(seed)
    assert np.isnan(column_medians(np.empty((0, 3)))).all()
    for shape in [(2800, 20), (7, 5), (1, 3), (600, 2)]:
        x = np.abs(rng.standard_t(3, size=shape))
        if seed:
            x = np.round(x, seed)  # ties
        x[rng.random(shape) < 0.25] = np.nan
        x[:, 0] = np.nan
        got = column_medians(x)
        for t in range(shape[1]):
            col = x[~np.isnan(x[:, t]), t]
            want = np.median(col) if col.size else np.nan
            assert np.asarray(got[t]).tobytes() == np.asarray(want).tobytes(), (shape, t)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_nanmedian_is_numpys_bit_for_bit(seed):
    """The plausibility checks' median equals numpy.nanmedian exactly: small and long axes (numpy
    takes a masked-array path below 600), odd and even counts (slices of different counts in one
    call), ties, all-NaN slices, signed zeros, keepdims and a flat call."""
    from nqp_resilience.data.plausibility import nanmedian

    rng = np.random.default_rng(seed)
    shapes = [(50, 7), (7, 50), (3, 700), (700, 3), (1, 1), (4, 0), (0, 4), (31,), (640,)]
    for shape in shapes:
        a = rng.lognormal(size=shape) * rng.choice([-1.0, 1.0], size=shape)
        if seed % 2:  # many ties: the middle positions hold repeated values
            a = np.round(a, 0)
        a[rng.random(shape) < 0.3] = np.nan
        if a.ndim == 2 and a.shape[0] > 2 and a.shape[1] > 0:
            a[1] = np.nan  # an all-NaN row
            a[2, : a.shape[1] // 2] = 0.0
            a[2, a.shape[1] // 2 :] = -0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for axis in [None, *range(a.ndim)]:
                for keepdims in (False, True):
                    ours = nanmedian(a, axis=axis, keepdims=keepdims)
                    ref = np.nanmedian(a, axis=axis, keepdims=keepdims)
                    assert np.shape(ours) == np.shape(ref), (shape, axis, keepdims)
                    assert np.asarray(ours).tobytes() == np.asarray(ref).tobytes(), (
                        shape,
                        axis,
                        keepdims,
                    )
    with_inf = np.array([[1.0, np.inf, np.nan], [2.0, 3.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.array_equal(
            nanmedian(with_inf, axis=1), np.nanmedian(with_inf, axis=1), equal_nan=True
        )
