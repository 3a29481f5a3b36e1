"""The replication check (``nqp_resilience.outputs.replication``) on a hand-made pair of
published numbers and estimate records: rows, Δ/SE, the within-2-SE count, flags, formatting."""

from __future__ import annotations

import pytest

from nqp_resilience.outputs.replication import _fmt, comparison_rows, replication_report

PUBLISHED = {
    "specs": {
        # ours 0.080 (SE 0.010): Δ/SE = (0.080 - 0.077) / 0.010 = 0.3, reproduced
        "base": {
            "coef": {"value": 0.077, "se": 0.013},
            "const": {"value": 0.278, "se": 0.008},
            "nobs": 2760,
            "r2": 0.709,
            "flags": ["constant_vs_means"],
        },
        # ours 0.100 (SE 0.010): Δ/SE = (0.100 - 0.071) / 0.010 = 2.9, not reproduced, flagged
        "iv": {
            "coef": {"value": 0.071, "se": 0.025},
            "first_stage": {"value": 0.209, "se": 0.011},
            "kp_lm": 18.568,
            "kp_f": 101.337,
            "flags": ["instrument_units", "relief"],
        },
        # ours -0.150 (SE 0.020): Δ/SE = (-0.150 + 0.109) / 0.020 = -2.05, not reproduced
        "une": {"coef": {"value": -0.109, "se": 0.047}},
        # interaction D x Nqp and the Nqp main effect
        "het": {"coef": {"value": 0.040, "se": 0.020}, "nqp": {"value": 0.050}},
        # no estimate for this spec: no row
        "absent": {"coef": {"value": 1.0, "se": 1.0}},
    },
    "inconsistencies": {
        "constant_vs_means": "the constant exceeds the means.",
        "instrument_units": "first-stage units.",
    },
}

ESTIMATES = {
    "base": {
        "table": 3,
        "column": "(1)",
        "regressor": "Nqp",
        "coef": 0.080,
        "se": 0.010,
        "nobs": 2760,
        "r2": 0.7123,
        "params": {"Nqp": 0.080, "_cons": 0.2},
        "bse": {"Nqp": 0.010, "_cons": 0.02},
        "extra": {},
    },
    "iv": {
        "table": 4,
        "column": "IV Relief",
        "regressor": "Nqp",
        "coef": 0.100,
        "se": 0.010,
        "nobs": 2760,
        "r2": 0.5,
        "params": {"Nqp": 0.1},
        "bse": {"Nqp": 0.01},
        "extra": {
            "first_stage_coef": 0.0021,
            "first_stage_se": 0.0001,
            "kp_lm": 20.0,
            "kp_f": None,
        },
    },
    "une": {
        "table": 5,
        "column": "(1)",
        "regressor": "Nqp",
        "coef": -0.150,
        "se": 0.020,
        "nobs": 2760,
        "r2": 0.4,
        "params": {"Nqp": -0.15},
        "bse": {"Nqp": 0.02},
        "extra": {},
    },
    "het": {
        "table": 7,
        "column": "(1)",
        "regressor": "Asset_x_Nqp",
        "coef": 0.045,
        "se": 0.010,
        "nobs": 2760,
        "r2": 0.7,
        "params": {"Asset_x_Nqp": 0.045, "Nqp": 0.035},
        "bse": {"Asset_x_Nqp": 0.010, "Nqp": 0.010},
        "extra": {},
    },
    "unpublished": {
        "table": 5,
        "column": "(9)",
        "regressor": "Nqp",
        "coef": 0.0,
        "se": 1.0,
        "nobs": 1,
        "r2": 0.0,
        "params": {},
        "bse": {},
        "extra": {},
    },
}


def _row(rows, spec, statistic):
    (row,) = [r for r in rows if r["spec"] == spec and r["statistic"] == statistic]
    return row


def test_one_row_per_published_statistic_in_the_published_order():
    rows = comparison_rows(PUBLISHED, ESTIMATES)
    assert [(r["spec"], r["statistic"]) for r in rows] == [
        ("base", "Nqp"),
        ("base", "constant"),
        ("base", "R²"),
        ("base", "N"),
        ("iv", "Nqp"),
        ("iv", "first stage"),
        ("iv", "KP rk LM"),
        ("iv", "KP rk Wald F"),
        ("une", "Nqp"),
        ("het", "Asset_x_Nqp"),
        ("het", "Nqp (main effect)"),
    ]


