"""Tests of nqp_resilience.outputs.figures (docs/figures.md).

(a) Pure helpers on hand-computed examples: the rows, order, labels and CI bounds of the
coefficient plot; regional means; the layer structure of the entropy weights; the kernel density.
(b) Every figure on small synthetic inputs: a PDF and a PNG, byte-identical across runs, of the
expected pixel size, written atomically, with no timestamp or version string; what is drawn is
checked through the returned Figure. (c) The propensity-score figure uses the very sample and
matching of the workflow's ``psm_fe`` estimate. (d) The workflow's one figures job writes every
figure, byte for byte as drawn alone, one score figure and caption per PSM spec. Importing the
module loads neither matplotlib nor pandas.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nqp_resilience.outputs import figures as F
from nqp_resilience.outputs import jobs

from conftest import ROOT, write_estimate_fixture

CONTROLS = ["GDP", "GOV", "IND", "INV", "TRADE", "TEC", "FIN", "OPE"]


# ------------------------------------------------------------------------------------------
# Synthetic inputs
# ------------------------------------------------------------------------------------------


def _estimate(spec, table, column, dependent, regressor, coef, ci=None, se=None):
    return {
        "spec": spec,
        "table": table,
        "column": column,
        "estimator": "ols_fe",
        "dependent": dependent,
        "regressor": regressor,
        "coef": coef,
        "se": se,
        "ci": ci,
        "nobs": 100,
    }


ESTIMATES = [
    {"spec": "desc_stats", "table": 2, "column": "", "estimator": "describe", "statistics": {}},
    _estimate("baseline_nocontrols", 3, "(1)", "Resil", "Nqp", 0.08, [0.05, 0.11], 0.015),
    _estimate("baseline", 3, "(2)", "Resil", "Nqp", 0.06, [0.02, 0.10], 0.02),
    _estimate("rob_une", 5, "(1)", "Une", "Nqp", -0.10, [-0.12, -0.08], 0.01),
    _estimate("rob_city_trends", 5, "(5)", "Resil", "Nqp", 0.05, None, 0.5 / F._Z975),  # CI from se
    _estimate("iv_relief", 4, "IV Relief", "Resil", "Nqp", 0.02, [-0.05, 0.09], 0.035),
    _estimate("het_adm", 7, "(3)", "Resil", "ADM_x_Nqp", 0.04, [0.01, 0.07], 0.015),
]
SD = {"Resil": 0.05, "Nqp": 0.10, "Une": 0.02}


def _bootstrap(spec, regressor, lo, hi, method="wcr", level=0.95):
    """A wild bootstrap result (results/bootstrap/{spec}.json) with the keys the plot reads and
    the rest of the record, so that the job can read it from a file too."""
    return {
        "spec": spec,
        "table": 3,
        "column": "(1)",
        "estimator": "iv_fe" if method == "wre" else "ols_fe",
        "method": method,
        "dependent": "Resil",
        "regressor": regressor,
        "coef": 0.0,
        "se": 1.0,
        "p": 1.0,
        "bootstrap_p": 0.5,
        "bootstrap_ci": [lo, hi],
        "level": level,
        "p_type": "symmetric",
        "null_value": 0.0,
        "reps": 999,
        "reps_requested": 999,
        "weights": "rademacher",
        "enumerated": False,
        "bootstrap_cluster": "city",
        "bootstrap_clusters": 30,
    }


# baseline_nocontrols, rob_city_trends: no bootstrap; IV Relief unbounded below, ADM x Nqp above
BOOTSTRAP = [
    _bootstrap("baseline", "Nqp", 0.01, 0.12),
    _bootstrap("iv_relief", "Nqp", None, 0.15, method="wre"),
    _bootstrap("rob_une", "Nqp", -0.13, -0.07),
    _bootstrap("het_adm", "ADM_x_Nqp", 0.0, None),
]


def _panel(n_cities=12, years=(2010, 2011, 2012, 2013), seed=3):
    """Balanced panel: three cities per region, the 8 controls, Nqp driven by two of them."""
    rng = np.random.default_rng(seed)
    regions = list(F.REGIONS)
    rows = {k: [] for k in ["city_code", "region", "year", "Nqp", "Resil", *CONTROLS]}
    for c in range(n_cities):
        level = rng.normal()
        for t, yr in enumerate(years):
            x = rng.normal(size=len(CONTROLS))
            rows["city_code"].append(f"{110000 + 100 * c}")
            rows["region"].append(regions[c % 4])
            rows["year"].append(yr)
            rows["Nqp"].append(
                0.2 + 0.02 * t + 0.05 * level + 0.04 * x[0] + 0.03 * x[1] + 0.02 * rng.normal()
            )
            rows["Resil"].append(0.23 + 0.1 * rows["Nqp"][-1] + 0.01 * rng.normal())
            for k, v in zip(CONTROLS, x, strict=True):
                rows[k].append(float(v))
    return {k: np.asarray(v) for k, v in rows.items()}


def _weights(scopes=("pooled",)):
    """Two criteria; measure ids repeat the tertiary ids, as in nqp_weights.csv."""
    base = [
        ("criterion", "labourers", "nqp", 0.6),
        ("criterion", "means_of_labour", "nqp", 0.4),
        ("primary", "labour_productivity", "labourers", 0.6),
        ("primary", "physical_means", "means_of_labour", 0.4),
        ("secondary", "economic_output", "labour_productivity", 0.6),
        ("secondary", "infrastructure", "physical_means", 0.4),
        ("tertiary", "gdp_per_capita", "economic_output", 0.25),
        ("tertiary", "average_wage", "economic_output", 0.35),
        ("tertiary", "traditional_infrastructure", "infrastructure", 0.4),
        ("measure", "gdp_per_capita", "gdp_per_capita", 0.25),
        ("measure", "average_wage", "average_wage", 0.35),
        ("measure", "road_length", "traditional_infrastructure", 0.1),
        ("measure", "rail_length", "traditional_infrastructure", 0.3),
    ]
    out = []
    for k, scope in enumerate(scopes):
        shift = 0.02 * k  # by_year: the two gdp/wage weights trade 0.02 per year
        for level, i, p, w in base:
            w = w + (shift if i == "gdp_per_capita" else -shift if i == "average_wage" else 0.0)
            out.append(
                {"scope": scope, "level": level, "id": i, "name": "名称", "parent": p, "weight": w}
            )
    return out


def _png_size(path) -> tuple[int, int]:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _make(name, folder: Path):
    """Draw figure ``name`` into ``folder``; return (pdf, png, Figure)."""
    pdf, png = folder / f"{name}.pdf", folder / f"{name}.png"
    if name == "coefficients":
        fig = F.coefficient_plot(ESTIMATES, pdf, png, sd=SD)
    elif name == "coefficients_raw":
        fig = F.coefficient_plot(ESTIMATES, pdf, png)
    elif name == "coefficients_bootstrap":
        fig = F.coefficient_plot(ESTIMATES, pdf, png, sd=SD, bootstrap=BOOTSTRAP)
    elif name == "trends_by_region":
        fig = F.trends_by_region(_panel(), pdf, png)
    elif name == "entropy_weights":
        fig = F.entropy_weights_plot(_weights(), pdf, png)
    else:
        fig, _ = F.pscore_overlap(
            _panel(n_cities=40, seed=5),
            CONTROLS[:3],
            "Nqp",
            "kernel",
            pdf,
            png,
            outcome="Resil",
            treatment_rule="above_yearly_median",
        )
    return pdf, png, fig


FIGURE_NAMES = [
    "coefficients",
    "coefficients_raw",
    "coefficients_bootstrap",
    "trends_by_region",
    "entropy_weights",
    "pscore_overlap",
]


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure drawn twice, into two folders."""
    out = {}
    for run in ("a", "b"):
        folder = tmp_path_factory.mktemp(run)
        out[run] = {name: _make(name, folder) for name in FIGURE_NAMES}
        out[f"{run}_dir"] = folder
    return out


