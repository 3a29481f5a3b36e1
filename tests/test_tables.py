"""Tests of outputs.tables: number formatting, table content, golden .tex, LaTeX compilation.

Tiers: (a) unit tests of the formatting functions with hand-written expectations;
(e) golden tests pinning the full text of Tables 3 and 4 rendered from the fixed estimate set
``tests/golden/estimates.json``; and a compile test that runs the real pdflatex (and, where
ctex is installed, xelatex for the Chinese labels) on every table.

The tests never read ``results/``. To regenerate the golden files after an intended change,
run ``NQP_UPDATE_GOLDEN=1 pytest tests/test_tables.py -k golden`` and review the diff.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from nqp_resilience.data.io import read_yaml
from nqp_resilience.errors import ConfigError, ProjectError
from nqp_resilience.outputs import jobs
from nqp_resilience.outputs import tables as T

from conftest import write_estimate_fixture

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden"
TEMPLATES = ROOT / "resources" / "templates"
LABELS_EN = ROOT / "resources" / "labels" / "labels_en.yaml"
LABELS_ZH = ROOT / "resources" / "labels" / "labels_zh.yaml"
INDICATORS = ROOT / "resources" / "indicators.yaml"
PUBLISHED = ROOT / "resources" / "published.yaml"
FIXTURE = json.loads((GOLDEN / "estimates.json").read_text(encoding="utf-8"))
ESTIMATES = FIXTURE["estimates"]
SPECS = FIXTURE["specs"]
PSM = ["psm_nn", "psm_radius", "psm_kernel"]


def specs_of(table):
    return [s for s in SPECS if s["table"] == table]


@pytest.fixture(scope="module")
def en():
    return T.load_labels(LABELS_EN)


@pytest.fixture(scope="module")
def zh():
    return T.load_labels(LABELS_ZH)


# ------------------------------------------------------------------------------------------
# (a) formatting on its own
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "char, escaped",
    [
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
        ("\\", r"\textbackslash{}"),
        ("<", r"\textless{}"),
        (">", r"\textgreater{}"),
        ("|", r"\textbar{}"),
    ],
)
def test_latex_escape_every_special_character(char, escaped):
    assert T.latex_escape(char) == escaped
    assert T.latex_escape(f"a{char}b") == f"a{escaped}b"


def test_latex_escape_leaves_text_and_cjk_alone_and_escapes_each_occurrence():
    assert T.latex_escape("Resil 经济韧性 (2010-2021).") == "Resil 经济韧性 (2010-2021)."
    assert T.latex_escape("rob_drop_municipalities") == r"rob\_drop\_municipalities"
    # a backslash becomes a command whose braces are not escaped again
    assert T.latex_escape("\\&{") == r"\textbackslash{}\&\{"
    assert T.latex_escape(42) == "42"


@pytest.mark.parametrize(
    "x, decimals, expected",
    [
        (0.0647485, 3, "0.065"),
        (-0.109, 3, "$-$0.109"),
        (-0.0004, 3, "0.000"),  # rounds to zero: no sign
        (-0.0000001, 3, "0.000"),
        (-0.0, 3, "0.000"),
        (-0.0006, 3, "$-$0.001"),
        (-0.04, 1, "0.0"),
        (0.0, 0, "0"),
        (1.5, 0, "2"),  # half to even, as Python's format
        (2.5, 0, "2"),
        (13.667879, 3, "13.668"),
        (-12.633, 2, "$-$12.63"),
    ],
)
def test_fmt_number_rounding_and_minus_sign(x, decimals, expected):
    assert T.fmt_number(x, decimals) == expected


@pytest.mark.parametrize(
    "x, decimals, expected",
    [
        (2760, 0, "2{,}760"),
        (999, 0, "999"),
        (1000, 0, "1{,}000"),
        (3312.0, 0, "3{,}312"),
        (1234567.891, 2, "1{,}234{,}567.89"),
        (-2760, 0, "$-$2{,}760"),
    ],
)
def test_fmt_number_thousands_separator(x, decimals, expected):
    assert T.fmt_number(x, decimals, thousands=True) == expected


def test_fmt_number_plain_text_and_missing_values():
    assert T.fmt_number(2760, 0, thousands=True, latex=False) == "2,760"
    assert T.fmt_number(-0.109, latex=False) == "\u22120.109"
    assert T.fmt_number(-0.0001, latex=False) == "0.000"
    assert T.fmt_number(None) == ""
    assert T.fmt_number(float("nan")) == ""
    assert T.fmt_number(math.inf) == r"$\infty$"
    assert T.fmt_number(-math.inf) == r"$-$$\infty$"
    assert T.fmt_number(0.5, 3, thousands=False) == "0.500"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="decimals"):
            T.fmt_number(1.0, bad)


@pytest.mark.parametrize(
    "p, expected",
    [
        (0.0, "***"),
        (0.0099, "***"),
        (0.01, "**"),
        (0.0499, "**"),
        (0.05, "*"),
        (0.0999, "*"),
        (0.1, ""),
        (0.5, ""),
        (1.0, ""),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_stars_at_default_thresholds_strictly_below(p, expected):
    assert T.stars(p, latex=False) == expected
    assert T.stars(p) == (f"$^{{{expected}}}$" if expected else "")


def test_stars_custom_thresholds_any_order():
    th = (0.001, 0.05, 0.01)
    assert T.stars(0.0009, th, latex=False) == "***"
    assert T.stars(0.001, th, latex=False) == "**"
    assert T.stars(0.01, th, latex=False) == "*"
    assert T.stars(0.05, th, latex=False) == ""
    assert T.stars(0.04, (0.05,), latex=False) == "*"
    for bad in [(0.1, 0.1), (0.0, 0.05), (1.0,), (-0.1,)]:
        with pytest.raises(ValueError, match="thresholds"):
            T.stars(0.01, bad)


def test_coefficient_and_standard_error_cells():
    assert T.fmt_coef(0.06474851, 0.00079) == "0.065$^{***}$"
    assert T.fmt_coef(-0.1, 0.03) == "$-$0.100$^{**}$"
    # a nonzero estimate never reads 0.000: decimals rise to two significant digits (at most
    # MAX_DECIMALS), then scientific notation
    assert T.fmt_coef(-0.00004, 0.5) == "$-$0.000040"
    assert T.fmt_coef(-0.00004, 0.5, significant=None) == "0.000"
    assert T.fmt_coef(0.02, 0.07, 2, (0.1,)) == "0.020$^{*}$"
    assert T.fmt_coef(0.25, 0.07, 2, (0.1,)) == "0.25$^{*}$"
    assert T.fmt_coef(None, 0.01) == ""
    assert T.fmt_se(0.019027) == "(0.019)"
    assert T.fmt_se(0.0000001) == r"($1.0\times10^{-7}$)"
    assert T.fmt_se(0.0000001, latex=False) == "(1.0e-07)"
    assert T.fmt_se(None) == ""
    assert T.fmt_se(0.25, 1, latex=False) == "(0.25)"
    assert T.fmt_se(0.25, 1, latex=False, significant=None) == "(0.2)"


@pytest.mark.parametrize(
    "values, minimum, expected",
    [
        ([0.065, 0.019], 3, 3),  # both already show two significant digits
        ([-0.09996, 0.00554], 3, 4),  # the SE needs a fourth decimal: 0.0055
        ([-5.27e-5, 3.89e-5], 3, 6),  # the old Nqp1 unit: 0.000053 (0.000039)
        ([1e-9, 2e-9], 3, 6),  # capped at MAX_DECIMALS
        ([12.3, 4.5], 3, 3),  # the minimum stays the minimum
        ([0.0, None, float("nan"), float("inf")], 2, 2),
        ([0.0123], 0, 3),
        ([0.0123], 8, 8),  # a minimum above the cap wins
    ],
)
def test_estimate_decimals(values, minimum, expected):
    assert T.estimate_decimals(values, minimum) == expected


@pytest.mark.parametrize(
    "coef, se, expected",
    [
        (0.06474851, 0.019027, ("0.065", "(0.019)")),
        (-0.09996326, 0.00553836, ("$-$0.1000", "(0.0055)")),
        (-5.2727e-05, 3.8917e-05, ("$-$0.000053", "(0.000039)")),
        (-0.5272726, 0.3891744, ("$-$0.527", "(0.389)")),  # Nqp1 in keywords per character
        (5e-5, 1e-7, ("0.000050", r"($1.0\times10^{-7}$)")),
        (3e-9, 1e-9, (r"$3.0\times10^{-9}$", r"($1.0\times10^{-9}$)")),
        (0.0, 0.0, ("0.000", "(0.000)")),
        (None, None, ("", "")),
    ],
)
def test_fmt_estimate_shares_decimals_and_never_prints_a_nonzero_estimate_as_zero(
    coef, se, expected
):
    assert T.fmt_estimate(coef, se) == expected
    for cell in T.fmt_estimate(coef, se, decimals=3):
        if coef:
            assert not re.fullmatch(r"\(?0\.0*\)?", cell)


def test_fmt_estimate_all_magnitudes_show_two_significant_digits():
    for exponent in range(-9, 3):
        for mantissa in (1.0, 1.04, 2.5, 9.9):
            x = mantissa * 10.0**exponent
            coef, se = T.fmt_estimate(x, x, latex=False)
            digits = coef.split("e")[0].lstrip("0.").replace(".", "")
            assert len(digits) >= 2, (x, coef)
            assert float(coef) == pytest.approx(x, rel=0.051), (x, coef)


def test_star_legend_follows_thresholds_and_language(en, zh):
    assert T.star_legend(T.DEFAULT_STARS, en) == (
        "$^{*}$, $^{**}$ and $^{***}$ denote significance at the 10\\%, 5\\% and 1\\% levels."
    )
    assert T.star_legend((0.01, 0.05, 0.001), en) == (
        "$^{*}$, $^{**}$ and $^{***}$ denote significance at the 5\\%, 1\\% and 0.1\\% levels."
    )
    assert (
        T.star_legend((0.05, 0.01), en)
        == "$^{*}$ and $^{**}$ denote significance at the 5\\% and 1\\% levels."
    )
    assert T.star_legend(T.DEFAULT_STARS, zh) == (
        "$^{*}$、$^{**}$与$^{***}$分别表示在 10\\%、5\\%与1\\% 水平上显著。"
    )


def test_variable_labels_build_interactions_and_escape_unknown_names(en):
    assert T.var_label(en, "Nqp") == "Nqp"
    assert T.var_label(en, "ADM_x_Nqp") == r"ADM $\times$ Nqp"
    assert T.var_label(en, "my_var%") == r"my\_var\%"


def test_label_files_parse_yes_no_as_text_and_share_their_keys(en, zh):
    # unquoted Yes/No would be YAML booleans and print as "True"
    assert (en["rows"]["included"], en["rows"]["excluded"]) == ("Yes", "No")
    assert (zh["rows"]["included"], zh["rows"]["excluded"]) == ("是", "否")
    for section in (
        "rows",
        "columns",
        "psm_methods",
        "variables",
        "definitions",
        "spec_titles",
        "tables",
        "notes",
        "statistics",
        "flags",
        "table1_header",
        "table2_header",
        "balance_header",
        "replication_header",
        "table8_header",
        "bootstrap",
        "bootstrap_methods",
        "bootstrap_method_notes",
        "bootstrap_p_types",
        "bootstrap_p_notes",
        "bootstrap_weights",
        "bootstrap_clusters",
    ):
        assert set(en[section]) == set(zh[section]), section


def test_missing_label_is_a_user_error_naming_file_and_key(en):
    broken = {k: v for k, v in en.items() if k != "rows"}
    with pytest.raises(ConfigError, match=r"labels_en\.yaml, key 'rows\.constant': label missing"):
        T.render_estimates_table(3, specs_of(3), ESTIMATES, broken, TEMPLATES)


def test_importing_the_module_imports_neither_jinja2_nor_pandas():
    code = (
        "import sys, nqp_resilience.outputs.tables; "
        "print(sorted(m for m in ('jinja2', 'pandas', 'numpy', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------
# table content
# ------------------------------------------------------------------------------------------


def test_table3_has_constant_controls_and_fixed_effects_rows(en):
    ctx = T.estimates_table_context(3, specs_of(3), ESTIMATES, en)
    assert ctx["headers"] == ["(1)", "(2)"]
    assert [r["label"] for r in ctx["coef_rows"]] == ["Nqp", "Constant"]
    assert ctx["coef_rows"][0]["coefs"] == ["0.065$^{***}$", "0.065$^{***}$"]
    stats = {r["label"]: r["cells"] for r in ctx["stat_rows"]}
    assert stats["Controls"] == ["No", "Yes"]
    assert stats["City FE"] == stats["Year FE"] == ["Yes", "Yes"]
    assert stats["$N$"] == ["2{,}760", "2{,}760"]
    assert "City linear trends" not in stats and not ctx["iv_rows"] and not ctx["groups"]


def test_table4_iv_columns_show_both_stages_and_psm_columns_matched_n(en):
    ctx = T.estimates_table_context(4, specs_of(4), ESTIMATES, en)
    assert [g["label"] for g in ctx["groups"]] == ["IV = Relief", "IV = Internet", "PSM"]
    assert [(g["start"], g["end"]) for g in ctx["groups"]] == [(2, 3), (4, 5), (6, 8)]
    assert ctx["dependents"] == ["Nqp", "Resil", "Nqp", "Resil", "Resil", "Resil", "Resil"]
    assert [r["label"] for r in ctx["coef_rows"]] == ["Nqp", "Relief", "Internet"]
    relief = ESTIMATES["iv_relief"]["extra"]
    assert (ctx["coef_rows"][1]["coefs"][0], ctx["coef_rows"][1]["ses"][0]) == T.fmt_estimate(
        relief["first_stage_coef"], relief["first_stage_se"], relief["first_stage_F_p"]
    )
    assert ctx["coef_rows"][1]["coefs"][1:] == [""] * 6
    iv = {r["label"]: r["cells"] for r in ctx["iv_rows"]}
    assert iv["KP rk LM"][0] == T.fmt_coef(relief["kp_lm"], relief["kp_lm_p"])
    assert iv["SY 10\\% c.v."] == ["16.380", "", "16.380", "", "", "", ""]
    stats = {r["label"]: r["cells"] for r in ctx["stat_rows"]}
    assert stats["Matched $N$"][:4] == [""] * 4
    assert stats["Matched $N$"][4] == T.fmt_number(
        ESTIMATES["psm_nn"]["extra"]["matched_n"], 0, thousands=True
    )
    assert stats["$R^2$"][0] == stats["$R^2$"][2] == ""  # no R² for a first stage
    assert "Constant" not in [r["label"] for r in ctx["coef_rows"]]


def test_table5_shows_the_trend_row_and_both_regressors(en):
    ctx = T.estimates_table_context(5, specs_of(5), ESTIMATES, en)
    assert [r["label"] for r in ctx["coef_rows"]] == ["Nqp", "Nqp1"]
    stats = {r["label"]: r["cells"] for r in ctx["stat_rows"]}
    assert stats["City linear trends"] == ["No", "No", "No", "No", "Yes"]
    assert ctx["titles"][3] == "Excl.\\\\ municipalities"


def test_table5_nqp1_is_readable_in_its_unit_and_the_note_states_it(en, zh):
    ctx = T.estimates_table_context(5, specs_of(5), ESTIMATES, en)
    nqp1 = next(r for r in ctx["coef_rows"] if r["label"] == "Nqp1")
    assert nqp1["coefs"][2] == "$-$0.527" and nqp1["ses"][2] == "(0.389)"  # keywords per character
    assert "keywords per character" in ctx["notes"]
    assert (
        "关键词个数 / 报告字符数"
        in T.estimates_table_context(5, specs_of(5), ESTIMATES, zh)["notes"]
    )
    # in the old unit (per 10,000 characters) the estimate is 10^4 times smaller: still not 0.000
    old = {**ESTIMATES, "rob_nqp1": {**ESTIMATES["rob_nqp1"], "coef": -5.2727e-5, "se": 3.8917e-5}}
    nqp1 = next(
        r
        for r in T.estimates_table_context(5, specs_of(5), old, en)["coef_rows"]
        if r["label"] == "Nqp1"
    )
    assert (nqp1["coefs"][2], nqp1["ses"][2]) == ("$-$0.000053", "(0.000039)")


DEFAULT_CONTROLS = ["GDP", "GOV", "IND", "INV", "TRADE", "TEC", "FIN", "OPE"]


@pytest.mark.parametrize(
    "used, default, spec_flag, cell, listed",
    [
        (DEFAULT_CONTROLS, DEFAULT_CONTROLS, True, "Yes", None),
        (
            list(reversed(DEFAULT_CONTROLS)),
            DEFAULT_CONTROLS,
            DEFAULT_CONTROLS,
            "Yes",
            None,
        ),  # same set as a list
        ([], DEFAULT_CONTROLS, False, "No", None),
        (None, DEFAULT_CONTROLS, False, "No", None),
        (["GDP", "GOV"], DEFAULT_CONTROLS, ["GDP", "GOV"], "GDP, GOV", None),
        (
            ["GDP", "GOV", "FIN"],
            DEFAULT_CONTROLS,
            ["GDP", "GOV", "FIN"],
            "Custom (3)",
            "GDP, GOV, FIN",
        ),
        (
            DEFAULT_CONTROLS[:7],
            DEFAULT_CONTROLS,
            DEFAULT_CONTROLS[:7],
            "Custom (7)",
            ", ".join(DEFAULT_CONTROLS[:7]),
        ),
        (
            ["GDP", "GOV"],
            ["GDP", "GOV"],
            True,
            "Yes",
            None,
        ),  # the configured default, whatever it is
        (DEFAULT_CONTROLS, None, True, "Yes", None),  # without the default set: the spec's flag
        (["GDP", "GOV", "FIN"], None, ["GDP", "GOV", "FIN"], "Custom (3)", "GDP, GOV, FIN"),
    ],
)
def test_controls_cell(en, used, default, spec_flag, cell, listed):
    assert T.controls_cell(en, used, default, spec_flag) == (cell, listed)


def test_controls_row_names_a_custom_set_and_lists_a_large_one_in_the_note(en, zh):
    est = ESTIMATES["baseline"]
    estimates = {
        **ESTIMATES,
        "baseline": {**est, "controls": ["GDP", "TEC", "FIN"]},
        "baseline_nocontrols": {**ESTIMATES["baseline_nocontrols"], "controls": ["GDP"]},
    }
    ctx = T.estimates_table_context(
        3, specs_of(3), estimates, en, control_variables=DEFAULT_CONTROLS
    )
    stats = {r["label"]: r["cells"] for r in ctx["stat_rows"]}
    assert stats["Controls"] == ["GDP", "Custom (3)"]
    assert "Controls of (2): GDP, TEC, FIN." in ctx["notes"]
    ctx = T.estimates_table_context(
        3, specs_of(3), ESTIMATES, en, control_variables=DEFAULT_CONTROLS
    )
    assert {r["label"]: r["cells"] for r in ctx["stat_rows"]}["Controls"] == ["No", "Yes"]
    assert "Controls of" not in ctx["notes"]
    # a changed default set: the paper's eight are then a custom set
    ctx = T.estimates_table_context(3, specs_of(3), ESTIMATES, en, control_variables=["GDP", "GOV"])
    assert {r["label"]: r["cells"] for r in ctx["stat_rows"]}["Controls"] == ["No", "Custom (8)"]
    zh_ctx = T.estimates_table_context(
        3, specs_of(3), estimates, zh, control_variables=DEFAULT_CONTROLS
    )
    assert (
        "自定义（3 个）"
        in {r["label"]: r["cells"] for r in zh_ctx["stat_rows"]}[zh["rows"]["controls"]]
    )


def test_estimates_table_job_passes_the_default_control_set(tmp_path):
    out = tmp_path / "table3.tex"
    est_files = []
    for sid, record in [
        ("baseline_nocontrols", ESTIMATES["baseline_nocontrols"]),
        ("baseline", ESTIMATES["baseline"]),
    ]:
        est_files.append(write_estimate_fixture(tmp_path / f"{sid}.json", record))
    smk = SimpleNamespace(
        input=SimpleNamespace(
            estimates=est_files, labels=str(LABELS_EN), template=str(TEMPLATES / "table3.tex.j2")
        ),
        params=SimpleNamespace(
            table=3,
            specs=specs_of(3),
            decimals=3,
            stars=[0.1, 0.05, 0.01],
            control_variables=["GDP", "GOV"],
        ),
        output=SimpleNamespace(table=str(out)),
    )
    jobs.estimates_table_job(smk)
    assert "Controls & No & Custom (8) \\\\" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "spec, words",
    [
        (
            {"id": "extra", "table": 8, "estimator": "ols_fe"},
            [
                "spec 'extra' has table: 8",
                "table8.tex.j2) is the wild bootstrap table",
                "not estimates",
                "results/estimates/extra.json",
                "3, 4, 5, 6, 7",
            ],
        ),
        (
            {"id": "extra", "table": 9, "estimator": "ols_fe"},
            ["spec 'extra' has table: 9", "there is no template", "table9.tex.j2"],
        ),
        (
            {"id": "extra", "table": 2, "estimator": "ols_fe"},
            ["table: 2", "Table 2 shows the spec desc_stats only"],
        ),
        (
            {"id": "more_stats", "table": 2, "estimator": "describe"},
            ["'more_stats' (describe, table 2)"],
        ),
    ],
)
def test_unshown_specs_warns_about_a_spec_no_table_shows(spec, words):
    warnings = T.unshown_specs([*SPECS, spec], TEMPLATES, "results")
    assert len(warnings) == 1
    for w in words:
        assert w in warnings[0]
    assert T.unshown_specs(SPECS, TEMPLATES) == []


def test_unshown_specs_with_a_missing_template(tmp_path):
    for n in (3, 4, 5, 6):
        (tmp_path / f"table{n}.tex.j2").write_text("", encoding="utf-8")
    warnings = T.unshown_specs(SPECS, tmp_path)
    assert [w.split("'")[1] for w in warnings] == [s["id"] for s in SPECS if s["table"] == 7]
    assert all("table7.tex.j2 is missing" in w for w in warnings)


def test_table7_main_effect_precedes_each_interaction(en):
    ctx = T.estimates_table_context(7, specs_of(7), ESTIMATES, en)
    assert [r["label"] for r in ctx["coef_rows"]] == [
        "Nqp",
        r"Asset $\times$ Nqp",
        r"GOVP $\times$ Nqp",
        r"ADM $\times$ Nqp",
    ]
    het = ESTIMATES["het_govp"]
    assert ctx["coef_rows"][0]["coefs"][1] == T.fmt_coef(
        het["params"]["Nqp"], het["extra"]["p_values"]["Nqp"]
    )
    assert ctx["coef_rows"][2]["coefs"] == ["", T.fmt_coef(het["coef"], het["p"]), ""]


def test_decimals_and_star_thresholds_are_arguments(en):
    ctx = T.estimates_table_context(3, specs_of(3), ESTIMATES, en, decimals=4, stars=(0.0001,))
    b = ESTIMATES["baseline"]
    assert ctx["coef_rows"][0]["coefs"][1] == T.fmt_number(
        b["coef"], 4
    )  # p = 0.0008: no star at 0.01 %
    assert ctx["coef_rows"][0]["ses"][1] == T.fmt_se(b["se"], 4)
    assert "0.01\\% levels" in ctx["notes"]


def test_se_note_names_city_clustering_only_when_every_column_clusters_by_city(en):
    assert "clustered by city" in T.estimates_table_context(3, specs_of(3), ESTIMATES, en)["notes"]
    unclustered = {**ESTIMATES, "baseline": {**ESTIMATES["baseline"], "cluster": None}}
    notes = T.estimates_table_context(3, specs_of(3), unclustered, en)["notes"]
    assert "clustered by city" not in notes and "Standard errors in parentheses" in notes


def test_a_spec_without_its_estimate_is_named():
    with pytest.raises(KeyError, match="iv_internet"):
        T.render_estimates_table(
            4,
            specs_of(4),
            {k: v for k, v in ESTIMATES.items() if k != "iv_internet"},
            LABELS_EN,
            TEMPLATES,
        )


def test_table1_lists_every_measure_once_with_weights_summing_to_one(en):
    ctx = T.indicator_table_context(FIXTURE["weights"], INDICATORS, en)
    kinds = [r["kind"] for r in ctx["rows"]]
    assert kinds.count("criterion") == 3 and kinds.count("primary") == 7
    items = [r for r in ctx["rows"] if r["kind"] == "item"]
    assert (
        len(items) == 22 + 2 + 5
    )  # single-measure tertiaries, 2 composite headings, their 5 measures
    assert sum(1 for r in items if r["secondary"]) == 18
    assert ctx["total"] == "1.000"
    energy = next(r for r in items if r["indicator"] == "Energy use / GDP")
    assert energy["direction"] == "$+$"  # the paper marks energy intensity "+"
    flipped = T.indicator_table_context(
        FIXTURE["weights"], INDICATORS, en, directions={"energy_intensity": "-"}
    )
    assert (
        next(r for r in flipped["rows"] if r.get("indicator") == "Energy use / GDP")["direction"]
        == "$-$"
    )
    first = ctx["rows"][0]
    assert (first["name"], first["weight"]) == ("Labourers", "0.312")


def test_table1_averages_yearly_weights(en):
    rows = []
    for year, shift in (("2010", 0.01), ("2011", -0.01)):
        for r in FIXTURE["weights"]:
            w = float(r["weight"]) + (
                shift if (r["level"], r["id"]) == ("criterion", "labourers") else 0.0
            )
            rows.append({**r, "scope": year, "weight": str(w)})
    ctx = T.indicator_table_context(rows, INDICATORS, en)
    assert ctx["rows"][0]["weight"] == "0.312"
    assert "by\\_year" in ctx["notes"]


def test_table2_rows_in_record_order(en):
    ctx = T.desc_table_context(ESTIMATES["desc_stats"], en)
    assert [r["variable"] for r in ctx["rows"]] == [
        "Resil",
        "Nqp",
        "GDP",
        "GOV",
        "IND",
        "INV",
        "TRADE",
        "TEC",
        "FIN",
        "OPE",
    ]
    assert ctx["rows"][0]["n"] == "2{,}760"
    assert ctx["rows"][0]["mean"] == T.fmt_number(
        ESTIMATES["desc_stats"]["statistics"]["Resil"]["mean"]
    )


def test_balance_table_unmatched_column_and_summaries(en):
    records = [ESTIMATES[s] for s in PSM]
    ctx = T.balance_table_context(records, en)
    assert ctx["matchers"] == ["Nearest", "Radius", "Kernel"]
    gdp = ctx["rows"][0]
    assert gdp["label"] == "GDP" and gdp["before"] == "104.6"
    mean_nn = sum(abs(b["bias_matched"]) for b in records[0]["extra"]["balance"]) / 8
    assert ctx["summary"][0]["after"][0] == T.fmt_number(mean_nn, 1)
    bad = json.loads(json.dumps(records))
    bad[1]["extra"]["balance"][0]["bias_unmatched"] += 1.0
    with pytest.raises(ValueError, match="'GDP' differs between matchers"):
        T.balance_table_context(bad, en)


def test_replication_table_marks_inconsistencies_once_per_spec(en):
    ctx = T.replication_table_context(read_yaml(PUBLISHED), ESTIMATES, en)
    headings = [r["label"] for r in ctx["rows"] if r["kind"] == "heading"]
    assert headings == ["Table 3", "Table 4", "Table 5", "Table 6", "Table 7"]
    rows = [r for r in ctx["rows"] if r["kind"] == "row"]
    assert rows[0]["spec"] == r"\texttt{baseline\_nocontrols}$^{\mathrm{a}}$"
    assert rows[1]["spec"] == ""  # same spec, next statistic
    assert rows[0]["published"] == "0.077 (0.013)"
    n_row = next(r for r in rows if r["statistic"] == "$N$")
    assert n_row["published"] == "2{,}760"
    assert re.search(
        r"Coefficients within two of our standard errors of the published value: \d+ of 26\.",
        ctx["notes"],
    )
    assert "(a) the published constants" in ctx["notes"]


# ------------------------------------------------------------------------------------------
# (e) golden files
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", [3, 4])
def test_golden_tex(table):
    text = T.render_estimates_table(table, specs_of(table), ESTIMATES, LABELS_EN, TEMPLATES)
    path = GOLDEN / f"table{table}.tex"
    if os.environ.get("NQP_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs; see the module docstring"
    )


def test_rendering_is_deterministic_and_undated():
    a = T.render_estimates_table(4, specs_of(4), ESTIMATES, LABELS_EN, TEMPLATES)
    b = T.render_estimates_table(
        4, specs_of(4), json.loads(json.dumps(ESTIMATES)), LABELS_EN, TEMPLATES
    )
    assert a == b
    assert "\\today" not in a and not re.search(r"20\d\d-\d\d-\d\d", a)


def test_render_document_inputs_every_table_in_order(tmp_path):
    doc = T.render_document(
        [str(tmp_path / "t" / "table3.tex"), str(tmp_path / "t" / "table4.tex")],
        relative_to=tmp_path / "t",
    )
    assert doc.index("\\input{table3.tex}") < doc.index("\\input{table4.tex}")
    assert (
        "\\usepackage{booktabs}" in doc and "ctex" not in doc and doc.endswith("\\end{document}\n")
    )
    zh_doc = T.render_document(["table3.tex"], "zh")
    assert "\\usepackage[UTF8]{ctex}" in zh_doc and "xelatex" in zh_doc
    with pytest.raises(ValueError, match="language"):
        T.render_document([], "fr")
    with pytest.raises(ValueError, match="cannot take"):
        T.render_document(["my tables/table3.tex"])


def test_job_adapter_writes_the_rendered_table(tmp_path):
    est_files = []
    for s in specs_of(3):
        est_files.append(write_estimate_fixture(tmp_path / f"{s['id']}.json", ESTIMATES[s["id"]]))
    out = tmp_path / "tables" / "table3.tex"
    smk = SimpleNamespace(
        input=SimpleNamespace(
            estimates=est_files, labels=str(LABELS_EN), template=str(TEMPLATES / "table3.tex.j2")
        ),
        params=SimpleNamespace(table=3, specs=specs_of(3), decimals=3, stars=[0.1, 0.05, 0.01]),
        output=SimpleNamespace(table=str(out)),
    )
    jobs.estimates_table_job(smk)
    assert out.read_text(encoding="utf-8") == (GOLDEN / "table3.tex").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------
# compilation with a real TeX
# ------------------------------------------------------------------------------------------

ESCAPE_PROBE = "Escaping: " + "& % $ # _ { } ~ ^ \\ < > |"


def write_all_tables(folder: Path, labels_path: Path) -> Path:
    """Every workflow table, rendered from the fixture, plus tables.tex; returns tables.tex."""
    labels = T.load_labels(labels_path)
    texts = {
        "table1.tex": T.render_indicator_table(FIXTURE["weights"], INDICATORS, labels, TEMPLATES),
        "table2.tex": T.render_desc_table(ESTIMATES["desc_stats"], labels, TEMPLATES),
        **{
            f"table{n}.tex": T.render_estimates_table(n, specs_of(n), ESTIMATES, labels, TEMPLATES)
            for n in range(3, 8)
        },
        "psm_balance.tex": T.render_balance_table([ESTIMATES[s] for s in PSM], labels, TEMPLATES),
        "replication.tex": T.render_replication_table(
            read_yaml(PUBLISHED), ESTIMATES, labels, TEMPLATES
        ),
        "table8.tex": T.render_bootstrap_table(fixture_bootstraps(), labels, TEMPLATES),
        "escape_probe.tex": T.latex_escape(ESCAPE_PROBE) + "\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    language = "zh" if labels_path == LABELS_ZH else "en"
    doc = folder / "tables.tex"
    doc.write_text(
        T.render_document([str(folder / n) for n in texts], language, relative_to=folder),
        encoding="utf-8",
    )
    return doc


def run_tex(engine: str, doc: Path) -> str:
    """Run ``engine`` twice (labels settle) and return the log; fail with the log's tail."""
    for _ in range(2):
        proc = subprocess.run(
            [engine, "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=doc.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=300,
        )
        assert proc.returncode == 0, f"{engine} failed:\n{proc.stdout[-4000:]}"
    return doc.with_suffix(".log").read_text(encoding="utf-8", errors="replace")


def check_log(log: str) -> None:
    assert "Overfull \\hbox" not in log, re.findall(r"Overfull \\hbox.*\n.*", log)
    assert "Float too large" not in log
    assert "nqp-tables:" not in log, "a table had to be scaled down to fit \\linewidth"
    assert "Missing character" not in log
    assert "LaTeX Warning: Reference" not in log


def test_chinese_labels_render_every_table(tmp_path):
    """Without a TeX: the Chinese label file covers every label the tables use."""
    doc = write_all_tables(tmp_path, LABELS_ZH)
    assert "\\usepackage[UTF8]{ctex}" in doc.read_text(encoding="utf-8")
    table4 = (tmp_path / "table4.tex").read_text(encoding="utf-8")
    assert "第一阶段" in table4 and "近邻匹配" in table4 and "匹配样本量" in table4
    table1 = (tmp_path / "table1.tex").read_text(encoding="utf-8")
    assert "劳动者" in table1 and "化学需氧量排放 / GDP" in table1


@pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not installed (Debian: texlive-latex-base texlive-latex-recommended "
    "texlive-fonts-recommended); CI installs it",
)
def test_every_table_compiles_with_pdflatex(tmp_path):
    doc = write_all_tables(tmp_path, LABELS_EN)
    check_log(run_tex("pdflatex", doc))
    pdf = doc.with_suffix(".pdf")
    assert pdf.stat().st_size > 10_000
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm not installed (Debian: poppler-utils); the PDF compiled")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    pngs = list(tmp_path.glob("page*.png"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000


def _ctex_available() -> bool:
    if shutil.which("xelatex") is None or shutil.which("kpsewhich") is None:
        return False
    out = subprocess.run(["kpsewhich", "ctex.sty"], capture_output=True, text=True).stdout
    return bool(out.strip())


@pytest.mark.skipif(
    not _ctex_available(),
    reason="xelatex or ctex.sty not installed (Debian: texlive-xetex texlive-lang-chinese)",
)
def test_every_table_compiles_with_chinese_labels(tmp_path):
    doc = write_all_tables(tmp_path, LABELS_ZH)
    assert "基准回归" in (tmp_path / "table3.tex").read_text(encoding="utf-8")
    check_log(run_tex("xelatex", doc))
    assert doc.with_suffix(".pdf").stat().st_size > 10_000


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_compiled_pdf_is_byte_identical_in_another_folder(tmp_path):
    """With the job's fixed SOURCE_DATE_EPOCH, only the PDF /ID (time and output path) could
    differ between runs; tables.tex drops it, so two folders give the same bytes."""
    import os

    env = dict(os.environ, SOURCE_DATE_EPOCH="946684800", FORCE_SOURCE_DATE="1")
    pdfs = []
    for name in ("a", "b"):
        doc = write_all_tables(tmp_path / name, LABELS_EN)
        subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=doc.parent,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        pdfs.append(doc.with_suffix(".pdf").read_bytes())
    assert b"/ID [" not in pdfs[0]
    assert pdfs[0] == pdfs[1]


# ------------------------------------------------------------------------------------------
# the wild bootstrap: Table 8 and the bracketed p-values of Tables 3-7
# ------------------------------------------------------------------------------------------

BOOTSTRAP_SPECS = [s["id"] for s in SPECS if s["estimator"] in ("ols_fe", "iv_fe")]


def bootstrap_record(sid: str, **changes) -> dict:
    """A wild bootstrap result (``results/bootstrap/{spec}.json``) of one fixture spec: the CR1
    numbers of its estimate, a bootstrap p-value 1.2 times the CR1 one and an interval 10 %
    wider than the CR1 one, 9,999 Rademacher draws, 230 city clusters; ``changes`` override."""
    spec = next(s for s in SPECS if s["id"] == sid)
    est = ESTIMATES[sid]
    lo, hi = est["ci"]
    record = {
        "spec": sid,
        "table": spec["table"],
        "column": spec["column"],
        "estimator": spec["estimator"],
        "method": "wre" if spec["estimator"] == "iv_fe" else "wcr",
        "dependent": est["dependent"],
        "regressor": est["regressor"],
        "coef": est["coef"],
        "se": est["se"],
        "t": est["coef"] / est["se"],
        "p": est["p"],
        "ci": [lo, hi],
        "nobs": est["nobs"],
        "n_clusters": 230,
        "bootstrap_p": min(1.0, 1.2 * est["p"]),
        "bootstrap_ci": [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)],
        "level": 0.95,
        "p_type": "symmetric",
        "null_value": 0.0,
        "reps": 9999,
        "reps_requested": 9999,
        "weights": "rademacher",
        "enumerated": False,
        "seed": 20240601,
        "stream": sid,
        "bootstrap_cluster": "city",
        "bootstrap_clusters": 230,
        "software": {"python": "3.11"},
        "inputs": {"panel": "0" * 64},
    }
    return {**record, **changes}