def test_difference_in_our_standard_errors():
    rows = comparison_rows(PUBLISHED, ESTIMATES)
    assert _row(rows, "base", "Nqp")["z"] == pytest.approx(0.3)
    assert _row(rows, "base", "Nqp")["within_2se"] is True
    assert _row(rows, "iv", "Nqp")["z"] == pytest.approx(2.9)
    assert _row(rows, "une", "Nqp")["z"] == pytest.approx(-2.05)
    assert _row(rows, "une", "Nqp")["within_2se"] is False
    # the constant: (0.2 - 0.278) / 0.02 = -3.9
    assert _row(rows, "base", "constant")["z"] == pytest.approx(-3.9)
    # the main effect next to an interaction uses our SE of Nqp: (0.035 - 0.050) / 0.010
    main = _row(rows, "het", "Nqp (main effect)")
    assert main["z"] == pytest.approx(-1.5)
    assert main["within_2se"] is True
    assert main["published_se"] is None
    first = _row(rows, "iv", "first stage")
    assert first["z"] == pytest.approx((0.0021 - 0.209) / 0.0001)


def test_exactly_two_standard_errors_counts_as_reproduced():
    # binary-exact numbers: Δ/SE = (0.5 - 0.25) / 0.125 = 2 exactly
    published = {"specs": {"a": {"coef": {"value": 0.25, "se": 0.1}}}}
    estimates = {"a": {"table": 3, "regressor": "Nqp", "coef": 0.5, "se": 0.125}}
    (row,) = comparison_rows(published, estimates)
    assert row["z"] == 2.0 and row["within_2se"] is True
    assert row["column"] == ""  # an estimate without a column
    estimates["a"]["coef"] = 0.5 + 1e-9
    assert comparison_rows(published, estimates)[0]["within_2se"] is False


def test_statistics_without_a_standard_error_are_not_judged():
    rows = comparison_rows(PUBLISHED, ESTIMATES)
    for spec, stat, ours in [
        ("base", "R²", 0.7123),
        ("base", "N", 2760),
        ("iv", "KP rk LM", 20.0),
        ("iv", "KP rk Wald F", None),
    ]:
        row = _row(rows, spec, stat)
        assert row["ours"] == ours
        assert row["z"] is None and row["within_2se"] is None


def test_flags_are_joined_per_spec():
    rows = comparison_rows(PUBLISHED, ESTIMATES)
    assert {r["flags"] for r in rows if r["spec"] == "iv"} == {"instrument_units, relief"}
    assert {r["flags"] for r in rows if r["spec"] == "une"} == {""}


def test_report_counts_within_2se_and_flagged():
    text = replication_report(PUBLISHED, ESTIMATES)
    # judged rows: base Nqp (yes), base constant (no, flagged), iv Nqp (no, flagged),
    # iv first stage (no, flagged), une (no, not flagged), het interaction
    # ((0.045 - 0.040) / 0.010 = 0.5, yes), het main effect (yes)
    assert "Coefficients within 2 SEs: **3 of 7**" in text
    assert "inconsistencies below: 3." in text


def test_report_table_rows_and_formatting():
    lines = replication_report(PUBLISHED, ESTIMATES).splitlines()
    assert lines[0] == "# Replication check"
    assert (
        "| 3 | (1) | `base` | Nqp | 0.077 (0.013) | 0.080 (0.010) | 0.30 | yes "
        "| constant_vs_means |"
    ) in lines
    assert (
        "| 4 | IV Relief | `iv` | Nqp | 0.071 (0.025) | 0.100 (0.010) | 2.90 | no (flagged) "
        "| instrument_units, relief |"
    ) in lines
    assert (
        "| 5 | (1) | `une` | Nqp | -0.109 (0.047) | -0.150 (0.020) | -2.05 | **no** |  |" in lines
    )
    # no SE: no parentheses; an int N with thousands separators; a missing value as a dash
    assert "| 3 | (1) | `base` | N | 2,760 | 2,760 | — |  | constant_vs_means |" in lines
    assert (
        "| 4 | IV Relief | `iv` | KP rk Wald F | 101.337 | — | — |  | instrument_units, relief |"
    ) in lines
    assert (
        "| 7 | (1) | `het` | Nqp (main effect) | 0.050 | 0.035 (0.010) | -1.50 | yes |  |" in lines
    )
    assert not any("`absent`" in line or "`unpublished`" in line for line in lines)


def test_report_lists_the_inconsistencies():
    text = replication_report(PUBLISHED, ESTIMATES)
    tail = text.split("## The paper's inconsistencies (flagged, not imitated)")[1]
    assert "- **constant_vs_means**: the constant exceeds the means." in tail
    assert "- **instrument_units**: first-stage units." in tail
    assert text.endswith("\n")


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [
        (None, 3, "—"),
        (float("nan"), 3, "—"),
        (float("inf"), 3, "—"),
        (2760, 3, "2,760"),
        (0.12345, 3, "0.123"),
        (-0.0001, 3, "0.000"),
        (-0.0001, 2, "-0.00"),
        (1.5, 2, "1.50"),
    ],
)
def test_fmt(value, digits, expected):
    # a negative number that rounds to zero prints as 0.000 (three decimals), not -0.000
    assert _fmt(value, digits) == expected