# ------------------------------------------------------------------------------------------
# Import cost
# ------------------------------------------------------------------------------------------


def test_import_loads_neither_matplotlib_nor_pandas():
    code = (
        "import sys, nqp_resilience.outputs.figures as f; f.figure_list({'psm_nn': 'nearest'}); "
        "print(sorted(m for m in ('matplotlib', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------
# (b) Files: present, deterministic, sized, atomic, no timestamps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_writes_pdf_and_png_byte_identical_across_runs(drawn, name):
    pdf_a, png_a, _ = drawn["a"][name]
    pdf_b, png_b, _ = drawn["b"][name]
    assert pdf_a.read_bytes()[:5] == b"%PDF-" and pdf_a.stat().st_size > 5_000
    assert png_a.stat().st_size > 5_000
    assert pdf_a.read_bytes() == pdf_b.read_bytes()
    assert png_a.read_bytes() == png_b.read_bytes()


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_png_is_half_page_wide_at_300_dpi(drawn, name):
    width, height = _png_size(drawn["a"][name][1])
    assert width == round(F.WIDTH_IN * F.DPI) == 1050
    assert 450 <= height <= 2400  # 1.5–8 inches: a figure, not a strip or a poster


@pytest.mark.parametrize("name", FIGURE_NAMES)
def test_no_timestamp_or_version_in_files(drawn, name):
    import matplotlib

    pdf, png, _ = drawn["a"][name]
    for data in (pdf.read_bytes(), png.read_bytes()):
        assert b"CreationDate" not in data and b"ModDate" not in data
        assert matplotlib.__version__.encode() not in data
        assert b"Software" not in data


def test_byte_identical_in_fresh_processes(drawn, tmp_path):
    """Set and dict orders change with PYTHONHASHSEED, and the constrained-layout solver can move
    a coordinate in its last bits from one process to the next; the files must not change.
    Four fresh processes draw every figure; all must match the in-process drawing."""
    import os

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
        "import test_figures as T; [T._make(n, Path(sys.argv[2])) for n in T.FIGURE_NAMES]"
    )
    for seed in ("1", "2", "12345", "random"):
        out = tmp_path / f"seed_{seed}"
        out.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(out)], env=env, check=True
        )
        for name in FIGURE_NAMES:
            pdf, png, _ = drawn["a"][name]
            assert (out / f"{name}.pdf").read_bytes() == pdf.read_bytes(), (seed, name)
            assert (out / f"{name}.png").read_bytes() == png.read_bytes(), (seed, name)


def test_no_temporary_files_left(drawn):
    names = sorted(p.name for p in drawn["a_dir"].iterdir())
    assert names == sorted(f"{n}.{ext}" for n in FIGURE_NAMES for ext in ("pdf", "png"))