def write_bootstrap_fixture(path: Path, record: dict) -> str:
    """Write a bootstrap result as the bootstrap stage does (JSON, ``null`` for an unbounded
    endpoint); returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    return str(path)


def fixture_bootstraps() -> dict[str, dict]:
    """Every OLS and IV spec of the fixture with a bootstrap; IV Internet's interval is unbounded
    below and Une's weight vectors enumerated (Webb)."""
    out = {sid: bootstrap_record(sid) for sid in BOOTSTRAP_SPECS}
    out["iv_internet"]["bootstrap_ci"] = [None, 0.5]
    out["rob_une"].update(enumerated=True, reps=4096, weights="webb")
    return out


@pytest.fixture(scope="module")
def boot():
    return fixture_bootstraps()


def rows_of(ctx):
    return {r["spec"]: r for r in ctx["rows"] if r["kind"] == "row"}


def test_bootstrap_table_numbers_of_one_row(en):
    record = bootstrap_record("baseline", bootstrap_p=0.0123, bootstrap_ci=[0.0211, 0.1099])
    ctx = T.bootstrap_table_context([record], en)
    assert [r["kind"] for r in ctx["rows"]] == ["heading", "row"]
    assert ctx["rows"][0]["label"] == "Table 3"
    row = ctx["rows"][1]
    assert row == {
        "kind": "row",
        "spec": "(2) baseline",
        "coef": "0.065",  # CR1, as Table 3 prints it (no stars: the p-values have columns)
        "se": "0.019",
        "p": "0.001",
        "method": "WCR",
        "bootstrap_p": "0.012",
        "ci": "[0.021, 0.110]",
        "draws": "9{,}999",
        "weights": "Rademacher",
        "clusters": "230",
    }
    assert ctx["header"]["ci"] == "95\\% CI" and ctx["label"] == "tab:table8"
    assert ctx["caption"] == "Wild cluster bootstrap inference"


