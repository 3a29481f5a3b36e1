"""Cleaning and sample construction on hand-made panels (docs/cleaning.md)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.data.clean import (
    SampleOptions,
    build_panel,
    interpolate_rows,
    interpolate_series,
    sample_report,
)

NAN = np.nan
YEARS = np.arange(2010, 2016)  # 6 years


@pytest.mark.parametrize(
    "edge, expected, methods",
    [
        # observed at 2011 (2), 2013 (6), 2014 (4); interior 2012 = (2+6)/2 = 4
        (
            "nearest",
            [2, 2, 4, 6, 4, 4],
            ["nearest_edge", "", "linear_interior", "", "", "nearest_edge"],
        ),
        # edges extend the line through the two nearest observations:
        # before: slope (6-2)/2 = 2 per year -> 2010: 2 - 2 = 0;
        #   after: slope (4-6)/1 = -2 -> 2015: 4 - 2 = 2
        (
            "linear_extrapolate",
            [0, 2, 4, 6, 4, 2],
            ["linear_extrapolate", "", "linear_interior", "", "", "linear_extrapolate"],
        ),
        ("none", [NAN, 2, 4, 6, 4, NAN], ["", "", "linear_interior", "", "", ""]),
    ],
)
def test_interpolate_series_hand_worked(edge, expected, methods):
    values = np.array([NAN, 2, NAN, 6, 4, NAN])
    filled, method = interpolate_series(YEARS, values, edge)
    np.testing.assert_allclose(filled, expected, equal_nan=True)
    assert list(method) == methods


def test_interpolation_over_a_long_gap_is_linear_in_the_year():
    # 2010 = 10, 2014 = 30: 2011..2013 = 15, 20, 25
    filled, _ = interpolate_series(YEARS, np.array([10, NAN, NAN, NAN, 30, 32.0]), "nearest")
    np.testing.assert_allclose(filled, [10, 15, 20, 25, 30, 32])


def test_single_observation_and_all_missing():
    filled, method = interpolate_series(
        YEARS, np.array([NAN, NAN, 5, NAN, NAN, NAN]), "linear_extrapolate"
    )
    np.testing.assert_allclose(filled, [5] * 6)
    assert set(method) == {"", "nearest_edge"}
    filled, method = interpolate_series(YEARS, np.full(6, NAN), "nearest")
    assert np.isnan(filled).all() and set(method) == {""}


def test_unknown_edge_method_is_rejected():
    with pytest.raises(ValueError, match="edge must be one of"):
        interpolate_series(YEARS, np.ones(6), "cubic")


def _attributes():
    rows = [
        # code, name, changed, type, first, last
        ("100100", "甲市", 0, "", 2010, 2015),
        ("100200", "乙市", 0, "", 2010, 2015),
        ("100300", "丙市", 1, "boundary_gain", 2010, 2015),
        ("100400", "丁市", 0, "", 2012, 2015),
        ("100500", "戊市", 0, "", 2010, 2015),
        ("100600", "己市", 0, "", 2010, 2015),
    ]
    return pd.DataFrame(
        [
            {
                "city_code": c,
                "city_name": n,
                "province_code": "100000",
                "province_name": "某省",
                "region": "east",
                "changed_2011": ch,
                "changed_2011_type": t,
                "first_year_2010_2021": f,
                "last_year_2010_2021": last,
            }
            for c, n, ch, t, f, last in rows
        ]
    )


def _tables():
    """Two variables over 6 years; 乙 misses 3 of 12 cells (25 %), 甲 misses 2 (16.7 %)."""
    recs = []
    for code in ("100100", "100200", "100300", "100400", "100600"):
        for y in YEARS:
            if code == "100400" and y < 2012:
                continue  # not a city yet
            recs.append(
                {"city_code": code, "year": int(y), "a": float(y - 2000), "b": 100.0 + (y - 2010)}
            )
    df = pd.DataFrame(recs)
    df.loc[(df.city_code == "100100") & (df.year == 2012), "a"] = NAN
    df.loc[(df.city_code == "100100") & (df.year == 2015), "b"] = NAN
    df.loc[(df.city_code == "100200") & df.year.isin([2010, 2011, 2013]), "a"] = NAN
    # 己 is observed only in 2010-2014 for b in a separate "file" (the second table)
    first = df[["city_code", "year", "a"]]
    second = df[["city_code", "year", "b"]]
    second = second[~((second.city_code == "100600") & (second.year == 2015))]
    return [first, second]


def test_build_panel_sample_decisions_and_audit():
    options = SampleOptions(years=(2010, 2015), max_missing_share=0.2)
    static = [pd.DataFrame({"city_code": ["100100", "100600"], "relief": [10.0, 20.0]})]
    national = pd.DataFrame({"year": np.arange(2009, 2016), "g_n": np.arange(7.0)})
    panel, audit, sample = build_panel(
        _tables(), static, national, _attributes(), options, ["a", "b"]
    )
    reasons = dict(zip(sample.city_code, sample.reason, strict=True))
    assert reasons["100100"] == ""  # 2/12 = 16.7 % <= 20 %
    assert reasons["100200"].startswith("25.0% of required cells missing")
    assert "boundary changed in 2011" in reasons["100300"]
    assert reasons["100400"].startswith("not a prefecture-level city in every year")
    assert reasons["100500"] == "no observations in the raw extracts"
    assert reasons["100600"] == ""  # 1/12 missing
    assert sorted(panel.city_code.unique()) == ["100100", "100600"]
    assert len(panel) == 12 and panel[["a", "b"]].notna().all().all()
    # audit: 甲 a@2012 interior = (11 + 13) / 2 = 12; 甲 b@2015 edge = 104 (nearest);
    #   己 b@2015 edge = 104
    got = {(r.city_code, r.year, r.variable): (r.method, r.value) for r in audit.itertuples()}
    assert got == {
        ("100100", 2012, "a"): ("linear_interior", 12.0),
        ("100100", 2015, "b"): ("nearest_edge", 104.0),
        ("100600", 2015, "b"): ("nearest_edge", 104.0),
    }
    # static and national columns are merged; 2009 national row is not in the panel
    assert panel.loc[panel.city_code == "100600", "relief"].eq(20.0).all()
    assert panel.g_n.tolist() == list(np.tile(np.arange(1.0, 7.0), 2))
    report = sample_report(sample, audit, panel, options)
    for code in ("100200", "100300", "100400", "100500"):
        assert f"| {code} |" in report
    assert "- Cities kept: 2" in report and "- Imputed cells: 3" in report


def test_options_change_the_sample():
    tables, attrs = _tables(), _attributes()
    national = pd.DataFrame({"year": YEARS})
    lenient = SampleOptions(
        years=(2010, 2015),
        max_missing_share=0.35,
        drop_changed_2011=False,
        drop_partial_period=False,
        edge="none",
    )
    panel, audit, sample = build_panel(tables, [], national, attrs, lenient, ["a", "b"])
    assert sorted(panel.city_code.unique()) == ["100100", "100200", "100300", "100400", "100600"]
    # with edge=none the edge gaps stay missing and are not in the audit
    assert panel.loc[(panel.city_code == "100200") & (panel.year == 2010), "a"].isna().all()
    assert not ((audit.city_code == "100200") & (audit.year == 2010)).any()
    # 丁 (a city from 2012) is missing 2010-2011 entirely: 4/12 cells
    row = sample.set_index("city_code").loc["100400"]
    assert row.missing_share == pytest.approx(4 / 12)
    only_status = SampleOptions(
        years=(2010, 2015), changed_2011_types=("abolished", "status_change")
    )
    _, _, sample = build_panel(tables, [], national, attrs, only_status, ["a", "b"])
    assert sample.set_index("city_code").loc["100300", "kept"]


def test_required_variables_restrict_the_missing_share():
    options = SampleOptions(years=(2010, 2015), required_variables=("b",))
    _, _, sample = build_panel(
        _tables(), [], pd.DataFrame({"year": YEARS}), _attributes(), options, ["a", "b"]
    )
    assert sample.set_index("city_code").loc["100200", "kept"]  # misses only a


def test_a_period_no_city_covers_is_an_error_not_an_empty_panel():
    """Years outside the attribute table's period drop every city: the run stops and says why,
    instead of writing an empty panel."""
    from nqp_resilience.errors import ConfigError

    national = pd.DataFrame({"year": np.arange(2000, 2016)})
    options = SampleOptions(years=(2002, 2015))
    with pytest.raises(ConfigError) as err:
        build_panel(_tables(), [], national, _attributes(), options, ["a", "b"])
    msg = str(err.value)
    assert "keep no city of the 6" in msg and "2002–2015" in msg
    assert "not a city in every year" in msg and "city_attributes" in msg
    # the same period with the partial-period rule off: the cities are kept (the earlier years
    # are interpolated at the edge)
    lenient = SampleOptions(years=(2002, 2015), drop_partial_period=False, max_missing_share=0.9)
    panel, _, _ = build_panel(_tables(), [], national, _attributes(), lenient, ["a", "b"])
    assert len(panel) > 0
    # extracts without the table's cities: the hint points at the codes and raw_dir
    other = [t.assign(city_code="9" + t["city_code"].str[1:]) for t in _tables()]
    with pytest.raises(ConfigError, match="(?s)no observations.*raw_dir"):
        build_panel(other, [], national, _attributes(), SampleOptions(years=(2010, 2015)), ["a"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("edge", ["nearest", "linear_extrapolate", "none"])
def test_interpolate_rows_equals_the_series_one_by_one_to_the_bit(seed, edge):
    """Every row as :func:`interpolate_series` makes it: the same bits and methods, over random
    gaps (none, all, one observation, runs at both ends), magnitudes from 1e-3 to 1e9, equal
    neighbours, negative values, infinities, and unevenly spaced years."""
    rng = np.random.default_rng(seed)
    for years in (np.arange(2002, 2022), np.array([1990, 1995, 2000, 2001, 2002, 2010, 2011])):
        n = len(years)
        values = rng.lognormal(0, 6, size=(3000, n)) * rng.choice([-1.0, 1.0], size=(3000, n))
        values[rng.random((3000, n)) < rng.random((3000, 1))] = NAN
        values[::97] = NAN  # no observation
        values[1::89] = rng.normal(size=n)  # complete
        one = values[2::53]
        one[:] = NAN
        one[:, rng.integers(0, n)] = 5.0  # exactly one observation
        values[2::53] = one
        values[3::61, : n // 2] = 7.25  # equal neighbours
        values[4::71, rng.integers(0, n)] = np.inf
        values[5::73, rng.integers(0, n)] = -np.inf
        filled, method = interpolate_rows(years, values, edge)
        for row in range(values.shape[0]):
            ref, ref_method = interpolate_series(years, values[row], edge)
            assert filled[row].view(np.int64).tolist() == ref.view(np.int64).tolist(), row
            assert method[row].tolist() == ref_method.tolist(), row
    with pytest.raises(ValueError, match="edge must be one of"):
        interpolate_rows(years, values, "cubic")
    filled, method = interpolate_rows(years, np.empty((0, len(years))), edge)
    assert filled.shape == method.shape == (0, len(years))