def test_overwrite_in_place_gives_the_same_bytes(drawn, tmp_path):
    pdf, png, _ = _make("entropy_weights", tmp_path)
    first = pdf.read_bytes(), png.read_bytes()
    pdf2, png2, _ = _make("entropy_weights", tmp_path)
    assert (pdf2.read_bytes(), png2.read_bytes()) == first
    assert first == (
        drawn["a"]["entropy_weights"][0].read_bytes(),
        drawn["a"]["entropy_weights"][1].read_bytes(),
    )


def test_failed_save_leaves_neither_target_nor_temporary(tmp_path):
    class Broken:
        def savefig(self, path, **kwargs):
            Path(path).write_bytes(b"partial")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        F._save(Broken(), tmp_path / "x.pdf", tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_user_rcparams_do_not_leak_in(tmp_path, drawn):
    import matplotlib as mpl

    with mpl.rc_context({"font.size": 20, "lines.linewidth": 5, "axes.facecolor": "red"}):
        pdf, png, _ = _make("trends_by_region", tmp_path)
    assert png.read_bytes() == drawn["a"]["trends_by_region"][1].read_bytes()
    assert mpl.rcParams["font.size"] != 20  # and the caller's settings are restored


# ------------------------------------------------------------------------------------------
# (a) Coefficient plot
# ------------------------------------------------------------------------------------------


def test_coefficient_rows_order_bounds_and_skips():
    rows = F.coefficient_rows(ESTIMATES)
    # describe skipped; tables sorted; input order kept within a table
    assert [(r["table"], r["spec"], r["position"]) for r in rows] == [
        (3, "baseline_nocontrols", 0),
        (3, "baseline", 1),
        (4, "iv_relief", 0),
        (5, "rob_une", 0),
        (5, "rob_city_trends", 1),
        (7, "het_adm", 0),
    ]
    by = {r["spec"]: r for r in rows}
    assert (by["baseline"]["lo"], by["baseline"]["coef"], by["baseline"]["hi"]) == (
        0.02,
        0.06,
        0.10,
    )
    assert (by["rob_une"]["lo"], by["rob_une"]["hi"]) == (-0.12, -0.08)
    # no ci: coef ± 1.96 se = 0.05 ± 0.5
    assert by["rob_city_trends"]["lo"] == pytest.approx(-0.45, abs=1e-12)
    assert by["rob_city_trends"]["hi"] == pytest.approx(0.55, abs=1e-12)
    assert all(r["factor"] == 1.0 for r in rows)


def test_coefficient_rows_standardised():
    by = {r["spec"]: r for r in F.coefficient_rows(ESTIMATES, sd=SD)}
    # Resil on Nqp: sd(Nqp)/sd(Resil) = 0.10/0.05 = 2
    assert by["baseline"]["factor"] == pytest.approx(2.0)
    assert (by["baseline"]["lo"], by["baseline"]["coef"], by["baseline"]["hi"]) == pytest.approx(
        (0.04, 0.12, 0.20)
    )
    # Une on Nqp: 0.10/0.02 = 5
    assert by["rob_une"]["coef"] == pytest.approx(-0.5) and by["rob_une"]["lo"] == pytest.approx(
        -0.6
    )
    # ADM × Nqp is per unit of Nqp: the factor of Nqp, not of the interaction
    assert by["het_adm"]["factor"] == pytest.approx(2.0) and by["het_adm"]["coef"] == pytest.approx(
        0.08
    )
    with pytest.raises(KeyError, match="rob_une: no standard deviation for Une"):
        F.coefficient_rows(ESTIMATES, sd={"Resil": 1.0, "Nqp": 1.0})


def test_spec_labels_generated_and_overridden():
    rows = F.coefficient_rows(ESTIMATES, labels={"baseline": "(2) with controls"})
    labels = {r["spec"]: r["label"] for r in rows}
    assert labels == {
        "baseline_nocontrols": "(1) baseline nocontrols",
        "baseline": "(2) with controls",
        "iv_relief": "IV Relief",
        "rob_une": "(1) Une on Nqp",
        "rob_city_trends": "(5) city trends",
        "het_adm": "(3) ADM × Nqp",
    }


def test_coefficient_rows_needs_a_coefficient():
    with pytest.raises(ValueError, match="no estimate has a coefficient"):
        F.coefficient_rows(ESTIMATES[:1])


def test_coefficient_plot_draws_the_rows(drawn):
    fig = drawn["a"]["coefficients"][2]
    rows = F.coefficient_rows(ESTIMATES, sd=SD)
    axes = fig.axes
    assert [ax.get_title(loc="left") for ax in axes] == [F.TABLE_TITLES[t] for t in (3, 4, 5, 7)]
    for ax, table in zip(axes, (3, 4, 5, 7), strict=True):
        tr = [r for r in rows if r["table"] == table]
        (ci,) = [c for c in ax.collections if c.get_gid() == "ci"]
        segments = [seg.tolist() for seg in ci.get_segments()]
        assert segments == [[[r["lo"], r["position"]], [r["hi"], r["position"]]] for r in tr]
        (pts,) = [ln for ln in ax.lines if ln.get_gid() == "coef"]
        assert list(pts.get_xdata()) == [r["coef"] for r in tr]
        assert list(pts.get_ydata()) == [r["position"] for r in tr]
        assert [t.get_text() for t in ax.get_yticklabels()] == [r["label"] for r in tr]
        # first row on top, and zero in view
        assert ax.get_ylim()[0] > ax.get_ylim()[1]
        lo, hi = ax.get_xlim()
        assert lo < 0 < hi


def test_coefficient_rows_with_bootstrap_intervals():
    plain = F.coefficient_rows(ESTIMATES, sd=SD)
    rows = F.coefficient_rows(ESTIMATES, sd=SD, bootstrap=BOOTSTRAP)
    by = {r["spec"]: r for r in rows}
    # scaled like the CR1 interval: Resil on Nqp by 2, Une on Nqp by 5
    assert (by["baseline"]["boot_lo"], by["baseline"]["boot_hi"]) == pytest.approx((0.02, 0.24))
    assert (by["rob_une"]["boot_lo"], by["rob_une"]["boot_hi"]) == pytest.approx((-0.65, -0.35))
    # null endpoints are unbounded
    assert by["iv_relief"]["boot_lo"] == -math.inf and by["iv_relief"]["boot_hi"] == pytest.approx(
        0.30
    )
    assert by["het_adm"]["boot_lo"] == 0.0 and by["het_adm"]["boot_hi"] == math.inf
    assert [by[s]["method"] for s in ("baseline", "iv_relief")] == ["wcr", "wre"]
    for spec in ("baseline_nocontrols", "rob_city_trends"):  # no bootstrap
        assert by[spec]["boot_lo"] is None and by[spec]["boot_hi"] is None
        assert by[spec]["method"] is None
    # the rest of each row is unchanged, and a mapping by spec id is the same as a list
    keys = ("spec", "table", "label", "factor", "coef", "lo", "hi", "position")
    assert [{k: r[k] for k in keys} for r in rows] == [{k: r[k] for k in keys} for r in plain]
    assert F.coefficient_rows(ESTIMATES, sd=SD, bootstrap={b["spec"]: b for b in BOOTSTRAP}) == rows
    # a result of another regression is an error, a result of a spec not drawn is ignored
    wrong = [_bootstrap("het_adm", "Nqp", 0.0, 0.1)]
    with pytest.raises(ValueError, match="het_adm: the bootstrap result tests 'Nqp'"):
        F.coefficient_rows(ESTIMATES, bootstrap=wrong)
    assert F.coefficient_rows(ESTIMATES, bootstrap=[_bootstrap("other", "Nqp", 0, 1)]) == [
        {**r, "boot_lo": None, "boot_hi": None, "method": None}
        for r in F.coefficient_rows(ESTIMATES)
    ]


def test_coefficient_plot_draws_the_bootstrap_intervals(drawn):
    fig = drawn["a"]["coefficients_bootstrap"][2]
    rows = F.coefficient_rows(ESTIMATES, sd=SD, bootstrap=BOOTSTRAP)
    off = F.BOOTSTRAP_OFFSET
    for ax, table in zip(fig.axes, (3, 4, 5, 7), strict=True):
        tr = [r for r in rows if r["table"] == table]
        bt = [r for r in tr if r["boot_lo"] is not None]
        xmin, xmax = ax.get_xlim()
        # CR1 above the row's tick when the row has a bootstrap, on it otherwise
        (ci,) = [c for c in ax.collections if c.get_gid() == "ci"]
        ys = [r["position"] - (off if r["boot_lo"] is not None else 0.0) for r in tr]
        assert [seg.tolist() for seg in ci.get_segments()] == [
            [[r["lo"], y], [r["hi"], y]] for r, y in zip(tr, ys, strict=True)
        ]
        (pts,) = [ln for ln in ax.lines if ln.get_gid() == "coef"]
        assert list(pts.get_ydata()) == ys
        assert [t.get_text() for t in ax.get_yticklabels()] == [r["label"] for r in tr]
        # the bootstrap bar below the tick, an unbounded side clipped to the panel's edge
        (boot,) = [c for c in ax.collections if c.get_gid() == "bootstrap_ci"]
        assert [seg.tolist() for seg in boot.get_segments()] == [
            [
                [max(r["boot_lo"], xmin), r["position"] + off],
                [min(r["boot_hi"], xmax), r["position"] + off],
            ]
            for r in bt
        ]
        arrows = [ln for ln in ax.lines if ln.get_gid() == "bootstrap_open"]
        opened = [(r, side) for r in bt for side in ("boot_lo", "boot_hi") if math.isinf(r[side])]
        assert len(arrows) == len(opened)
        for arrow, (_, side) in zip(arrows, opened, strict=True):
            assert list(arrow.get_xdata()) == [xmin if side == "boot_lo" else xmax]
            assert arrow.get_marker() == ("<" if side == "boot_lo" else ">")
        # finite bootstrap ends are in view, and so is zero
        for r in bt:
            for v in (r["boot_lo"], r["boot_hi"]):
                assert math.isinf(v) or xmin <= v <= xmax
        assert xmin < 0 < xmax
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "coefficient, CR1 95 % CI (cluster-robust)",
        "wild cluster bootstrap 95 % CI (WCR; WRE for IV)",
    ]