def test_bootstrap_table_groups_rows_by_table_in_registry_order(en, boot):
    ctx = T.bootstrap_table_context(boot, en)
    headings = [r["label"] for r in ctx["rows"] if r["kind"] == "heading"]
    assert headings == ["Table 3", "Table 4", "Table 5", "Table 6", "Table 7"]
    assert list(rows_of(ctx)) == [
        "(1) baseline nocontrols",
        "(2) baseline",
        "IV Relief",
        "IV Internet",
        "(1) Une on Nqp",
        "(2) Mrd on Nqp",
        "(3) Resil on Nqp1",
        "(4) drop municipalities",
        "(5) city trends",
        "(1) Rat on Nqp",
        "(2) Adv on Nqp",
        "(3) Talent on Nqp",
        "(4) INN on Nqp",
        r"(1) Asset $\times$ Nqp",
        r"(2) GOVP $\times$ Nqp",
        r"(3) ADM $\times$ Nqp",
    ]
    rows = rows_of(ctx)
    # the estimate's adaptive decimals: Une needs four for two significant digits of its SE
    une = rows["(1) Une on Nqp"]
    assert (une["coef"], une["se"]) == ("$-$0.1000", "0.0055")
    assert une["ci"].startswith("[$-$0.1") and une["ci"].count(".") == 2
    adm = rows[r"(3) ADM $\times$ Nqp"]  # the tested coefficient of a het spec: the interaction
    assert adm["coef"] == T.fmt_number(ESTIMATES["het_adm"]["coef"], 3)


