"""The simulator at other scales: --units (synthetic units beyond the real list, or a subset of
it) and --years (another panel length), docs/simulation.md ("Other panel sizes")."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.data.cities import CityResolver, attributes_frame
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.io import read_yaml
from nqp_resilience.data.raw_files import check_raw_files
from nqp_resilience.indices.indicators import load_indicator_system
from nqp_resilience.sim import simulate as sm

from conftest import ALIASES, ATTRIBUTES, PARAMS, RAW, ROOT, copy_workflow, snakemake

REAL = sm.read_attributes(ATTRIBUTES)
DEFAULT_YEARS = (2010, 2021)
SPARSE = read_yaml(PARAMS)["missing"]["sparse_cities"]
FLAGS = (
    "is_municipality",
    "is_provincial_capital",
    "is_sub_provincial",
    "is_larger_city",
    "adm_high",
    "is_resource_based",
)


def _files(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


def _simulate(out: Path, seed: int = 1, **kw) -> dict[str, bytes]:
    sm.simulate(
        seed,
        PARAMS,
        out,
        attributes=ATTRIBUTES,
        codebook=ROOT / "resources/codebook.yaml",
        keywords=ROOT / "resources/nqp_keywords.txt",
        indicators=ROOT / "resources/indicators.yaml",
        **kw,
    )
    return _files(out)


def _simulation(seed: int, units=None, years=None):
    params, cities = sm.prepare(read_yaml(PARAMS), REAL, units=units, years=years)
    return sm.Simulation(
        params,
        cities,
        seed,
        Codebook(ROOT / "resources/codebook.yaml"),
        load_indicator_system(ROOT / "resources/indicators.yaml"),
    )


# ------------------------------------------------------------------------------ unit codes
def test_synthetic_codes_are_in_the_reserved_range_and_unique():
    cities, sparse = sm.unit_list(REAL, DEFAULT_YEARS, 1230, SPARSE)
    assert sparse == SPARSE and len(cities) == len(REAL) + 1000
    synthetic = [c["city_code"] for c in cities[len(REAL) :]]
    assert all(sm.is_synthetic_code(c) for c in synthetic)
    assert all(re.fullmatch(r"9\d{5}", c) and not c.endswith("0000") for c in synthetic)
    assert len({c["city_code"] for c in cities}) == len(cities)
    # no real code (attribute table, predecessors, aliases) is in the range: every real code
    # starts with its province's two digits, and no province code starts with 9
    real_codes = {c["city_code"] for c in REAL} | {c["province_code"] for c in REAL}
    real_codes |= {p for c in REAL for p in c["predecessor_code"].split(";") if p}
    with ALIASES.open(encoding="utf-8") as fh:
        real_codes |= {p for r in csv.DictReader(fh) for p in r["alias_code"].split(";") if p}
    assert not any(c.startswith(sm.SYNTHETIC_PREFIX) for c in real_codes)
    assert not any(sm.is_synthetic_code(c) for c in real_codes)
    # blocks of 9,999: never a code ending in 0000 (read as a province total)
    assert [sm.synthetic_code(j) for j in (1, 9999, 10000, 10001, sm.MAX_SYNTHETIC_UNITS)] == [
        "900001",
        "909999",
        "910001",
        "910002",
        "999999",
    ]
    with pytest.raises(ValueError, match="at most"):
        sm.synthetic_code(sm.MAX_SYNTHETIC_UNITS + 1)
    # names
    assert [c["city_name"] for c in cities[len(REAL) : len(REAL) + 2]] == [
        "Synthetic unit 0001",
        "Synthetic unit 0002",
    ]


def test_synthetic_attributes_are_valid_and_follow_the_real_cities(tmp_path):
    n_syn = 4000
    cities, _ = sm.unit_list(REAL, DEFAULT_YEARS, 230 + n_syn, SPARSE)
    synthetic = cities[len(REAL) :]
    assert len(synthetic) == n_syn and list(synthetic[0]) == list(REAL[0])  # same columns
    province_name = {c["province_code"]: c["province_name"] for c in REAL}
    province_region = {c["province_code"]: c["region"] for c in REAL}
    for c in synthetic:
        assert province_name[c["province_code"]] == c["province_name"]
        assert province_region[c["province_code"]] == c["region"]
        assert c["region"] in {"east", "central", "west", "northeast"}
        assert all(c[f] in {"0", "1"} for f in FLAGS)
        assert (c["is_municipality"] == "1") == (c["unit_type"] == "municipality")
        assert (c["resource_type"] != "") == (c["is_resource_based"] == "1")
        assert (c["first_year_2010_2021"], c["last_year_2010_2021"]) == ("2010", "2021")
        assert c["n_years_2010_2021"] == "12" and c["changed_2011"] == "0"
        assert c["predecessor_code"] == "" and c["changed_2011_type"] == ""
        assert re.fullmatch(r"synthetic \(attributes of donor \d{6}\)", c["sources"])
    # drawn from the real cities that are in every year and did not change in 2011
    donors = [c for c in REAL if c["n_years_2010_2021"] == "12" and c["changed_2011"] != "1"]
    for key in ("region", "adm_high", "is_resource_based", "is_municipality"):
        real_share = Counter(c[key] for c in donors)
        syn_share = Counter(c[key] for c in synthetic)
        for value, count in real_share.items():
            p = count / len(donors)
            se = np.sqrt(p * (1 - p) / n_syn)
            assert abs(syn_share[value] / n_syn - p) < 4 * se + 1e-9, (key, value)
    # the workflow reads the written table: flags as integers, every unit resolved by code
    path = tmp_path / "city_attributes.csv"
    path.write_bytes(sm.attributes_csv(cities, REAL[0]))
    frame = attributes_frame(path)
    assert len(frame) == len(cities) and frame["adm_high"].isin([0, 1]).all()
    resolver = CityResolver(path, ALIASES)
    for c in synthetic[:50]:
        assert resolver.resolve(c["city_code"], c["city_name"], year=2015) == c["city_code"]
        assert resolver.totals_label(c["city_code"], c["city_name"]) is None


def test_the_unit_list_depends_on_the_number_only_not_the_seed():
    small, _ = sm.unit_list(REAL, DEFAULT_YEARS, 400, SPARSE)
    large, _ = sm.unit_list(REAL, DEFAULT_YEARS, 900, SPARSE)
    assert large[: len(small)] == small  # the first synthetic units do not move
    again, _ = sm.unit_list(REAL, DEFAULT_YEARS, 400, SPARSE)
    assert again == small
    # the real list itself for the default number (or none)
    assert sm.unit_list(REAL, DEFAULT_YEARS, None, SPARSE) == (REAL, SPARSE)
    assert sm.unit_list(REAL, DEFAULT_YEARS, 230, SPARSE) == (REAL, SPARSE)


# ----------------------------------------------------------------------------- N < 230
@pytest.mark.parametrize("n", [1, 40, 229])
def test_a_smaller_panel_is_a_systematic_subset_of_the_eligible_cities(n):
    cities, k = sm.unit_list(REAL, DEFAULT_YEARS, n, SPARSE)
    assert k == round(SPARSE * n / 230)
    assert len(cities) == n + k
    codes = [c["city_code"] for c in cities]
    assert codes == sorted(set(codes))  # city-code order, no repeats
    eligible = [c for c in REAL if c["n_years_2010_2021"] == "12" and c["changed_2011"] != "1"]
    positions = [int((i + 0.5) * len(eligible) / (n + k)) for i in range(n + k)]
    assert codes == [eligible[i]["city_code"] for i in positions]
    assert not any(sm.is_synthetic_code(c) for c in codes)


def test_a_smaller_panel_has_n_sample_cities_and_runs_on_the_real_table(tmp_path):
    sim = _simulation(5, units=60)
    assert int(sim.in_sample.sum()) == 60
    assert len(sim.sparse_idx) == round(SPARSE * 60 / 230)
    regions = Counter(sim.region[sim.in_sample])
    assert len(regions) == 4  # spread over the country
    files = _simulate(tmp_path / "raw", seed=5, units=60)
    # the subset's codes are real: the shipped attribute table still describes them, and every
    # province keeps its government work reports
    check_raw_files(tmp_path / "raw", DEFAULT_YEARS, ATTRIBUTES)
    assert sum(name.startswith("reports/") for name in files) == 32 * 12
    table = list(csv.DictReader(io.StringIO(files[sm.UNITS_FILE].decode("utf-8"))))
    assert len(table) == len(sim.cities)


# ------------------------------------------------------------------------------ years
def test_other_years_change_every_year_keyed_file(tmp_path):
    out = tmp_path / "raw"
    files = _simulate(out, seed=2, units=240, years="2004-2016")
    years = range(2004, 2017)
    yearbooks = sorted(n for n in files if n.startswith("yearbook/"))
    assert yearbooks == [f"yearbook/city_yearbook_{y}.csv" for y in years]
    # years the parameter file's format block does not list take the nearest listed year's
    assert not files["yearbook/city_yearbook_2004.csv"].startswith(b"\xef\xbb\xbf")
    assert "城市代码" in files["yearbook/city_yearbook_2004.csv"].decode("gbk")
    provinces = {c["province_code"] for c in REAL} | {"000000"}
    assert {n for n in files if n.startswith("reports/")} == {
        f"reports/{p}_{y}.txt" for p in provinces for y in years
    }
    national = list(csv.reader(io.StringIO(files["ceic/national.csv"].decode("utf-8"))))
    assert [int(r[0]) for r in national[1:]] == list(range(2003, 2017))  # the lag year too
    patents = list(csv.reader(io.StringIO(files["cnrds/patents.csv"].decode("utf-8"))))
    assert {int(r[0]) for r in patents[1:]} == set(years)
    # the unit table counts the simulated years; the workflow's raw-file check passes with it
    table = files[sm.UNITS_FILE].decode("utf-8")
    units = list(csv.DictReader(io.StringIO(table)))
    beijing = next(c for c in units if c["city_code"] == "110000")
    assert (beijing["first_year_2010_2021"], beijing["n_years_2010_2021"]) == ("2004", "13")
    sansha = next(c for c in units if c["city_code"] == "460300")  # a city since 2012
    assert (sansha["first_year_2010_2021"], sansha["last_year_2010_2021"]) == ("2012", "2016")
    (tmp_path / "units.csv").write_text(table, encoding="utf-8")
    check_raw_files(out, (2004, 2016), tmp_path / "units.csv")
    # 莱芜 (a city to 2017) is in every year of 2004-2016: the real list gives 283 eligible
    # cities, 231 sample cities, so 240 units need 9 synthetic ones
    summary = files["SIMULATED.md"].decode()
    assert "years: 2004-2016\nunits: 240 in the expected sample (9 synthetic)\n" in summary


def test_a_later_first_year_keeps_the_cities_created_before_it():
    sim = _simulation(3, years="2014-2021")
    # cities created by 2014 are in every year of 2014-2021: more eligible cities, still 52
    # sparse ones; 巢湖 (2010 only) is in no year and left out
    codes = [c["city_code"] for c in sim.cities]
    assert "341400" not in codes and "540200" in codes
    assert (
        int(sim.in_sample.sum())
        == sum(c["changed_2011"] != "1" and c["n_years_2010_2021"] == "8" for c in sim.cities)
        - SPARSE
    )


@pytest.mark.parametrize(
    "years, message",
    [
        ("2021-2002", "at least three years"),
        ("2010-2011", "at least three years"),
        ("2010", "FIRST-LAST"),
        ("1995-2005", r"national\.gdp_growth_pct .* no value for \[1994, 1995, 1996"),
        ("2015-2024", r"no value for \[2022, 2023, 2024\]"),
    ],
)
def test_bad_years_are_refused(years, message):
    with pytest.raises(ValueError, match=message):
        sm.prepare(read_yaml(PARAMS), REAL, years=years)


@pytest.mark.parametrize(
    "option, message",
    [
        (["--years", "x"], "FIRST-LAST"),
        (["--years", "2016-2024"], "no value for [2022, 2023, 2024]"),
        (["--units", "0"], "at least one unit"),
    ],
)
def test_the_command_line_refuses_bad_options(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exc:
        sm.main(["--seed", "1", "--params", str(PARAMS), "--out", str(tmp_path), *option])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


# ------------------------------------------------------------------------- determinism
def test_the_same_seed_gives_the_same_bytes_and_the_unit_list_no_seed(tmp_path):
    first = _simulate(tmp_path / "a", seed=7, units=300, years="2012-2016")
    again = _simulate(tmp_path / "b", seed=7, units=300, years="2012-2016")
    assert first == again
    other = _simulate(tmp_path / "c", seed=8, units=300, years="2012-2016")
    assert other[sm.UNITS_FILE] == first[sm.UNITS_FILE]  # the unit list is the seed's
    assert other["cnrds/patents.csv"] != first["cnrds/patents.csv"]


def test_the_explicit_default_size_and_years_are_the_shipped_data(tmp_path):
    """--units 230 --years 2010-2021 is the default: the shipped bytes, no unit table."""
    files = _simulate(tmp_path / "raw", seed=20240601, units=230, years="2010-2021")
    shipped = _files(RAW)
    # SIMULATED.md names the parameter file as given
    summary = (
        files.pop("SIMULATED.md").decode().replace(str(PARAMS), "resources/simulation/params.yaml")
    )
    assert summary == shipped.pop("SIMULATED.md").decode()
    assert files == shipped


# -------------------------------------------------------------- planted effects at scale
def _frame(sim, **columns):
    """The in-sample rows as the Monte Carlo tests build them."""
    from test_montecarlo import _in_sample_frame

    return _in_sample_frame(sim, **columns)


@pytest.mark.parametrize(
    "seed, units, years", [(3, 900, "2005-2021"), (11, 2800, "2002-2021"), (20240601, 120, None)]
)
def test_planted_effects_are_recovered_with_synthetic_units_and_other_years(seed, units, years):
    """As tests/test_montecarlo.py checks on the real list: Resil without noise, regressed as
    the paper's specs are (pyfixest), gives the parameter file's coefficients with synthetic
    units and other years (up to the county scale, 2,800 units over 2002-2021) and on a subset;
    the expected unemployment rate has its planted slope; and the noisy Resil's estimate is
    within four CR1 SEs of the planted value."""
    import pyfixest as pf

    sim = _simulation(seed, units=units, years=years)
    first, last = sm.parse_years(years) if years else DEFAULT_YEARS
    assert int(sim.in_sample.sum()) == units and sim.T == last - first + 1
    r = sim.p["resil"]
    df = _frame(
        sim,
        y=sim.resil_planted,
        noisy=sim.resil,
        une=sim.une_expected,
        **{f"{k}q": sim.dummies[k][:, None] * sim.q for k in r["het"]},
    )
    controls = "+".join(f"c{k}" for k in range(8))
    assert pf.feols(f"y ~ q + {controls} | city + year", df).coef()["q"] == pytest.approx(
        r["beta"], abs=1e-9
    )
    assert pf.feols("y ~ q | city + year", df).coef()["q"] == pytest.approx(
        r["beta_no_controls"], abs=1e-9
    )
    for k, target in r["het"].items():
        fit = pf.feols(f"y ~ {k}q + q + {controls} | city + year", df)
        assert fit.coef()[f"{k}q"] == pytest.approx(target, abs=1e-9), k
    beta_une = sim.p["unemployment"]["beta"]
    fit = pf.feols(f"une ~ q + {controls} | city + year", df)
    assert fit.coef()["q"] == pytest.approx(beta_une, abs=1e-6 + 1e-3 * abs(beta_une))
    fit = pf.feols(f"noisy ~ q + {controls} | city + year", df, vcov={"CRV1": "city"})
    assert abs(fit.coef()["q"] - r["beta"]) < 4 * fit.se()["q"]
    assert sim.clipped["Une"] < 0.03 and sim.clipped["INN"] < 0.01


@pytest.mark.filterwarnings("ignore:(?s).*multicollinearity:UserWarning")
def test_city_trend_estimand_with_synthetic_units():
    """Table 5 (5) (city-specific linear trends as explicit columns) on a panel with synthetic
    units and other years gives ``resil.beta_city_trends``."""
    import pyfixest as pf

    sim = _simulation(4, units=300, years="2008-2017")
    df = _frame(sim, y=sim.resil_planted)
    trend = pd.get_dummies(df["city"], dtype=float).mul(df["year"] - df["year"].mean(), axis=0)
    trend.columns = [f"tr{c}" for c in trend.columns]
    wide = pd.concat([df, trend], axis=1)
    controls = "+".join(f"c{k}" for k in range(8))
    fit = pf.feols(f"y ~ q + {controls} + {'+'.join(trend.columns)} | city + year", wide)
    assert fit.coef()["q"] == pytest.approx(sim.p["resil"]["beta_city_trends"], abs=1e-9)


# ------------------------------------------------------------------- the workflow at scale
@pytest.mark.slow
def test_the_workflow_runs_on_a_county_scale_panel(tmp_path):
    """2,800 units over 2002-2021 (56,000 rows) through the workflow to the baseline estimate
    and its wild bootstrap (the closed form of the cluster sums), with the simulated unit list
    named by the config key city_attributes (docs/simulation.md, section 9)."""
    raw = tmp_path / "raw"
    _simulate(raw, seed=20240601, units=2800, years="2002-2021")
    work = copy_workflow(tmp_path / "wf")
    snakemake(
        work,
        "--cores",
        "2",
        "--config",
        f"raw_dir={raw}",
        f"city_attributes={raw / sm.UNITS_FILE}",
        "years={start: 2002, end: 2021}",
        # a few simulated cells of 2.55 million cross the checks' thresholds (docs/simulation.md)
        "plausibility=warn",
        "--",
        "results/estimates/baseline.json",
        "results/bootstrap/baseline.json",
        timeout=3600,
    )
    panel = pd.read_parquet(work / "results/panel/panel.parquet", columns=["city_code", "year"])
    assert len(panel) == 56_000 and panel["city_code"].nunique() == 2800
    assert panel["year"].min() == 2002 and panel["year"].max() == 2021
    est = json.loads((work / "results/estimates/baseline.json").read_text())
    assert est["nobs"] == 56_000 and est["n_clusters"] == 2800
    assert abs(est["coef"] - read_yaml(PARAMS)["resil"]["beta"]) < 4 * est["se"]
    boot = json.loads((work / "results/bootstrap/baseline.json").read_text())
    assert boot["coef"] == est["coef"] and boot["bootstrap_clusters"] == 2800
    lo, hi = boot["bootstrap_ci"]
    assert 0.0 <= boot["bootstrap_p"] <= 1.0 and lo < est["coef"] < hi
    # every job of the run within 2 GB (Snakemake's benchmark files: max_rss in MB)
    for tsv in (work / "results/benchmarks").rglob("*.tsv"):
        rows = list(csv.DictReader(io.StringIO(tsv.read_text()), delimiter="\t"))
        assert float(rows[-1]["max_rss"]) < 2048, tsv