def test_coefficient_plot_without_bootstrap_results_is_unchanged(tmp_path, drawn):
    pdf, png = tmp_path / "c.pdf", tmp_path / "c.png"
    fig = F.coefficient_plot(ESTIMATES, pdf, png, sd=SD, bootstrap=[])
    assert png.read_bytes() == drawn["a"]["coefficients"][1].read_bytes()
    assert pdf.read_bytes() == drawn["a"]["coefficients"][0].read_bytes()
    assert not fig.legends
    assert drawn["a"]["coefficients_bootstrap"][1].read_bytes() != png.read_bytes()


def test_bootstrap_legend_names_methods_and_level():
    assert F._bootstrap_legend({"a": _bootstrap("a", "Nqp", 0, 1, "wcu", 0.9)}) == (
        "wild cluster bootstrap 90 % CI (WCU)"
    )
    assert F._bootstrap_legend({"a": _bootstrap("a", "Nqp", 0, 1, "wre")}) == (
        "wild cluster bootstrap 95 % CI (WRE)"
    )


# ------------------------------------------------------------------------------------------
# (a) Trends by region
# ------------------------------------------------------------------------------------------


def test_region_year_means_by_hand():
    df = {
        "region": np.array(["west", "east", "east", "west", "east", None], dtype=object),
        "year": np.array([2010, 2010, 2010, 2011, 2011, 2011]),
        "city_code": np.array(["a", "b", "c", "a", "b", "z"], dtype=object),
        "Nqp": np.array([1.0, 2.0, 4.0, 3.0, np.nan, 9.0]),
        "Resil": np.array([0.1, 0.2, 0.4, 0.3, 0.5, 9.0]),
    }
    out = F.region_year_means(df)
    assert out["years"].tolist() == [2010, 2011]
    assert out["regions"] == ["east", "west"]  # REGIONS order; the row without region dropped
    np.testing.assert_array_equal(
        out["means"]["Nqp"]["east"], [3.0, np.nan]
    )  # missing value: no mean
    np.testing.assert_allclose(out["means"]["Resil"]["east"], [0.3, 0.5])
    np.testing.assert_allclose(out["means"]["Nqp"]["west"], [1.0, 3.0])
    assert out["n_entities"] == {"east": 2, "west": 1}