def test_bootstrap_table_wre_for_iv_and_method_notes(en, boot):
    ctx = T.bootstrap_table_context(boot, en)
    rows = rows_of(ctx)
    assert rows["IV Relief"]["method"] == rows["IV Internet"]["method"] == "WRE"
    assert {r["method"] for k, r in rows.items() if not k.startswith("IV")} == {"WCR"}
    notes = ctx["notes"]
    assert (
        "WCR: wild cluster bootstrap, null imposed (Roodman, MacKinnon, Nielsen and Webb" in notes
    )
    assert "WRE: wild restricted efficient bootstrap of 2SLS (Davidson and MacKinnon 2010)" in notes
    assert "WCU" not in notes
    wcu = [bootstrap_record(s, method="wcu") for s in ("baseline", "rob_une")]
    notes = T.bootstrap_table_context(wcu, en)["notes"]
    assert "WCU: wild cluster bootstrap, unrestricted" in notes
    assert "WRE" not in notes and "WCR" not in notes
    assert {r["method"] for r in rows_of(T.bootstrap_table_context(wcu, en)).values()} == {"WCU"}


def test_bootstrap_table_unbounded_intervals(en):
    records = [
        bootstrap_record("baseline", bootstrap_ci=[None, 0.5]),
        bootstrap_record("baseline_nocontrols", bootstrap_ci=[0.1, None]),
        bootstrap_record("rob_mrd", bootstrap_ci=[None, None]),
        bootstrap_record("rob_nqp1", bootstrap_ci=[-math.inf, math.inf]),
    ]
    rows = rows_of(T.bootstrap_table_context(records, en))
    assert rows["(2) baseline"]["ci"] == r"($-\infty$, 0.500]"
    assert rows["(1) baseline nocontrols"]["ci"] == r"[0.100, $\infty$)"
    assert (
        rows["(2) Mrd on Nqp"]["ci"]
        == rows["(3) Resil on Nqp1"]["ci"]
        == (r"($-\infty$, $\infty$)")
    )
    assert r"$\pm\infty$: unbounded" in T.bootstrap_table_context(records, en)["notes"]


