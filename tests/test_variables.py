"""Hand-worked tests of every formula of docs/indices.md (src/nqp_resilience/variables.py and
analysis.derived_variables).

The fixture is a tiny 2-city × 3-year panel in canonical units (money in CNY, FDI in USD, people
in persons, growth rates and shares as fractions). Every expected number is written literally;
the comment next to it shows the hand calculation. Tolerance: rtol=1e-12, or atol=1e-12 where a
logarithm is involved (the literals then carry ~16 significant digits of the hand-evaluated log).

City A = 110000 (a municipality, not resource-based), city B = 130200 (resource-based).

Sector design (value added Y_k in CNY, employment L_k in persons; shares y_k = Y_k/Y, l_k = L_k/L):

    row    Y       Y_1,Y_2,Y_3          L_1,L_2,L_3           y_k             l_k
    A2010  1.0e11  2e10, 4e10, 4e10     200k, 200k, 100k      .2, .4, .4      .4, .4, .2
    A2011  1.2e11  3e10, 6e10, 3e10     150k, 150k, 75k       .25, .5, .25    .4, .4, .2
    A2012  1.6e11  4e10, 4e10, 8e10     100k, 50k, 100k       .25, .25, .5    .4, .2, .4
    B2010  2.0e10  5e9, 1e10, 5e9       50k, 25k, 25k         .25, .5, .25    .5, .25, .25
    B2011  3.2e10  8e9, 8e9, 1.6e10     40k, 40k, 20k         .25, .25, .5    .4, .4, .2
    B2012  4.0e10  1.6e10, 1.6e10, 8e9  40k, 20k, 20k         .4, .4, .2      .5, .25, .25

Labour productivity Y_k/L_k (CNY per worker) then takes, per sector, only the values m, 2m, 4m
(primary m = 100k, secondary and tertiary m = 200k), so its pooled min–max of logs is exactly
0, 0.5 or 1:

    row    Y_1/L_1  Y_2/L_2  Y_3/L_3   LPn_1, LPn_2, LPn_3
    A2010  100k     200k     400k      0,   0,   0.5
    A2011  200k     400k     400k      0.5, 0.5, 0.5
    A2012  400k     800k     800k      1,   1,   1
    B2010  100k     400k     200k      0,   0.5, 0
    B2011  200k     200k     800k      0.5, 0,   1
    B2012  400k     800k     400k      1,   1,   0.5
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.errors import ConfigError, DataError
from nqp_resilience.indices import analysis
from nqp_resilience.indices import variables as V

RTOL = 1e-12
ATOL_LOG = 1e-12  # absolute tolerance for results that involve a natural log

A, B = "110000", "130200"

NAN = np.nan


def close(actual, expected, *, atol=0.0):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=0.0 if atol else RTOL,
        atol=atol,
    )


def make_panel() -> pd.DataFrame:
    """The 2-city × 3-year panel (sorted by city and year)."""
    rows = [
        # city, year, gdp, g, g_N, Y1, Y2, Y3, L1, L2, L3, P, U, urban_emp, fiscal, FAI, wholesale,
        # science, education, loans, fdi (USD), CNY/USD, college, national college share,
        # inventions, relief (m), telephones 1984 (per 10k)
        (
            A,
            2010,
            1.0e11,
            0.12,
            0.10,
            2e10,
            4e10,
            4e10,
            200_000,
            200_000,
            100_000,
            2_000_000,
            4000,
            96_000,
            1.5e10,
            6.0e10,
            3.0e10,
            7.5e8,
            2.25e9,
            1.0e11,
            5.0e8,
            6.8,
            300_000,
            0.10,
            1000,
            250.0,
            50.0,
        ),
        (
            A,
            2011,
            1.2e11,
            0.11,
            0.08,
            3e10,
            6e10,
            3e10,
            150_000,
            150_000,
            75_000,
            2_000_000,
            3000,
            97_000,
            2.4e10,
            8.4e10,
            4.8e10,
            1.2e9,
            2.4e9,
            9.6e10,
            7.5e8,
            6.4,
            300_000,
            0.125,
            1500,
            250.0,
            50.0,
        ),
        (
            A,
            2012,
            1.6e11,
            0.06,
            0.05,
            4e10,
            4e10,
            8e10,
            100_000,
            50_000,
            100_000,
            2_000_000,
            5000,
            95_000,
            2.4e10,
            1.28e11,
            3.2e10,
            1.92e9,
            4.48e9,
            1.92e11,
            1.28e9,
            6.25,
            400_000,
            0.16,
            3000,
            250.0,
            50.0,
        ),
        (
            B,
            2010,
            2.0e10,
            0.08,
            0.10,
            5e9,
            1e10,
            5e9,
            50_000,
            25_000,
            25_000,
            500_000,
            2000,
            48_000,
            4.0e9,
            1.0e10,
            2.0e9,
            4.0e8,
            2.0e8,
            1.0e10,
            1.0e8,
            6.8,
            25_000,
            0.10,
            50,
            1000.0,
            20.0,
        ),
        (
            B,
            2011,
            3.2e10,
            0.12,
            0.08,
            8e9,
            8e9,
            1.6e10,
            40_000,
            40_000,
            20_000,
            500_000,
            1000,
            49_000,
            4.8e9,
            1.92e10,
            6.4e9,
            4.8e8,
            1.12e9,
            2.24e10,
            2.5e8,
            6.4,
            50_000,
            0.125,
            100,
            1000.0,
            20.0,
        ),
        (
            B,
            2012,
            4.0e10,
            0.04,
            0.05,
            1.6e10,
            1.6e10,
            8e9,
            40_000,
            20_000,
            20_000,
            500_000,
            3000,
            47_000,
            1.0e10,
            3.6e10,
            1.2e10,
            1.0e9,
            2.0e9,
            6.0e10,
            3.2e8,
            6.25,
            60_000,
            0.16,
            250,
            1000.0,
            20.0,
        ),
    ]
    cols = [
        "city_code",
        "year",
        "gdp",
        "gdp_growth",
        "national_gdp_growth",
        "gdp_primary",
        "gdp_secondary",
        "gdp_tertiary",
        "employment_primary",
        "employment_secondary",
        "employment_tertiary",
        "population",
        "registered_unemployed",
        "urban_employment",
        "fiscal_expenditure",
        "fixed_asset_investment",
        "wholesale_retail_sales",
        "science_expenditure",
        "education_expenditure",
        "loans",
        "fdi",
        "cny_per_usd",
        "college_educated",
        "national_college_share",
        "invention_applications",
        "relief",
        "telephones_1984",
    ]
    return pd.DataFrame(rows, columns=cols)


def make_national(years=(2009, 2010, 2011, 2012)) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "year": [2008, 2009, 2010, 2011, 2012],
            "national_gdp_growth": [0.09, 0.08, 0.10, 0.08, 0.05],
            "national_internet_users": [2.5e8, 3.0e8, 4.5e8, 5.0e8, 5.5e8],  # persons
        }
    )
    return table[table["year"].isin(years)].reset_index(drop=True)


def no_audit() -> pd.DataFrame:
    """An imputation audit without rows (no cell of the panel was interpolated)."""
    return pd.DataFrame(
        {
            "city_code": pd.Series([], dtype=str),
            "year": pd.Series([], dtype="int64"),
            "variable": pd.Series([], dtype=str),
            "method": pd.Series([], dtype=str),
            "value": pd.Series([], dtype=float),
        }
    )


def make_attributes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city_code": [A, B],
            "is_resource_based": [0, 1],
            "adm_high": [1, 0],
            "is_municipality": [1, 0],
        }
    )


@pytest.fixture
def panel():
    return make_panel()


@pytest.fixture
def panel_lag(panel):
    """The panel with the lag column analysis.derived_variables adds (g_N,t−1; 2009 = 0.08)."""
    return panel.assign(national_gdp_growth_lag=[0.08, 0.10, 0.08, 0.08, 0.10, 0.08])


# --------------------------------------------------------------------------- Resil


def test_resilience_relative(panel):
    out = V.resilience(panel["gdp_growth"], panel["national_gdp_growth"], "relative")
    close(
        out,
        [
            0.2,  # A2010 (0.12 − 0.10) / 0.10 = 0.2
            0.375,  # A2011 (0.11 − 0.08) / 0.08 = 0.375
            0.2,  # A2012 (0.06 − 0.05) / 0.05 = 0.2
            -0.2,  # B2010 (0.08 − 0.10) / 0.10 = −0.2
            0.5,  # B2011 (0.12 − 0.08) / 0.08 = 0.5
            -0.2,  # B2012 (0.04 − 0.05) / 0.05 = −0.2
        ],
    )


def test_resilience_relative_is_default_and_uses_absolute_national_growth():
    # g = 0.01, g_N = −0.02 (a national recession):
    #   (0.01 − (−0.02)) / |−0.02| = 0.03 / 0.02 = 1.5
    #   (positive: the city did better than the nation)
    close(V.resilience([0.01], [-0.02]), [1.5])


def test_resilience_difference(panel):
    out = V.resilience(panel["gdp_growth"], panel["national_gdp_growth"], "difference")
    # g − g_N: 0.12−0.10, 0.11−0.08, 0.06−0.05, 0.08−0.10, 0.12−0.08, 0.04−0.05
    close(out, [0.02, 0.03, 0.01, -0.02, 0.04, -0.01])


def test_resilience_ratio(panel):
    out = V.resilience(panel["gdp_growth"], panel["national_gdp_growth"], "ratio")
    # g / g_N: 0.12/0.10, 0.11/0.08, 0.06/0.05, 0.08/0.10, 0.12/0.08, 0.04/0.05
    close(out, [1.2, 1.375, 1.2, 0.8, 1.5, 0.8])


# --------------------------------------------------------------------------- Mrd


def test_recovery_speed_national_rebound(panel_lag):
    out = V.recovery_speed(panel_lag, "national_rebound")
    close(
        out,
        [
            NAN,  # A2010: no city lag
            0.01,  # A2011 (0.11 − 0.12) − (0.08 − 0.10) = −0.01 + 0.02 = 0.01
            -0.02,  # A2012 (0.06 − 0.11) − (0.05 − 0.08) = −0.05 + 0.03 = −0.02
            NAN,  # B2010: no city lag
            0.06,  # B2011 (0.12 − 0.08) − (0.08 − 0.10) = 0.04 + 0.02 = 0.06
            -0.05,  # B2012 (0.04 − 0.12) − (0.05 − 0.08) = −0.08 + 0.03 = −0.05
        ],
    )


def test_recovery_speed_default_is_employment_recovery(panel_lag):
    """(E_it/E_i,t−1 − 1) − (E_Nt/E_N,t−1 − 1); E_N = 8.0e8, 8.08e8, 8.08e8 in 2010–2012.

    A 2011: 97,000/96,000 − 1 = 1/96, national 8.08/8.00 − 1 = 0.01 -> 1/96 − 0.01 = 1/2400
    A 2012: 95,000/97,000 − 1 = −2/97, national 0                    -> −2/97
    B 2011: 49,000/48,000 − 1 = 1/48 − 0.01                          -> 13/1200
    B 2012: 47,000/49,000 − 1 = −2/49                                 -> −2/49
    """
    panel = panel_lag.assign(
        national_employment=[8.0e8, 8.08e8, 8.08e8] * 2,
        national_employment_lag=[7.9e8, 8.0e8, 8.08e8] * 2,
    )
    close(V.recovery_speed(panel), [NAN, 1 / 2400, -2 / 97, NAN, 13 / 1200, -2 / 49])


def test_recovery_speed_own_rebound(panel_lag):
    out = V.recovery_speed(panel_lag, "own_rebound")
    # g_it − g_i,t−1: A 0.11−0.12, 0.06−0.11; B 0.12−0.08, 0.04−0.12
    close(out, [NAN, -0.01, -0.05, NAN, 0.04, -0.08])


def test_recovery_speed_nan_after_a_gap_year(panel_lag):
    # drop A2011: A2012's previous panel year is 2010, two years back, so it has no lag
    gap = panel_lag[~((panel_lag["city_code"] == A) & (panel_lag["year"] == 2011))].reset_index(
        drop=True
    )
    close(V.recovery_speed(gap, "own_rebound"), [NAN, NAN, NAN, 0.04, -0.08])


def test_recovery_speed_via_derived_variables(panel):
    # derived_variables adds national_gdp_growth_lag itself from the national table (2009: 0.08)
    out = analysis.derived_variables(
        panel, make_national(), make_attributes(), no_audit(), options()
    )
    close(out["Mrd"], [NAN, 0.01, -0.02, NAN, 0.06, -0.05])
    own = analysis.derived_variables(
        panel, make_national(), make_attributes(), no_audit(), options(mrd="own_rebound")
    )
    close(own["Mrd"], [NAN, -0.01, -0.05, NAN, 0.04, -0.08])


# --------------------------------------------------------------------------- Une


def test_unemployment(panel):
    # U / (U + urban employment)
    close(
        V.unemployment(panel),
        [
            0.04,  # 4000 / (4000 + 96000) = 4000 / 100000
            0.03,  # 3000 / 100000
            0.05,  # 5000 / 100000
            0.04,  # 2000 / (2000 + 48000) = 2000 / 50000
            0.02,  # 1000 / 50000
            0.06,  # 3000 / 50000
        ],
    )


# --------------------------------------------------------------------------- controls


def test_controls(panel):
    c = V.controls(panel)
    assert list(c.columns) == ["GDP", "GOV", "IND", "INV", "TRADE", "TEC", "FIN", "OPE"]
    assert list(c.columns) == list(V.CONTROLS)
    assert c.index.equals(panel.index)
    # GDP = ln(Y / P): A 1e11/2e6 = 50000, 1.2e11/2e6 = 60000, 1.6e11/2e6 = 80000;
    #                  B 2e10/5e5 = 40000, 3.2e10/5e5 = 64000, 4e10/5e5 = 80000
    close(
        c["GDP"],
        [
            10.819778284410283,  # ln 50000
            11.002099841204238,  # ln 60000
            11.289781913656018,  # ln 80000
            10.596634733096073,  # ln 40000
            11.06663836234181,  # ln 64000
            11.289781913656018,
        ],  # ln 80000
        atol=ATOL_LOG,
    )
    # GOV = fiscal / Y: 1.5e10/1e11, 2.4e10/1.2e11, 2.4e10/1.6e11, 4e9/2e10, 4.8e9/3.2e10, 1e10/4e10
    close(c["GOV"], [0.15, 0.2, 0.15, 0.2, 0.15, 0.25])
    # IND = 1·y1 + 2·y2 + 3·y3:
    #   A2010 .2 + .8 + 1.2 = 2.2;  A2011 .25 + 1.0 + .75 = 2.0;  A2012 .25 + .5 + 1.5 = 2.25
    #   B2010 .25 + 1.0 + .75 = 2.0; B2011 .25 + .5 + 1.5 = 2.25; B2012 .4 + .8 + .6 = 1.8
    close(c["IND"], [2.2, 2.0, 2.25, 2.0, 2.25, 1.8])
    # INV = FAI / Y:
    #   6e10/1e11, 8.4e10/1.2e11, 1.28e11/1.6e11, 1e10/2e10, 1.92e10/3.2e10, 3.6e10/4e10
    close(c["INV"], [0.6, 0.7, 0.8, 0.5, 0.6, 0.9])
    # TRADE = wholesale & retail / Y:
    #   3e10/1e11, 4.8e10/1.2e11, 3.2e10/1.6e11, 2e9/2e10, 6.4e9/3.2e10, 1.2e10/4e10
    close(c["TRADE"], [0.3, 0.4, 0.2, 0.1, 0.2, 0.3])
    # TEC = (science + education) / Y:
    #   (7.5e8 + 2.25e9)/1e11 = 3e9/1e11; (1.2e9 + 2.4e9)/1.2e11 = 3.6e9/1.2e11;
    #     (1.92e9 + 4.48e9)/1.6e11 = 6.4e9/1.6e11
    #   (4e8 + 2e8)/2e10 = 6e8/2e10; (4.8e8 + 1.12e9)/3.2e10 = 1.6e9/3.2e10;
    #     (1e9 + 2e9)/4e10 = 3e9/4e10
    close(c["TEC"], [0.03, 0.03, 0.04, 0.03, 0.05, 0.075])
    # FIN = loans / Y:
    #   1e11/1e11, 9.6e10/1.2e11, 1.92e11/1.6e11, 1e10/2e10, 2.24e10/3.2e10, 6e10/4e10
    close(c["FIN"], [1.0, 0.8, 1.2, 0.5, 0.7, 1.5])
    # OPE = FDI (USD) × CNY/USD / Y:
    #   5e8 × 6.8 = 3.4e9 / 1e11;  7.5e8 × 6.4 = 4.8e9 / 1.2e11;  1.28e9 × 6.25 = 8e9 / 1.6e11
    #   1e8 × 6.8 = 6.8e8 / 2e10;  2.5e8 × 6.4 = 1.6e9 / 3.2e10;  3.2e8 × 6.25 = 2e9 / 4e10
    close(c["OPE"], [0.034, 0.04, 0.05, 0.034, 0.05, 0.05])


# --------------------------------------------------------------------------- mechanisms

# Hamming closeness H = 1 − ½ Σ_k |y_k − l_k| (shares from the module docstring table):
#   A2010 ½(.2 + 0 + .2)   = .2  → 0.8     A2011 ½(.15 + .1 + .05) = .15 → 0.85
#   A2012 ½(.15 + .05 + .1) = .15 → 0.85   B2010 ½(.25 + .25 + 0)  = .25 → 0.75
#   B2011 ½(.15 + .15 + .3) = .3  → 0.7    B2012 ½(.1 + .15 + .05) = .15 → 0.85
HAMMING = [0.8, 0.85, 0.85, 0.75, 0.7, 0.85]

# Theil T = Σ_k y_k ln((Y_k/L_k)/(Y/L)) = Σ_k y_k ln(y_k / l_k):
#   A2010 .2 ln .5 + .4 ln 1 + .4 ln 2           = 0.2 ln 2            = 0.13862943611198905
#   A2011 .25 ln .625 + .5 ln 1.25 + .25 ln 1.25 = ln 1.25 − 0.25 ln 2 = 0.04985675617422343
#   A2012 .25 ln .625 + .25 ln 1.25 + .5 ln 1.25 = ln 1.25 − 0.25 ln 2 = 0.04985675617422343
#   B2010 .25 ln .5 + .5 ln 2 + .25 ln 1         = 0.25 ln 2           = 0.17328679513998632
#   B2011 .25 ln .625 + .25 ln .625 + .5 ln 2.5  = ln 1.25             = 0.22314355131420976
#   B2012 .4 ln .8 + .4 ln 1.6 + .2 ln .8        = 0.4 ln 2 − ln 1.25  = 0.05411532090976840
THEIL = [
    0.13862943611198905,
    0.04985675617422343,
    0.04985675617422343,
    0.17328679513998632,
    0.22314355131420976,
    0.05411532090976840,
]


def test_hamming_fit(panel):
    close(V.hamming_fit(panel), HAMMING)


def test_theil_deviation(panel):
    close(V.theil_deviation(panel), THEIL, atol=ATOL_LOG)


def test_theil_deviation_zero_output_sector_contributes_zero():
    # Y = (0, 5e9, 5e9), L = (20k, 40k, 40k): y = (0, .5, .5), l = (.2, .4, .4)
    # T = 0 (0·ln 0 := 0) + .5 ln 1.25 + .5 ln 1.25 = ln 1.25 = 0.22314355131420976
    one = pd.DataFrame(
        {
            "gdp_primary": [0.0],
            "gdp_secondary": [5e9],
            "gdp_tertiary": [5e9],
            "employment_primary": [20_000],
            "employment_secondary": [40_000],
            "employment_tertiary": [40_000],
        }
    )
    close(V.theil_deviation(one), [0.22314355131420976], atol=ATOL_LOG)


def test_theil_is_zero_when_output_matches_labour():
    # y = l = (.2, .3, .5) → every ln(y_k/l_k) = 0; Hamming = 1
    one = pd.DataFrame(
        {
            "gdp_primary": [2e9],
            "gdp_secondary": [3e9],
            "gdp_tertiary": [5e9],
            "employment_primary": [20],
            "employment_secondary": [30],
            "employment_tertiary": [50],
        }
    )
    close(V.theil_deviation(one), [0.0], atol=ATOL_LOG)
    close(V.hamming_fit(one), [1.0])


def test_rationalization_hamming(panel):
    close(V.rationalization(panel, "hamming"), HAMMING)


def test_rationalization_theil(panel):
    # −T
    close(
        V.rationalization(panel, "theil"),
        [
            -0.13862943611198905,
            -0.04985675617422343,
            -0.04985675617422343,
            -0.17328679513998632,
            -0.22314355131420976,
            -0.05411532090976840,
        ],
        atol=ATOL_LOG,
    )


def test_rationalization_combined(panel):
    # minmax(H): min .7 (B2011), max .85 → (H − .7)/.15 = 2/3, 1, 1, 1/3, 0, 1
    # minmax(−T): min −T = −ln 1.25 (B2011),
    #   max −T = −(ln 1.25 − .25 ln 2) (A2011/A2012), range .25 ln 2,
    #   so (ln 1.25 − T)/(.25 ln 2) = 4λ − 4T/ln 2 with λ = log2(1.25) = 0.32192809488736235:
    #   A2010 4λ − 0.8 = 0.48771237954944935; A2011, A2012 1; B2010 4λ − 1 = 0.28771237954944940;
    #   B2011 0; B2012 (2 ln 1.25 − .4 ln 2)/(.25 ln 2) = 8λ − 1.6 = 0.97542475909889870
    # combined = ½ (minmax H + minmax(−T)):
    close(
        V.rationalization(panel, "combined"),
        [
            0.5771895231080580,  # A2010 ½(2/3 + 0.48771237954944935)
            1.0,  # A2011 ½(1 + 1)
            1.0,  # A2012 ½(1 + 1)
            0.3105228564413913,  # B2010 ½(1/3 + 0.2877123795494494)
            0.0,  # B2011 ½(0 + 0)
            0.9877123795494494,  # B2012 ½(1 + 0.9754247590988987)
        ],
        atol=ATOL_LOG,
    )
    close(V.rationalization(panel), V.rationalization(panel, "combined"), atol=1e-15)


def test_minmax_pooled_and_constant():
    close(V.minmax([2.0, 4.0, 3.0, 6.0]), [0.0, 0.5, 0.25, 1.0])  # (x − 2)/(6 − 2)
    close(V.minmax([5.0, 5.0]), [0.0, 0.0])


def test_advancement(panel):
    # Adv = Σ_k y_k · LPn_k (LPn from the module docstring table):
    close(
        V.advancement(panel),
        [
            0.2,  # A2010 .2·0 + .4·0 + .4·.5
            0.5,  # A2011 (.25 + .5 + .25)·.5
            1.0,  # A2012 (.25 + .25 + .5)·1
            0.25,  # B2010 .25·0 + .5·.5 + .25·0
            0.625,  # B2011 .25·.5 + .25·0 + .5·1
            0.9,  # B2012 .4·1 + .4·1 + .2·.5
        ],
        atol=ATOL_LOG,
    )


def test_talent(panel):
    # (college / P) / national college share
    close(
        V.talent(panel),
        [
            1.5,  # A2010 (3e5/2e6 = .15) / .10
            1.2,  # A2011 .15 / .125
            1.25,  # A2012 (4e5/2e6 = .2) / .16
            0.5,  # B2010 (2.5e4/5e5 = .05) / .10
            0.8,  # B2011 (5e4/5e5 = .1) / .125
            0.75,  # B2012 (6e4/5e5 = .12) / .16
        ],
    )


def test_innovation(panel):
    # invention applications / P × 10,000
    close(
        V.innovation(panel),
        [
            5.0,  # 1000 / 2e6 × 1e4
            7.5,  # 1500 / 2e6 × 1e4
            15.0,  # 3000 / 2e6 × 1e4
            1.0,  # 50 / 5e5 × 1e4
            2.0,  # 100 / 5e5 × 1e4
            5.0,  # 250 / 5e5 × 1e4
        ],
    )


# --------------------------------------------------------------------------- instruments


def test_relief_trend(panel):
    # relief in km (A 250 m = .25 km, B 1000 m = 1 km) × (year − 2010);
    #   default first year = panel minimum
    expected = [0.0, 0.25, 0.5, 0.0, 1.0, 2.0]
    close(V.relief_instrument(panel, "trend"), expected)
    close(V.relief_instrument(panel), expected)
    close(V.relief_instrument(panel, "trend", first_year=2010), expected)
    # first year 2009: A .25 × (1, 2, 3), B 1 × (1, 2, 3)
    close(V.relief_instrument(panel, "trend", first_year=2009), [0.25, 0.5, 0.75, 1.0, 2.0, 3.0])


def test_relief_national_series(panel):
    # relief_km × national college share (.10, .125, .16): A .25 × …, B 1 × …
    close(
        V.relief_instrument(panel, "national:national_college_share"),
        [0.025, 0.03125, 0.04, 0.1, 0.125, 0.16],
    )
    # relief_km × national GDP growth (.10, .08, .05)
    close(
        V.relief_instrument(panel, "national:national_gdp_growth"),
        [0.025, 0.02, 0.0125, 0.1, 0.08, 0.05],
    )


def test_relief_none(panel):
    # relief alone, in km: time-invariant
    close(V.relief_instrument(panel, "none"), [0.25, 0.25, 0.25, 1.0, 1.0, 1.0])


def test_internet_lag1(panel):
    # telephones per 10k / 100 × national internet users (persons) in t−1 / 1e8
    # A: 50/100 = .5 × (2009 3.0, 2010 4.5, 2011 5.0 hundred million); B: 20/100 = .2 × the same
    expected = [1.5, 2.25, 2.5, 0.6, 0.9, 1.0]
    close(V.internet_instrument(panel, make_national(), lag=1), expected)
    close(V.internet_instrument(panel, make_national()), expected)


def test_internet_lag2(panel):
    # t−2: 2008 2.5, 2009 3.0, 2010 4.5 hundred million → A .5 × …, B .2 × …
    close(
        V.internet_instrument(panel, make_national(range(2008, 2013)), lag=2),
        [1.25, 1.5, 2.25, 0.5, 0.6, 0.9],
    )


def test_internet_missing_previous_national_year(panel):
    with pytest.raises(DataError) as info:
        V.internet_instrument(panel, make_national((2010, 2011, 2012)), lag=1)
    err = info.value
    assert err.file == "ceic/national.csv"
    assert err.column == "national_internet_users"
    assert "2009" in err.problem
    assert "2010" not in err.problem and "2011" not in err.problem
    assert "t−1" in err.hint


# --------------------------------------------------------------------------- heterogeneity


def test_heterogeneity_two_cities(panel):
    # science share of the budget:
    #   A 7.5e8/1.5e10 = .05, 1.2e9/2.4e10 = .05, 1.92e9/2.4e10 = .08 → mean .06
    #   B 4e8/4e9 = .1, 4.8e8/4.8e9 = .1, 1e9/1e10 = .1            → mean .10
    # threshold: mean of city means (.06 + .10)/2 = .08 = median of the two → A 0, B 1
    for threshold in ("mean", "median"):
        h = V.heterogeneity(panel, make_attributes(), threshold)
        assert list(h.columns) == ["Asset", "GOVP", "ADM", "municipality"]
        assert h.index.equals(panel.index)
        assert (h.dtypes == "int64").all()
        assert h["Asset"].tolist() == [1, 1, 1, 0, 0, 0]  # 1 − is_resource_based (A 0, B 1)
        assert h["GOVP"].tolist() == [0, 0, 0, 1, 1, 1]
        assert h["ADM"].tolist() == [1, 1, 1, 0, 0, 0]  # adm_high
        assert h["municipality"].tolist() == [1, 1, 1, 0, 0, 0]  # is_municipality


def test_heterogeneity_govp_mean_vs_median():
    # four cities × 2 years; science share per year and city mean:
    #   C1 .005, .015 → .01;  C2 .02, .02 → .02;  C3 .03, .03 → .03;  C4 .08, .12 → .10
    # mean threshold (.01 + .02 + .03 + .10)/4 = .04 → only C4 above
    # median threshold (.02 + .03)/2 = .025       → C3 and C4 above
    codes = ["100001", "100002", "100003", "100004"]
    sci = [5.0, 15.0, 20.0, 20.0, 30.0, 30.0, 80.0, 120.0]
    p = pd.DataFrame(
        {
            "city_code": np.repeat(codes, 2),
            "year": [2010, 2011] * 4,
            "science_expenditure": sci,
            "fiscal_expenditure": [1000.0] * 8,
        }
    )
    attrs = pd.DataFrame(
        {
            "city_code": codes,
            "is_resource_based": [1, 0, 1, 0],
            "adm_high": [0, 0, 1, 1],
            "is_municipality": [0, 0, 0, 1],
        }
    )
    assert V.heterogeneity(p, attrs, "mean")["GOVP"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert V.heterogeneity(p, attrs)["GOVP"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    med = V.heterogeneity(p, attrs, "median")
    assert med["GOVP"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert med["Asset"].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert med["ADM"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert med["municipality"].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]


# --------------------------------------------------------------------------- configuration errors


def test_check_instrument_config_none_with_city_fe():
    with pytest.raises(ConfigError) as info:
        V.check_instrument_config("none", ["city", "year"])
    err = info.value
    assert err.key == "iv.relief.interact"
    assert "time-invariant" in err.problem
    assert "absorbed" in err.problem and "city" in err.problem
    assert "'trend'" in err.hint and "national:" in err.hint
    assert "iv.relief.interact" in str(err)


@pytest.mark.parametrize(
    "interact, fe",
    [
        ("none", ["year"]),
        ("trend", ["city", "year"]),
        ("national:national_internet_users", ["city", "year"]),
        ("none", []),
    ],
)
def test_check_instrument_config_allowed(interact, fe):
    V.check_instrument_config(interact, fe)


def test_assert_time_varying(panel):
    with pytest.raises(ConfigError) as info:
        V.assert_time_varying(panel, "relief")
    assert info.value.key == "relief"
    assert "does not vary over time" in info.value.problem
    assert "fixed effects" in str(info.value)
    V.assert_time_varying(panel, "gdp")
    V.assert_time_varying(panel.assign(Relief=V.relief_instrument(panel, "trend")), "Relief")


@pytest.mark.parametrize(
    "call, key",
    [
        (lambda p: V.resilience(p["gdp_growth"], p["national_gdp_growth"], "log"), "resil.formula"),
        (
            lambda p: V.recovery_speed(p.assign(national_gdp_growth_lag=0.08), "bounce"),
            "mrd.formula",
        ),
        (lambda p: V.rationalization(p, "entropy"), "mechanisms.rationalization"),
        (lambda p: V.relief_instrument(p, "quadratic"), "iv.relief.interact"),
        (lambda p: V.relief_instrument(p, "national:national_bogus"), "iv.relief.interact"),
        (lambda p: V.relief_instrument(p, "national:gdp"), "iv.relief.interact"),
        (lambda p: V.heterogeneity(p, make_attributes(), "mode"), "heterogeneity.govp_threshold"),
    ],
)
def test_invalid_options_raise_config_error(panel, call, key):
    with pytest.raises(ConfigError) as info:
        call(panel)
    assert info.value.key == key
    assert f"'{key}'" in str(info.value)


def test_unknown_national_series_hint_lists_available(panel):
    with pytest.raises(ConfigError) as info:
        V.relief_instrument(panel, "national:national_bogus")
    assert "national_bogus" in info.value.problem
    assert "national:national_gdp_growth" in info.value.hint
    assert "national:national_college_share" in info.value.hint


# --------------------------------------------------------------------------- derived_variables


def options(mrd="national_rebound"):
    return {
        "years": {"start": 2010, "end": 2012},
        "resil": {"formula": "relative"},
        "mrd": {"formula": mrd},
        "mechanisms": {"rationalization": "combined"},
        "iv": {
            "relief": {"interact": "trend"},
            "internet": {"lag": 1},
            "fixed_effects": ["city", "year"],
        },
        "heterogeneity": {"govp_threshold": "mean"},
    }


def test_derived_variables(panel):
    shuffled = panel.iloc[[4, 0, 5, 2, 3, 1]].reset_index(
        drop=True
    )  # derived_variables sorts itself
    out = analysis.derived_variables(
        shuffled, make_national(), make_attributes(), no_audit(), options()
    )
    assert list(out.columns) == [
        "city_code",
        "year",
        "Resil",
        "Une",
        "Mrd",
        "GDP",
        "GOV",
        "IND",
        "INV",
        "TRADE",
        "TEC",
        "FIN",
        "OPE",
        "Rat",
        "Adv",
        "Talent",
        "INN",
        "Relief",
        "Internet",
        "Asset",
        "GOVP",
        "ADM",
        "municipality",
        "imputed_Resil",
        "imputed_Une",
        "imputed_Mrd",
        "imputed_Rat",
        "imputed_Adv",
        "imputed_Talent",
        "imputed_INN",
    ]
    assert out["city_code"].tolist() == [A, A, A, B, B, B]
    assert out["year"].tolist() == [2010, 2011, 2012] * 2
    close(out["Resil"], [0.2, 0.375, 0.2, -0.2, 0.5, -0.2])  # see test_resilience_relative
    # Mrd is NaN in each city's first year (2010), even though national 2009 growth is known
    assert out.loc[out["year"] == 2010, "Mrd"].isna().all()
    assert out["Mrd"].isna().sum() == 2
    close(out["Mrd"], [NAN, 0.01, -0.02, NAN, 0.06, -0.05])
    close(out["Une"], [0.04, 0.03, 0.05, 0.04, 0.02, 0.06])
    close(out["GOV"], [0.15, 0.2, 0.15, 0.2, 0.15, 0.25])
    close(out["IND"], [2.2, 2.0, 2.25, 2.0, 2.25, 1.8])
    close(out["OPE"], [0.034, 0.04, 0.05, 0.034, 0.05, 0.05])
    close(
        out["Rat"],
        [0.5771895231080580, 1.0, 1.0, 0.3105228564413913, 0.0, 0.9877123795494494],
        atol=ATOL_LOG,
    )
    close(out["Adv"], [0.2, 0.5, 1.0, 0.25, 0.625, 0.9], atol=ATOL_LOG)
    close(out["Talent"], [1.5, 1.2, 1.25, 0.5, 0.8, 0.75])
    close(out["INN"], [5.0, 7.5, 15.0, 1.0, 2.0, 5.0])
    # Relief: relief_km × (year − years.start = 2010)
    close(out["Relief"], [0.0, 0.25, 0.5, 0.0, 1.0, 2.0])
    # Internet: telephones/100 × users(t−1)/1e8
    close(out["Internet"], [1.5, 2.25, 2.5, 0.6, 0.9, 1.0])
    assert out["Asset"].tolist() == [1, 1, 1, 0, 0, 0]
    assert out["GOVP"].tolist() == [0, 0, 0, 1, 1, 1]
    assert out["ADM"].tolist() == [1, 1, 1, 0, 0, 0]
    assert out["municipality"].tolist() == [1, 1, 1, 0, 0, 0]
    # no cell was interpolated (tests/test_imputed_dependent.py covers the flags)
    assert all(out[f"imputed_{v}"].tolist() == [0] * 6 for v in ("Resil", "Mrd", "INN"))


def test_derived_variables_relief_uses_configured_start_year(panel):
    opts = options()
    opts["years"]["start"] = 2009
    out = analysis.derived_variables(panel, make_national(), make_attributes(), no_audit(), opts)
    # relief_km × (year − 2009)
    close(out["Relief"], [0.25, 0.5, 0.75, 1.0, 2.0, 3.0])