def test_trends_figure_has_one_line_per_region(drawn):
    fig = drawn["a"]["trends_by_region"][2]
    panel = _panel()
    expected = F.region_year_means(panel)
    for ax, var in zip(fig.axes, ("Nqp", "Resil"), strict=True):
        assert len(ax.lines) == 4
        for line, region in zip(ax.lines, F.REGIONS, strict=True):
            assert line.get_label().startswith(region.capitalize())
            np.testing.assert_allclose(line.get_ydata(), expected["means"][var][region])


# ------------------------------------------------------------------------------------------
# (a) Entropy weights
# ------------------------------------------------------------------------------------------


def test_weight_layers_pooled():
    out = F.weight_layers(_weights(("pooled", "2010")))  # pooled wins over other scopes
    assert out["scope_note"] == "pooled weights"
    assert out["criteria"] == [("labourers", 0.6), ("means_of_labour", 0.4)]
    assert out["measures"] == [
        ("labourers", "average_wage", 0.35),
        ("labourers", "gdp_per_capita", 0.25),
        ("means_of_labour", "rail_length", 0.3),
        ("means_of_labour", "road_length", 0.1),
    ]


def test_weight_layers_by_year_means():
    out = F.weight_layers(_weights(("2010", "2011", "2012")))
    assert out["scope_note"] == "mean over 3 yearly weight sets (2010–2012)"
    m = {i: w for _, i, w in out["measures"]}
    assert m["gdp_per_capita"] == pytest.approx(0.25 + 0.02)  # shifts 0, .02, .04
    assert m["average_wage"] == pytest.approx(0.35 - 0.02)
    assert sum(m.values()) == pytest.approx(1.0)


def test_weight_layers_accepts_a_dataframe_and_catches_an_orphan():
    import pandas as pd

    df = pd.DataFrame(_weights())
    assert F.weight_layers(df) == F.weight_layers(_weights())
    bad = _weights() + [
        {
            "scope": "pooled",
            "level": "measure",
            "id": "x",
            "name": "",
            "parent": "nowhere",
            "weight": 0.0,
        }
    ]
    with pytest.raises(ValueError, match="measure 'x' does not lead to a criterion"):
        F.weight_layers(bad)


def test_entropy_figure_bars(drawn):
    fig = drawn["a"]["entropy_weights"][2]
    ax_c, ax_m = fig.axes
    widths_c = [p.get_width() for p in ax_c.patches]
    widths_m = [p.get_width() for p in ax_m.patches]
    assert widths_c == pytest.approx([60.0, 40.0])
    assert widths_m == pytest.approx([35.0, 25.0, 30.0, 10.0])
    # colour marks the criterion: the first two measures share the first criterion's colour
    assert (
        ax_m.patches[0].get_facecolor()
        == ax_c.patches[0].get_facecolor()
        == ax_m.patches[1].get_facecolor()
    )
    assert ax_m.patches[2].get_facecolor() == ax_c.patches[1].get_facecolor()
    assert [t.get_text() for t in ax_m.get_yticklabels()] == [
        "Average wage",
        "GDP per capita",
        "Rail length",
        "Road length",
    ]


def test_pretty_name():
    assert F.pretty_name("gdp_per_capita") == "GDP per capita"
    assert F.pretty_name("so2_intensity") == "SO₂ intensity"
    assert F.pretty_name("rd_personnel") == "R&D personnel"


# ------------------------------------------------------------------------------------------
# (a) Densities; (c) the propensity-score figure matches the workflow
# ------------------------------------------------------------------------------------------