def test_bootstrap_table_enumerated_draws(en, boot):
    ctx = T.bootstrap_table_context(boot, en)
    une = rows_of(ctx)["(1) Une on Nqp"]
    assert (une["draws"], une["weights"]) == ("enumerated", "Webb")
    assert rows_of(ctx)["(2) Mrd on Nqp"]["draws"] == "9{,}999"
    assert "Enumerated: every weight vector used once" in ctx["notes"]
    plain = T.bootstrap_table_context([bootstrap_record("baseline")], en)
    assert "Enumerated" not in plain["notes"]


def test_bootstrap_table_notes_p_value_convention_null_level_clusters_and_psm(en):
    notes = T.bootstrap_table_context([bootstrap_record("baseline")], en)["notes"]
    assert notes.startswith("CR1: the estimate of Tables 3--7")
    assert (
        "Bootstrap $p$ of $H_0$: coefficient $=$ 0: the share of draws with $|t^*| \\ge |t|$ "
        "(symmetric)." in notes
    )
    assert "95\\% CI: the coefficients not rejected at the 5\\% level (test inversion)" in notes
    assert "$G^*$: bootstrap clusters (cities)." in notes
    assert (
        "PSM specifications (Table 4) keep their analytic standard errors: the bootstrap is not "
        "valid for nearest-neighbour matching (Abadie and Imbens 2008)." in notes
    )
    other = bootstrap_record(
        "baseline",
        p_type="equal-tailed",
        level=0.9,
        null_value=-0.05,
        bootstrap_cluster="province",
        bootstrap_clusters=31,
    )
    ctx = T.bootstrap_table_context([other], en)
    assert "twice the smaller share of draws with $t^* \\le t$ or $t^* \\ge t$" in ctx["notes"]
    assert "coefficient $=$ $-$0.05" in ctx["notes"]
    assert "90\\% CI: the coefficients not rejected at the 10\\% level" in ctx["notes"]
    assert "(provinces)" in ctx["notes"] and ctx["header"]["ci"] == "90\\% CI"
    assert rows_of(ctx)["(2) baseline"]["clusters"] == "31"


