"""The spec-sample audit: every spec's N, and cities absent from a static file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.estimation.samples import spec_samples, spec_samples_markdown

from conftest import snakemake


def _frames():
    cities = ["110000", "130100", "130200"]
    years = [2010, 2011, 2012]
    idx = pd.MultiIndex.from_product([cities, years], names=["city_code", "year"]).to_frame(
        index=False
    )
    panel = idx.assign(
        city_name=idx["city_code"].map(
            {"110000": "北京市", "130100": "石家庄市", "130200": "唐山市"}
        ),
        relief=idx["city_code"].map({"110000": 1.0, "130100": np.nan, "130200": 3.0}),
        telephones_1984=5.0,
    )
    rng = np.random.default_rng(0)
    analysis = idx.assign(
        Resil=rng.normal(size=9),
        Nqp=rng.normal(size=9),
        GDP=rng.normal(size=9),
        Relief=panel["relief"] * (idx["year"] - 2010),
        Mrd=np.where(idx["year"] == 2010, np.nan, 1.0),
        municipality=(idx["city_code"] == "110000") * 1,
    )
    return panel, analysis


SPECS = {
    "base": {
        "id": "base",
        "estimator": "ols_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        "controls": True,
    },
    "iv": {
        "id": "iv",
        "estimator": "iv_fe",
        "dependent": "Resil",
        "regressor": "Nqp",
        "instrument": "Relief",
        "controls": False,
    },
    "mrd": {
        "id": "mrd",
        "estimator": "ols_fe",
        "dependent": "Mrd",
        "regressor": "Nqp",
        "controls": False,
        "sample": [{"column": "municipality", "op": "==", "value": 0}],
    },
    "desc": {"id": "desc", "estimator": "describe", "variables": ["Resil"]},
}
STATIC = {"relief": "raw/static/relief.csv", "telephones_1984": "raw/static/telephones_1984.csv"}


def test_counts_by_spec_city_and_variable():
    panel, analysis = _frames()
    summary, lost, absent = spec_samples(analysis, panel, SPECS, ["GDP"], STATIC)
    s = summary.set_index("spec")
    assert list(s.index) == ["base", "iv", "mrd"]  # describe specs have no estimation sample
    assert s.loc["base", ["n_sample", "n_complete", "rows_lost", "cities_lost"]].tolist() == [
        9,
        9,
        0,
        0,
    ]
    assert s.loc["iv", ["n_sample", "n_complete", "rows_lost", "cities_lost"]].tolist() == [
        9,
        6,
        3,
        1,
    ]
    # sample filter first (municipality 110000 out), then the first-year Mrd gap of the two others
    assert s.loc["mrd", ["n_sample", "n_complete", "rows_lost", "cities_lost"]].tolist() == [
        6,
        4,
        2,
        0,
    ]
    assert absent.to_dict("records") == [
        {
            "city_code": "130100",
            "city_name": "石家庄市",
            "variable": "relief",
            "static_file": "raw/static/relief.csv",
        }
    ]
    iv = lost[lost["spec"] == "iv"]
    assert iv[
        ["city_code", "variable", "rows_lost", "years", "city_absent_from"]
    ].values.tolist() == [["130100", "Relief", 3, "2010 2011 2012", "raw/static/relief.csv"]]
    assert lost.loc[lost["spec"] == "mrd", "city_absent_from"].tolist() == [
        "raw/static/relief.csv",
        "",
    ]


def test_markdown_names_the_absent_city_the_file_and_the_specs():
    panel, analysis = _frames()
    text = spec_samples_markdown(*spec_samples(analysis, panel, SPECS, ["GDP"], STATIC))
    assert "| 130100 | 石家庄市 | raw/static/relief.csv | iv (−3) |" in text
    assert "| iv | 9 | 6 | 3 | 1 |" in text
    assert "| mrd | Mrd | 2 | 2 | 2010 | 130100 石家庄市, 130200 唐山市 |" in text


def test_no_absent_city_says_so():
    panel, analysis = _frames()
    panel["relief"] = 1.0
    analysis["Relief"] = 1.0
    summary, lost, absent = spec_samples(analysis, panel, SPECS, ["GDP"], STATIC)
    assert absent.empty and "iv" not in set(lost["spec"])
    assert "None: every city of the panel is in every static file." in spec_samples_markdown(
        summary, lost, absent
    )


@pytest.mark.slow
def test_city_missing_from_relief_is_listed_with_the_specs_it_leaves(workflow_copy):
    relief = workflow_copy / "resources/raw/static/relief.csv"
    lines = relief.read_bytes().decode("utf-8-sig").splitlines(keepends=True)
    dropped = next(line for line in lines[1:] if line.startswith("130200"))  # 唐山市, in the panel
    relief.write_text("".join(line for line in lines if line != dropped), encoding="utf-8")
    snakemake(workflow_copy, "--cores", "2", "results/audit/spec_samples.md")
    report = (workflow_copy / "results/audit/spec_samples.md").read_text(encoding="utf-8")
    row = next(line for line in report.splitlines() if line.startswith("| 130200 |"))
    assert "resources/raw/static/relief.csv" in row and "iv_relief (−12)" in row
    assert "iv_internet" not in row and "baseline" not in row
    assert "| iv_relief | 2760 | 2748 | 12 | 1 |" in report
    log = (workflow_copy / "results/logs/spec_samples/spec_samples.log").read_text(encoding="utf-8")
    assert "130200" in log and "relief.csv" in log and "iv_relief" in log