def test_weighted_kde_integrates_to_one_on_the_unit_interval():
    grid = np.linspace(0.0, 1.0, 4001)
    x = np.array([0.01, 0.5, 0.97, 0.999])
    for w in (np.ones(4), np.array([1.0, 0.5, 2.0, 0.25])):
        f = F.weighted_kde(x, w, grid, 0.05)
        assert np.trapezoid(f, grid) == pytest.approx(
            1.0, abs=1e-4
        )  # reflection keeps the mass in [0, 1]
    # an integer weight equals repeating the point
    np.testing.assert_allclose(
        F.weighted_kde([0.3, 0.6], [2.0, 1.0], grid, 0.1),
        F.weighted_kde([0.3, 0.3, 0.6], [1.0, 1.0, 1.0], grid, 0.1),
        rtol=1e-12,
    )


@pytest.mark.parametrize("n", [1, 5, 377, 1380, 40_000])
@pytest.mark.parametrize("h", [0.0668, 0.02, 0.004, 0.5])
def test_weighted_kde_by_blocks_is_the_whole_grid_computation_to_the_bit(n, h):
    """The kernel matrix is filled a block of grid points at a time; each value is the one the
    whole-grid arrays give, so the figures' bytes do not change: wide and narrow bandwidths,
    ties, scores at 0 and 1, a grid that covers part of [0, 1]."""
    rng = np.random.default_rng(n)
    x, w = rng.uniform(0, 1, n), rng.uniform(0, 3, n)
    if n > 5:
        x[: n // 4] = np.round(x[: n // 4], 2)  # ties
        x[:2] = (0.0, 1.0)
    for grid in (np.linspace(0, 1, 401), np.linspace(0.05, 0.6, 101)):
        k = np.zeros((grid.size, n))
        for mirror in (x, -x, 2.0 - x):
            z = (grid[:, None] - mirror[None, :]) / h
            k += np.exp(-0.5 * z * z)
        whole = (k @ w) / (h * math.sqrt(2.0 * math.pi) * np.sum(w))
        assert F.weighted_kde(x, w, grid, h).tobytes() == whole.tobytes()


def test_silverman_bandwidth_by_hand():
    x = np.arange(1.0, 11.0)  # sd 3.0277, IQR/1.349 = 4.5/1.349 = 3.3358
    assert F.silverman_bandwidth(x) == pytest.approx(0.9 * np.std(x, ddof=1) * 10**-0.2)


def test_overlap_densities_after_matching_are_balanced():
    from nqp_resilience.estimation.matching import match, treatment_indicator

    d = _panel(n_cities=60, seed=11)
    d["_treated"] = treatment_indicator(d["Nqp"], d["year"])
    m = match(d, "_treated", CONTROLS[:3], "nearest")
    dens = F.overlap_densities(m.pscore, m.treated, m.att_weight, m.support)
    assert dens["n_treated"] == int(np.nansum(m.treated)) and dens["n_treated_on_support"] == int(
        np.nansum(m.treated * m.support)
    )
    assert dens["n_control_matched"] == int(np.sum((m.treated == 0) & (m.att_weight > 0)))
    gap_before = abs(dens["mean_before_treated"] - dens["mean_before_control"])
    gap_after = abs(dens["mean_after_treated"] - dens["mean_after_control"])
    assert gap_before > 0.1 and gap_after < 0.2 * gap_before


@pytest.mark.parametrize(
    "psm_opts",
    [
        {"method": "nearest"},
        {"method": "radius", "caliper": 0.05},
        {"method": "kernel", "bandwidth": 0.06},
    ],
)
def test_pscore_overlap_for_spec_uses_the_estimation_sample(tmp_path, psm_opts):
    from nqp_resilience.estimation.specs import estimate

    d = _panel(n_cities=40, seed=7)
    d["Resil"][3] = np.nan  # a missing outcome leaves both samples
    spec = dict(PSM_NN, id="psm_x", psm=psm_opts)  # (PSM_NN: below, with the job tests)
    record = estimate(spec, dict(d), CONTROLS)
    fig, dens = F.pscore_overlap_for_spec(d, spec, CONTROLS, tmp_path / "p.pdf", tmp_path / "p.png")
    assert dens["n_treated"] == record["extra"]["n_treated"]
    assert dens["n_treated_on_support"] + dens["n_control_matched"] == record["extra"]["matched_n"]
    assert dens["n_treated"] + dens["n_control"] == len(d["Resil"]) - 1
    title = fig.axes[1].get_title(loc="left")
    assert title.startswith(f"After {F.METHOD_NAMES[psm_opts['method']]} matching")
    assert [ln.get_gid() for ln in fig.axes[1].lines] == ["after_treated", "after_control"]
    np.testing.assert_allclose(fig.axes[1].lines[1].get_ydata(), dens["after_control"])


# ------------------------------------------------------------------------------------------
# Snakemake jobs and the report list
# ------------------------------------------------------------------------------------------


PSM_NN = {
    "id": "psm_nn",
    "table": 4,
    "column": "PSM",
    "estimator": "psm_fe",
    "dependent": "Resil",
    "regressor": "Nqp",
    "controls": True,
    "psm": {"method": "nearest"},
}
PSM_KERNEL = dict(PSM_NN, id="psm_kernel", psm={"method": "kernel", "bandwidth": 0.06})
PSM_RADIUS = dict(PSM_NN, id="psm_radius", psm={"method": "radius", "caliper": 0.05})


def _job_inputs(folder: Path) -> tuple[SimpleNamespace, dict]:
    """The inputs of the figures job, written to ``folder``: the estimates (a describe record
    among them), their bootstrap results, a panel with every variable they need, the weights
    and the repository's caption template. Returns (input, panel as arrays)."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    d = _panel(n_cities=40, seed=7)
    d["Une"] = 0.03 + 0.1 * d["GDP"] / 10  # rob_une's outcome
    panel = folder / "analysis.parquet"
    pd.DataFrame(d).to_parquet(panel, index=False)
    estimates = [write_estimate_fixture(folder / f"{e['spec']}.json", e) for e in ESTIMATES]
    bootstrap = []
    for b in BOOTSTRAP:
        path = folder / "bootstrap" / f"{b['spec']}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(b), encoding="utf-8")
        bootstrap.append(str(path))
    weights = folder / "nqp_weights.csv"
    pd.DataFrame(_weights()).to_csv(weights, index=False)
    return SimpleNamespace(
        estimates=estimates,
        bootstrap=bootstrap,
        panel=str(panel),
        weights=str(weights),
        pscore_caption=str(ROOT / "report" / "figures" / "pscore_overlap.rst"),
    ), d


def _figures_job(inputs, psm_specs, out: Path) -> SimpleNamespace:
    """Run the figures job as its rule calls it; return its output namespace."""

    def files(name):
        return {f"{name}_pdf": str(out / f"{name}.pdf"), f"{name}_png": str(out / f"{name}.png")}

    ids = [s["id"] for s in psm_specs]
    output = SimpleNamespace(
        **files("coefficients"),
        **files("trends"),
        **files("weights"),
        pscore_pdf=[str(out / f"pscore_{s}.pdf") for s in ids],
        pscore_png=[str(out / f"pscore_{s}.png") for s in ids],
        pscore_caption=[str(out / "report" / f"pscore_{s}.rst") for s in ids],
    )
    jobs.figures_job(
        SimpleNamespace(
            input=inputs,
            params=SimpleNamespace(
                pscore_specs={s["id"]: s for s in psm_specs}, control_variables=CONTROLS
            ),
            output=output,
        )
    )
    return output


def test_figures_job_writes_every_figure_as_drawn_alone(tmp_path):
    """One job draws every figure; each file has the bytes of the figure drawn on its own (in
    a fresh folder, after nothing else), and each score figure gets its spec's caption."""
    inputs, d = _job_inputs(tmp_path / "in")
    out = _figures_job(inputs, [PSM_NN, PSM_KERNEL], tmp_path / "out")
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*")
    )
    assert written == sorted(
        [
            *(
                f"{n}.{ext}"
                for n in ("coefficients", "trends", "weights")
                for ext in ("pdf", "png")
            ),
            *(f"pscore_{s}.{ext}" for s in ("psm_nn", "psm_kernel") for ext in ("pdf", "png")),
            "report",
            "report/pscore_psm_nn.rst",
            "report/pscore_psm_kernel.rst",
        ]
    )
    for pdf, png in [
        (out.coefficients_pdf, out.coefficients_png),
        (out.trends_pdf, out.trends_png),
        (out.weights_pdf, out.weights_png),
        *zip(out.pscore_pdf, out.pscore_png, strict=True),
    ]:
        assert Path(pdf).read_bytes()[:5] == b"%PDF-" and _png_size(png)[0] == 1050

    alone = tmp_path / "alone"
    alone.mkdir()
    sd = F.standard_deviations(d, ["Resil", "Nqp", "Une"])
    draw_alone = {
        "coefficients": lambda pdf, png: F.coefficient_plot(
            ESTIMATES, pdf, png, sd=sd, bootstrap=BOOTSTRAP
        ),
        "trends": lambda pdf, png: F.trends_by_region(d, pdf, png),
        "weights": lambda pdf, png: F.entropy_weights_plot(_weights(), pdf, png),
    }
    for name, draw in draw_alone.items():
        draw(alone / f"{name}.pdf", alone / f"{name}.png")
        for ext in ("pdf", "png"):
            job_file = Path(getattr(out, f"{name}_{ext}"))
            assert job_file.read_bytes() == (alone / f"{name}.{ext}").read_bytes(), (name, ext)
    for spec, pdf, png in zip((PSM_NN, PSM_KERNEL), out.pscore_pdf, out.pscore_png, strict=True):
        F.pscore_overlap_for_spec(d, spec, CONTROLS, alone / "p.pdf", alone / "p.png")
        assert Path(pdf).read_bytes() == (alone / "p.pdf").read_bytes(), spec["id"]
        assert Path(png).read_bytes() == (alone / "p.png").read_bytes(), spec["id"]

    caption = Path(out.pscore_caption[1]).read_text(encoding="utf-8")
    assert "spec `psm_kernel`" in caption and "after kernel matching" in caption
    assert "{" not in caption and "psm_nn" not in caption
    assert "after nearest-neighbour matching" in Path(out.pscore_caption[0]).read_text("utf-8")