def test_bootstrap_table_needs_one_setting_of_level_p_type_and_null(en):
    records = [bootstrap_record("baseline"), bootstrap_record("rob_une", level=0.9)]
    with pytest.raises(ValueError, match=r"differ in 'level' \(baseline: 0.95, rob_une: 0.9\)"):
        T.bootstrap_table_context(records, en)
    with pytest.raises(ValueError, match="no bootstrap results"):
        T.bootstrap_table_context([], en)


def test_bootstrap_table_puts_a_spec_of_no_other_table_last(en):
    extra = bootstrap_record("baseline", spec="rob_extra", table=8, column="(6)")
    ctx = T.bootstrap_table_context([extra, bootstrap_record("baseline")], en)
    assert [r["label"] for r in ctx["rows"] if r["kind"] == "heading"] == [
        "Table 3",
        "Specifications of no other table",
    ]
    assert ctx["rows"][-1]["spec"] == "(6) extra"  # rob_extra without its family prefix


def test_bootstrap_table_renders_with_both_label_files(en, zh, boot):
    text = T.render_bootstrap_table(boot, LABELS_EN, TEMPLATES)
    assert text.count("\\toprule") == 1 and "\\label{tab:table8}" in text
    assert "\\multicolumn{9}{@{}l}{\\textit{Table 4}} \\\\" in text
    row = "0.107 & 0.030 & 0.000 & WRE & 0.001 & ($-\\infty$, 0.500] & 9{,}999 & Rademacher & 230"
    assert row in text  # IV Internet: unbounded below
    assert "enumerated & Webb & 230 \\\\" in text
    zh_text = T.render_bootstrap_table(boot, zh, TEMPLATES)
    assert "野聚类自助法推断" in zh_text and "穷举" in zh_text and "表 5" in zh_text
    assert T.render_bootstrap_table(
        json.loads(json.dumps(list(boot.values()))), en, TEMPLATES
    ) == T.render_bootstrap_table(boot, en, TEMPLATES)


