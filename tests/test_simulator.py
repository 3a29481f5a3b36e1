"""The simulator: deterministic, regenerates the shipped default, writes the real raw formats."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nqp_resilience.data.io import read_raw_table
from nqp_resilience.sim.simulate import read_keywords

from conftest import ATTRIBUTES, PARAMS, RAW, ROOT

SEED = 20240601  # the seed of the shipped default (resources/raw/SIMULATED.md)


def _simulate(out: Path, seed: int = SEED, params: Path = PARAMS) -> dict[str, bytes]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nqp_resilience.sim.simulate",
            "--seed",
            str(seed),
            "--params",
            str(params.relative_to(ROOT)) if params.is_relative_to(ROOT) else str(params),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return {
        p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim") / "raw")


def test_regenerating_the_default_is_byte_identical(regenerated):
    shipped = {
        p.relative_to(RAW).as_posix(): p.read_bytes() for p in sorted(RAW.rglob("*")) if p.is_file()
    }
    assert set(regenerated) == set(shipped)
    differ = [name for name in shipped if shipped[name] != regenerated[name]]
    assert differ == []
    assert (
        "SEED" not in shipped["SIMULATED.md"].decode()
        and f"seed: {SEED}" in shipped["SIMULATED.md"].decode()
    )


def test_another_seed_gives_other_data(regenerated, tmp_path):
    other = _simulate(tmp_path / "raw", seed=SEED + 1)
    assert set(other) == set(regenerated)
    same = [n for n in other if other[n] == regenerated[n]]
    # only the national series (public figures) do not depend on the seed
    assert same == ["ceic/national.csv"]


def test_every_raw_file_of_the_layout_is_written(regenerated):
    names = set(regenerated)
    for year in range(2010, 2021):
        assert f"yearbook/city_yearbook_{year}.csv" in names
    assert "yearbook/city_yearbook_2021.xlsx" in names
    for f in (
        "cnrds/patents.csv",
        "cnrds/innovation.csv",
        "ceic/national.csv",
        "static/relief.csv",
        "static/telephones_1984.csv",
    ):
        assert f in names
    provinces = {row["province_code"] for row in csv.DictReader(ATTRIBUTES.open(encoding="utf-8"))}
    assert len(provinces) == 31
    for prov in provinces | {"000000"}:
        for year in range(2010, 2022):
            assert f"reports/{prov}_{year}.txt" in names
    assert sum(len(v) for v in regenerated.values()) < 6_000_000  # a few MB


def test_yearbook_encodings_and_formats(regenerated):
    gbk = regenerated["yearbook/city_yearbook_2010.csv"]
    with pytest.raises(UnicodeDecodeError):
        gbk.decode("utf-8")
    assert "城市代码" in gbk.decode("gbk")
    assert regenerated["yearbook/city_yearbook_2013.csv"].startswith(b"\xef\xbb\xbf")
    plain = regenerated["yearbook/city_yearbook_2017.csv"]
    assert not plain.startswith(b"\xef\xbb\xbf") and "城市代码" in plain.decode("utf-8")
    assert regenerated["yearbook/city_yearbook_2021.xlsx"].startswith(b"PK")
    text = regenerated["yearbook/city_yearbook_2016.csv"].decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    cells = [c for r in rows[1:] for c in r[2:]]
    assert sum("," in c for c in cells) > 500  # thousands separators
    for placeholder in ("—", "…", "-"):
        assert placeholder in cells  # missing-value placeholders
    fullwidth = regenerated["yearbook/city_yearbook_2014.csv"].decode("utf-8-sig")
    assert any(ch in fullwidth for ch in "０１２３４５６７８９")  # full-width digits
    # header variants of the real yearbooks
    assert "年末总人口(万人)" in gbk.decode("gbk")
    assert "年末户籍人口(万人)" in plain.decode("utf-8")


def test_cities_names_and_aliases(regenerated):
    y2010 = list(
        csv.reader(io.StringIO(regenerated["yearbook/city_yearbook_2010.csv"].decode("gbk")))
    )
    ids = {(r[0], r[1]) for r in y2010[1:]}
    assert ("420600", "襄樊市") in ids  # old name, same code
    assert ("522400", "毕节地区") in ids  # 2011 status change, old code
    assert ("341400", "巢湖市") in ids  # abolished in 2011, present in 2010
    y2012 = list(
        csv.reader(io.StringIO(regenerated["yearbook/city_yearbook_2012.csv"].decode("gbk")))
    )
    codes_2012 = {r[0] for r in y2012[1:]}
    assert "520500" in codes_2012 and "341400" not in codes_2012 and "522400" not in codes_2012
    assert "420600" in codes_2012 and "襄阳市" in {r[1] for r in y2012[1:]}
    n_attr = sum(1 for _ in csv.DictReader(ATTRIBUTES.open(encoding="utf-8")))
    assert len({r[0] for r in y2012[1:]}) == len(y2012) - 1 <= n_attr


def test_missing_cells_share(tmp_path, regenerated):
    """About 3 % of cells are missing at random, plus the sparse cities above 20 %."""
    out = tmp_path / "raw"
    out.mkdir()
    (out / "p.csv").write_bytes(regenerated["cnrds/patents.csv"])
    table = read_raw_table(out / "p.csv")
    cells = np.array([[c == "" for c in r[3:]] for r in table.rows])
    by_city: dict[str, list] = {}
    for row, miss in zip(table.rows, cells, strict=True):
        by_city.setdefault(row[1], []).append(miss)
    shares = {c: np.mean(m) for c, m in by_city.items()}
    sparse = set(regenerated["SIMULATED.md"].decode().split("sparse_cities: ")[1].split())
    assert len(sparse) == 52
    dense = [s for c, s in shares.items() if c not in sparse]
    assert 0.02 < np.mean(dense) < 0.04
    assert np.mean([shares[c] for c in sparse]) > 0.2


def test_reports_carry_the_keywords(regenerated):
    keywords = read_keywords(ROOT / "resources" / "nqp_keywords.txt")
    assert len(keywords) == 46
    texts = {k: v.decode("utf-8") for k, v in regenerated.items() if k.startswith("reports/")}
    counts = {k: sum(t.count(kw) for kw in keywords) for k, t in texts.items()}
    assert sum(counts.values()) > 1000
    early = np.mean([c for k, c in counts.items() if k.endswith("_2010.txt")])
    late = np.mean([c for k, c in counts.items() if k.endswith("_2021.txt")])
    assert late > early  # the simulated keyword rate rises over time