@pytest.mark.parametrize(
    "psm_specs",
    [[PSM_NN], [PSM_NN, PSM_RADIUS, PSM_KERNEL], [PSM_KERNEL, PSM_RADIUS], []],
    ids=["one", "three", "two-reordered", "none"],
)
def test_figures_job_draws_one_score_figure_per_psm_spec(tmp_path, psm_specs):
    """A PSM spec added to or removed from the config adds or removes its score figure and
    caption, and changes no other figure."""
    inputs, _ = _job_inputs(tmp_path / "in")
    out = _figures_job(inputs, psm_specs, tmp_path / "out")
    ids = [s["id"] for s in psm_specs]
    assert sorted(p.name for p in (tmp_path / "out").glob("pscore_*")) == sorted(
        f"pscore_{s}.{ext}" for s in ids for ext in ("pdf", "png")
    )
    assert sorted(p.name for p in (tmp_path / "out").glob("report/*")) == sorted(
        f"pscore_{s}.rst" for s in ids
    )
    for s, caption in zip(ids, out.pscore_caption, strict=True):
        assert f"spec `{s}`" in Path(caption).read_text(encoding="utf-8")
    reference = _figures_job(inputs, [PSM_NN], tmp_path / "ref")
    for name in ("coefficients", "trends", "weights"):
        for ext in ("pdf", "png"):
            mine, ref = getattr(out, f"{name}_{ext}"), getattr(reference, f"{name}_{ext}")
            assert Path(mine).read_bytes() == Path(ref).read_bytes(), (name, ext)