def test_read_bootstrap_checks_the_file(tmp_path):
    from nqp_resilience.errors import DataError

    good = write_bootstrap_fixture(tmp_path / "baseline.json", bootstrap_record("baseline"))
    assert T.read_bootstrap(good)["bootstrap_p"] == pytest.approx(1.2 * ESTIMATES["baseline"]["p"])
    unbounded = bootstrap_record("baseline", bootstrap_ci=[None, 0.5])
    path = write_bootstrap_fixture(tmp_path / "u.json", unbounded)
    assert T.read_bootstrap(path)["bootstrap_ci"] == [None, 0.5]
    assert list(T.read_bootstraps([good, path])) == ["baseline"]  # by spec id
    missing = {k: v for k, v in bootstrap_record("baseline").items() if k != "bootstrap_p"}
    bad = write_bootstrap_fixture(tmp_path / "m.json", missing)
    with pytest.raises(DataError, match="(?s)m.json.*has no 'bootstrap_p'"):
        T.read_bootstrap(bad)
    bad = write_bootstrap_fixture(tmp_path / "x.json", bootstrap_record("baseline", method="x"))
    with pytest.raises(DataError, match="unknown bootstrap method 'x'"):
        T.read_bootstrap(bad)
    (tmp_path / "j.json").write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        T.read_bootstrap(tmp_path / "j.json")


def test_bootstrap_table_job_writes_the_rendered_table(tmp_path, boot):
    files = [write_bootstrap_fixture(tmp_path / f"{s}.json", boot[s]) for s in BOOTSTRAP_SPECS]
    out = tmp_path / "tables" / "table8.tex"
    jobs.bootstrap_table_job(
        SimpleNamespace(
            input=SimpleNamespace(
                bootstrap=files, labels=str(LABELS_EN), template=str(TEMPLATES / "table8.tex.j2")
            ),
            params=SimpleNamespace(decimals=3),
            output=SimpleNamespace(table=str(out)),
        )
    )
    assert out.read_text(encoding="utf-8") == T.render_bootstrap_table(boot, LABELS_EN, TEMPLATES)


def test_bootstrap_p_off_leaves_every_table_as_before(boot):
    """tables.bootstrap_p: false (the default) must not change a byte of Tables 3-7."""
    for n in range(3, 8):
        before = T.render_estimates_table(n, specs_of(n), ESTIMATES, LABELS_EN, TEMPLATES)
        for off in (None, {}):
            assert (
                T.render_estimates_table(
                    n, specs_of(n), ESTIMATES, LABELS_EN, TEMPLATES, bootstrap=off
                )
                == before
            )
        assert "[" not in before.split("\\midrule")[1]  # no bracket row
    assert T.render_estimates_table(3, specs_of(3), ESTIMATES, LABELS_EN, TEMPLATES) == (
        GOLDEN / "table3.tex"
    ).read_text(encoding="utf-8")


def test_bootstrap_p_in_brackets_under_the_tested_coefficients(en, boot):
    ctx = T.estimates_table_context(3, specs_of(3), ESTIMATES, en, bootstrap=boot)
    nqp, constant = ctx["coef_rows"]
    p = [T.fmt_number(boot[s]["bootstrap_p"]) for s in ("baseline_nocontrols", "baseline")]
    assert nqp["boots"] == [f"[{p[0]}]", f"[{p[1]}]"]
    assert constant["boots"] == []  # the constant has no bootstrap
    assert (
        "Wild cluster bootstrap $p$-values in brackets (WCR; Rademacher weights, 9{,}999 draws; "
        "symmetric, the share of draws with $|t^*| \\ge |t|$; details in the bootstrap table)."
        in ctx["notes"]
    )
    text = T.render_estimates_table(3, specs_of(3), ESTIMATES, LABELS_EN, TEMPLATES, bootstrap=boot)
    assert f" & (0.019) & (0.019) \\\\\n & [{p[0]}] & [{p[1]}] \\\\\nConstant" in text
    # Table 7: only under the interaction each spec tests, not under the main effect
    ctx = T.estimates_table_context(7, specs_of(7), ESTIMATES, en, bootstrap=boot)
    boots = {r["label"]: r["boots"] for r in ctx["coef_rows"]}
    assert boots["Nqp"] == []
    assert boots[r"ADM $\times$ Nqp"] == [
        "",
        "",
        f"[{T.fmt_number(boot['het_adm']['bootstrap_p'])}]",
    ]
    # Table 4: the second stage of each IV spec (WRE); no first stage, no PSM column
    ctx = T.estimates_table_context(4, specs_of(4), ESTIMATES, en, bootstrap=boot)
    nqp = ctx["coef_rows"][0]
    assert [bool(c) for c in nqp["boots"]] == [False, True, False, True, False, False, False]
    assert all(r["boots"] == [] for r in ctx["coef_rows"][1:])
    assert "(WRE; Rademacher weights" in ctx["notes"]
    # Table 5 mixes Rademacher and (enumerated) Webb weights
    notes = T.estimates_table_context(5, specs_of(5), ESTIMATES, en, bootstrap=boot)["notes"]
    assert (
        "Webb and Rademacher weights, 9{,}999 draws (every weight vector where there are fewer);"
        in notes
    )


def test_bootstrap_p_ignores_other_specs_and_rejects_a_stale_result(en, boot):
    only_other_tables = {k: v for k, v in boot.items() if not k.startswith("baseline")}
    assert T.render_estimates_table(
        3, specs_of(3), ESTIMATES, en, TEMPLATES, bootstrap=only_other_tables
    ) == T.render_estimates_table(3, specs_of(3), ESTIMATES, en, TEMPLATES)
    stale = {**boot, "baseline": {**boot["baseline"], "coef": 0.5}}
    with pytest.raises(ValueError, match="bootstrap result of spec 'baseline'.*out of date"):
        T.estimates_table_context(3, specs_of(3), ESTIMATES, en, bootstrap=stale)
    other = {**boot, "het_adm": {**boot["het_adm"], "regressor": "Nqp"}}
    with pytest.raises(ValueError, match="'het_adm' tests 'Nqp'"):
        T.estimates_table_context(7, specs_of(7), ESTIMATES, en, bootstrap=other)


@pytest.mark.parametrize("bootstrap_p", [False, True])
def test_estimates_table_job_with_bootstrap_p(tmp_path, boot, bootstrap_p):
    est_files = [
        write_estimate_fixture(tmp_path / f"{s['id']}.json", ESTIMATES[s["id"]])
        for s in specs_of(3)
    ]
    boot_files = [
        write_bootstrap_fixture(tmp_path / "bootstrap" / f"{s['id']}.json", boot[s["id"]])
        for s in specs_of(3)
    ]
    out = tmp_path / "table3.tex"
    jobs.estimates_table_job(
        SimpleNamespace(
            input=SimpleNamespace(
                estimates=est_files,
                bootstrap=boot_files if bootstrap_p else [],
                labels=str(LABELS_EN),
                template=str(TEMPLATES / "table3.tex.j2"),
            ),
            params=SimpleNamespace(
                table=3,
                specs=specs_of(3),
                decimals=3,
                stars=[0.1, 0.05, 0.01],
                bootstrap_p=bootstrap_p,
            ),
            output=SimpleNamespace(table=str(out)),
        )
    )
    text = out.read_text(encoding="utf-8")
    if bootstrap_p:
        assert text == T.render_estimates_table(
            3, specs_of(3), ESTIMATES, LABELS_EN, TEMPLATES, bootstrap=boot
        )
    else:
        assert text == (GOLDEN / "table3.tex").read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_bootstrap_tables_compile_with_pdflatex(tmp_path, boot):
    """Table 8 and Tables 3-7 with bracketed bootstrap p-values: no overfull box, no table scaled
    down, no float larger than the page."""
    names = []
    for n in range(3, 8):
        text = T.render_estimates_table(
            n, specs_of(n), ESTIMATES, LABELS_EN, TEMPLATES, bootstrap=boot
        )
        (tmp_path / f"table{n}.tex").write_text(text, encoding="utf-8")
        names.append(f"table{n}.tex")
    (tmp_path / "table8.tex").write_text(
        T.render_bootstrap_table(boot, LABELS_EN, TEMPLATES), encoding="utf-8"
    )
    names.append("table8.tex")
    doc = tmp_path / "tables.tex"
    doc.write_text(
        T.render_document([str(tmp_path / n) for n in names], relative_to=tmp_path),
        encoding="utf-8",
    )
    check_log(run_tex("pdflatex", doc))
    assert doc.with_suffix(".pdf").stat().st_size > 10_000


@pytest.mark.skipif(
    not (shutil.which("pdflatex") and shutil.which("pdftoppm")), reason="needs pdflatex, pdftoppm"
)
def test_tables_pdf_compiles_both_documents_and_names_the_first_tex_error(tmp_path):
    """The document and Table 3 alone compile side by side; a TeX error in the document is the
    one reported, with the TeX log's first error line, and no temporary file is left."""
    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "table3.tex").write_text(
        "\\begin{table}\\centering\\begin{tabular}{lc}a & 1.000\\\\\\end{tabular}"
        "\\caption{Baseline}\\end{table}\n",
        encoding="utf-8",
    )
    document = tables / "tables.tex"
    document.write_text(
        T.render_document([str(tables / "table3.tex")], "en", relative_to=tables),
        encoding="utf-8",
    )

    def job(document):
        out = tmp_path / "out"
        return SimpleNamespace(
            input=SimpleNamespace(document=str(document), tables=[str(tables / "table3.tex")]),
            output=SimpleNamespace(pdf=str(out / "tables.pdf"), table3_png=str(out / "t3.png")),
            params=SimpleNamespace(engine="pdflatex"),
        )

    smk = job(document)
    jobs.tables_pdf_job(smk)
    assert Path(smk.output.pdf).read_bytes().startswith(b"%PDF")
    assert Path(smk.output.table3_png).read_bytes().startswith(b"\x89PNG")
    broken = tables / "broken.tex"
    broken.write_text(
        document.read_text(encoding="utf-8").replace(
            "\\begin{document}", "\\begin{document}\\undefinedmacro"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ProjectError, match=r"pdflatex failed on .*broken\.tex: ! Undefined"):
        jobs.tables_pdf_job(job(broken))
    assert sorted(p.name for p in tables.iterdir()) == ["broken.tex", "table3.tex", "tables.tex"]