def test_figures_job_needs_one_score_figure_per_psm_spec(tmp_path):
    inputs, _ = _job_inputs(tmp_path / "in")
    with pytest.raises(ValueError, match="1 PSM specs in params.pscore_specs, 0 score figures"):
        jobs.figures_job(
            SimpleNamespace(
                input=inputs,
                params=SimpleNamespace(pscore_specs={"psm_nn": PSM_NN}, control_variables=CONTROLS),
                output=SimpleNamespace(pscore_pdf=[], pscore_png=[], pscore_caption=[]),
            )
        )


def test_pscore_caption_fills_in_spec_and_method():
    template = (ROOT / "report" / "figures" / "pscore_overlap.rst").read_text(encoding="utf-8")
    assert "{spec}" in template and "{method}" in template
    text = F.pscore_caption(template, "psm_radius", "radius")
    assert "after radius matching" in text and "spec `psm_radius`" in text and "{" not in text
    assert F.pscore_caption("{x} {spec} {method}", "s", "odd") == "{x} s odd"


def test_shown_specs_narrows_the_specs_to_each_figure():
    specs = ["psm_nn", "baseline", "psm_kernel", "baseline"]
    assert F.shown_specs("coefficients", specs) == ["baseline", "psm_kernel", "psm_nn"]
    assert F.shown_specs("trends_by_region", specs) == []
    assert F.shown_specs("entropy_weights", specs) == []
    assert F.shown_specs("pscore_psm_kernel", specs) == ["psm_kernel"]


def test_output_map_lists_only_the_specs_each_figure_shows():
    """The README's map: one job draws every figure from the estimates of every spec; each
    figure's row names only the specs it shows."""
    from nqp_resilience.outputs.provenance import output_map

    inputs = ",".join(
        [
            "results/estimates/baseline.json",
            "results/estimates/psm_nn.json",
            "results/estimates/psm_kernel.json",
            "results/bootstrap/baseline.json",
            "results/panel/analysis.parquet",
        ]
    )
    outputs = [
        "results/figures/coefficients.png",
        "results/figures/trends_by_region.png",
        "results/figures/entropy_weights.pdf",
        "results/figures/pscore_psm_nn.png",
        "results/figures/pscore_psm_kernel.pdf",
    ]
    head = "output_file\tdate\trule\tlog-file(s)\tinput-file(s)\tshellcmd\tstatus\tplan\n"
    rows = [f"{o}\t-\tfigures\t-\t{inputs}\t-\tok\tno update\n" for o in outputs]
    rows.append(
        "results/tables/table3.tex\t-\ttable_estimates\t-\t"
        "results/estimates/baseline.json,resources/templates/table3.tex.j2\t-\tok\tno update\n"
    )
    specs = {Path(r["output"]).stem: r["estimates"] for r in output_map(head + "".join(rows))}
    assert specs == {
        "table3": ["baseline"],
        "coefficients": ["baseline", "psm_kernel", "psm_nn"],
        "trends_by_region": [],
        "entropy_weights": [],
        "pscore_psm_nn": ["psm_nn"],
        "pscore_psm_kernel": ["psm_kernel"],
    }


def test_figure_list_expands_the_psm_figures():
    names = [n for n, _ in F.figure_list({"psm_nn": "nearest", "psm_kernel": "kernel"})]
    assert names == [
        "coefficients",
        "trends_by_region",
        "entropy_weights",
        "pscore_overlap_psm_nn",
        "pscore_overlap_psm_kernel",
    ]
    captions = dict(F.figure_list({"psm_kernel": "kernel"}))
    assert "after kernel matching" in captions["pscore_overlap_psm_kernel"]
    assert "`psm_kernel`" in captions["pscore_overlap_psm_kernel"]
    assert all(c and "{" not in c for c in captions.values())
    assert [n for n, _ in F.figure_list()] == list(F.FIGURES)


def test_coefficient_rows_nan_when_no_interval():
    e = dict(ESTIMATES[1], ci=None, se=None)
    (row,) = F.coefficient_rows([e])
    assert row["coef"] == 0.08 and math.isnan(row["lo"]) and math.isnan(row["hi"])
