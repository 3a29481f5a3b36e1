"""The figures (docs/figures.md): coefficient plot, regional trends, entropy weights, score overlap.

Inputs
    ``results/estimates/{spec}.json`` records (coefficient plot), the analysis panel
    ``results/panel/analysis.parquet`` (trends, standard deviations for the coefficient plot,
    propensity scores), ``results/indices/nqp_weights.csv`` (entropy weights).
Outputs
    One PDF and one PNG per figure under ``results/figures/``. Every file is written
    atomically (temporary file in the same folder, then :func:`os.replace`) and is
    byte-for-byte reproducible: no timestamps or producer strings in the PDF (``metadata``
    set to ``None``), no ``Software`` chunk in the PNG, a fixed size and resolution, the
    matplotlib default style plus the overrides in ``_RC`` (so a user's ``matplotlibrc``
    does not leak in), and the DejaVu Sans font shipped with matplotlib.

Importing this module imports the standard library only. numpy and matplotlib are imported
inside the functions; pandas is never imported (DataFrames are accepted, as are dicts of numpy
arrays from :func:`nqp_resilience.data.parquet.read_columns`). Figures are drawn on a bare
:class:`matplotlib.figure.Figure` with an Agg canvas, never through ``pyplot``, so the
process-wide backend is left alone and no figure stays registered in pyplot's state.
Design choices, and why, are in ``docs/figures.md``.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager

log = logging.getLogger("nqp_resilience")

#: Figure width in inches: half an A4/Letter page (one column of a two-column layout).
WIDTH_IN = 3.5
#: Resolution of the PNG files, dots per inch.
DPI = 300
#: PDF Info entries that would otherwise carry a date or a version string.
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
#: PNG text chunks that would otherwise carry the matplotlib version.
PNG_METADATA = {"Software": None}

#: Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
#: The four regions of the analysis panel, in the order the figures show them.
REGIONS = ("east", "central", "west", "northeast")
_REGION_STYLE = {
    "east": (OKABE_ITO["blue"], "o"),
    "central": (OKABE_ITO["orange"], "s"),
    "west": (OKABE_ITO["green"], "^"),
    "northeast": (OKABE_ITO["purple"], "D"),
}
_EXTRA_STYLES = (
    (OKABE_ITO["sky_blue"], "v"),
    (OKABE_ITO["vermillion"], "P"),
    (OKABE_ITO["black"], "X"),
)
_CRITERION_COLOURS = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["green"],
    OKABE_ITO["purple"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["vermillion"],
)
#: Panel titles of the coefficient plot (the paper's table headings).
TABLE_TITLES = {
    3: "Table 3 · baseline",
    4: "Table 4 · endogeneity (IV, PSM)",
    5: "Table 5 · robustness",
    6: "Table 6 · mechanisms",
    7: "Table 7 · heterogeneity",
}
METHOD_NAMES = {"nearest": "nearest-neighbour", "radius": "radius", "kernel": "kernel"}
#: Names of the wild bootstrap methods (``method`` of a bootstrap result), in legend order.
BOOTSTRAP_METHOD_NAMES = {"wcr": "WCR", "wcu": "WCU", "wre": "WRE"}
#: Vertical offset (in rows) of the two bars of a spec with a bootstrap: CR1 above the row's
#: tick, bootstrap below it.
BOOTSTRAP_OFFSET = 0.17
_Z975 = 1.959963984540054

#: Figure name -> caption, for ``snakemake --report`` (``pscore_overlap`` is one figure per
#: PSM spec; :func:`figure_list` expands it).
FIGURES = {
    "coefficients": (
        "Core coefficient of every specification of Tables 3–7 with its 95 % confidence interval "
        "(from the estimate's `ci`: cluster-robust by city unless the spec says otherwise), one "
        "panel per table. Effects are standardised, β·sd(x)/sd(y) with the standard deviations "
        "of the analysis panel, so that outcomes and regressors on different scales share one "
        "axis; for an interaction D×Nqp the factor is sd(Nqp)/sd(y), i.e. the difference in the "
        "standardised slope between the two groups. Where a specification has a wild cluster "
        "bootstrap, its bootstrap confidence interval by test inversion is drawn under the CR1 "
        "interval (vermillion, with end caps; WCR or WCU for OLS, WRE for IV); an unbounded "
        "side runs to the edge of the panel and ends in an arrowhead."
    ),
    "trends_by_region": (
        "Mean new quality productivity (Nqp, left) and mean urban economic resilience (Resil, "
        "right) by year in the four regions (east, central, west, northeast): unweighted means "
        "over the prefecture-level cities of the analysis panel; both indices are dimensionless."
    ),
    "entropy_weights": (
        "Entropy weights of the Nqp indicator system: totals of the three criterion layers "
        "(labourers, objects of labour, means of labour; top) and the weight of every measure, "
        "grouped by criterion layer (bottom), in % of the index. Pooled weights, or the mean of "
        "the yearly weight sets when the index is built year by year (the panel title says which)."
    ),
    "pscore_overlap": (
        "Propensity-score densities of treated cities (Nqp above its yearly median) and controls "
        "before matching (left) and after {method} matching (right; treated on common support, "
        "controls weighted by their accumulated matching weights), spec `{spec}`. Logit on the "
        "eight controls; Gaussian kernel density, reflected at 0 and 1, one bandwidth for all "
        "four curves."
    ),
}

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 7.0,
    "axes.titlesize": 7.0,
    "axes.titlelocation": "left",
    "axes.titleweight": "bold",
    "axes.labelsize": 7.0,
    "xtick.labelsize": 6.5,
    "ytick.labelsize": 6.5,
    "legend.fontsize": 6.5,
    "legend.frameon": False,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "0.25",
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.color": "0.25",
    "ytick.color": "0.25",
    "lines.linewidth": 1.0,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "pdf.fonttype": 42,  # embed TrueType (editable text; no Type 3 glyph procedures)
    "ps.fonttype": 42,
    "svg.hashsalt": "nqp-resilience",
    "svg.fonttype": "none",
    "path.simplify": True,
}


# --------------------------------------------------------------------------------------------
# Plumbing: style, figure, atomic deterministic save
# --------------------------------------------------------------------------------------------


@contextmanager
def _style():
    """matplotlib's default style plus ``_RC``, whatever the user's matplotlibrc says."""
    import matplotlib as mpl
    import matplotlib.style

    with matplotlib.style.context("default"), mpl.rc_context(_RC):
        yield


def _new_figure(height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.02, wspace=0.04, hspace=0.04)
    return fig


def _freeze_layout(fig) -> None:
    """Run the constrained layout once, round every position to 1e-4 of the figure and remove
    the layout engine. The constrained-layout solver (kiwisolver) can differ in the last
    bits of a coordinate from one process to the next, which changes the PDF's bytes.

    Each file is then drawn once (docs/figures.md, "One job, each file drawn once"): the
    layout engine is run directly, without the full draw ``draw_without_rendering`` adds after
    it (the positions it sets are the same), and then removed (None, not the ``"none"``
    placeholder: with any engine set, ``savefig`` draws the whole figure once more before each
    file only to lay it out again). The positions are fixed by then, so neither extra draw
    would change a byte.
    """
    engine = fig.get_layout_engine() if hasattr(fig, "get_layout_engine") else None
    if engine is None:
        return
    engine.execute(fig)
    for ax in fig.axes:
        ax.set_position([round(v, 4) for v in ax.get_position().bounds])
    for text in fig.texts:
        x, y = text.get_position()
        text.set_position((round(x, 4), round(y, 4)))
    fig.set_layout_engine(None)  # None under _style(): autolayout and constrained layout off


def _save(fig, pdf_path, png_path) -> None:
    """Write ``fig`` as PDF and PNG, each atomically and without timestamps."""
    _freeze_layout(fig)
    from nqp_resilience.data.io import atomic_write

    for path, fmt, metadata in ((pdf_path, "pdf", PDF_METADATA), (png_path, "png", PNG_METADATA)):
        atomic_write(
            path,
            lambda tmp, fmt=fmt, metadata=metadata: fig.savefig(
                tmp, format=fmt, dpi=DPI, metadata=metadata
            ),
        )
    log.info("wrote %s and %s", pdf_path, png_path)


def _column(df, name):
    import numpy as np

    try:
        return np.asarray(df[name])
    except KeyError:
        raise KeyError(f"column {name!r} is not in the data") from None


def figure_list(psm_specs=None) -> list[tuple[str, str]]:
    """(figure name, caption) pairs for a Snakemake report, in the order of :data:`FIGURES`.

    Parameters
    ----------
    psm_specs : mapping spec id -> matching method, or None
        The PSM specs; ``pscore_overlap`` becomes one entry ``pscore_overlap_{spec}`` each.
        None leaves the template entry ``pscore_overlap`` as it is.
    """
    out = []
    for name, caption in FIGURES.items():
        if name == "pscore_overlap" and psm_specs is not None:
            for spec, method in dict(psm_specs).items():
                out.append((f"{name}_{spec}", pscore_caption(caption, spec, method)))
        else:
            out.append((name, caption))
    return out


#: Figures of the data alone: they show no spec's estimate.
DATA_FIGURES = ("trends_by_region", "entropy_weights")


def shown_specs(figure: str, specs) -> list[str]:
    """The specs a figure shows, for the README's map of outputs (sorted).

    ``figure`` is the file name without extension; ``specs`` are the specs whose estimates or
    bootstrap results the job that draws it reads. One job draws every figure, so these are
    narrowed per figure: none for the data figures (:data:`DATA_FIGURES`), the spec itself for
    the score figure ``pscore_{spec}``, and all of them for the coefficient plot (and for any
    other figure).
    """
    if figure in DATA_FIGURES:
        return []
    if figure.startswith("pscore_"):
        return [figure.removeprefix("pscore_")]
    return sorted(set(specs))


def pscore_caption(template: str, spec: str, method: str) -> str:
    """The caption of the score figure of one PSM spec: ``template`` with ``{spec}`` (the spec
    id) and ``{method}`` (the matcher's name, e.g. ``nearest-neighbour``) filled in.

    The workflow's template is ``report/figures/pscore_overlap.rst``: one job draws every figure,
    so a report caption cannot take the spec from the job's wildcards; the job writes each
    spec's caption from the template instead. Only these two fields are replaced, so other
    braces in the text stay as they are.
    """
    return template.replace("{spec}", spec).replace("{method}", METHOD_NAMES.get(method, method))


# --------------------------------------------------------------------------------------------
# 1. Coefficient plot
# --------------------------------------------------------------------------------------------


def base_regressor(regressor: str) -> str:
    """The variable whose scale a coefficient is per unit of: ``X`` for an interaction ``D_x_X``
    (``specs.interaction_name``), else the regressor itself."""
    return regressor.split("_x_", 1)[1] if "_x_" in regressor else regressor


def standard_deviations(data, variables) -> dict[str, float]:
    """Sample standard deviation (n − 1) of each variable over its finite values.

    ``data`` is a DataFrame or a dict of arrays (e.g. the analysis panel); the result is the
    ``sd`` argument of :func:`coefficient_plot`.
    """
    import numpy as np

    out = {}
    for v in dict.fromkeys(variables):
        x = np.asarray(_column(data, v), dtype=float)
        x = x[np.isfinite(x)]
        out[v] = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return out


def _table_key(table):
    try:
        return (0, int(table), "")
    except (TypeError, ValueError):
        return (1, 0, str(table))


def _ci(e: dict) -> tuple[float, float]:
    """The record's ``ci``; coef ± 1.96 se if it has none; (nan, nan) if neither."""
    ci = e.get("ci")
    if ci is not None and len(ci) == 2 and all(v is not None and math.isfinite(v) for v in ci):
        return float(ci[0]), float(ci[1])
    se = e.get("se")
    if se is not None and math.isfinite(se):
        return e["coef"] - _Z975 * se, e["coef"] + _Z975 * se
    return math.nan, math.nan


def spec_label(e: dict, main_pair: tuple[str, str] | None = None) -> str:
    """Row label: the column heading and a short name generated from the record.

    The short name is ``D × X`` for an interaction, ``y on x`` when the (dependent, regressor)
    pair is not ``main_pair`` (the most common one, Resil on Nqp), else the spec id without its
    family prefix (``rob_``, ``mech_``, ``het_``, ``iv_``, ``psm_``). A descriptive column heading
    (not of the form ``(1)``, e.g. ``IV Relief``) is used alone. The table goes in the panel title.
    """
    col = str(e.get("column") or "").strip()
    if col and not col.startswith("("):
        return col
    dep, reg = e.get("dependent"), str(e.get("regressor") or "")
    if "_x_" in reg:
        d, x = reg.split("_x_", 1)
        short = f"{d} × {x}"
    elif main_pair is not None and (dep, reg) != tuple(main_pair):
        short = f"{dep} on {reg}"
    else:
        sid = str(e["spec"])
        for prefix in ("rob_", "mech_", "het_", "iv_", "psm_"):
            if sid.startswith(prefix):
                sid = sid[len(prefix) :]
                break
        short = sid.replace("_", " ")
    return f"{col} {short}".strip()


def _bootstrap_bound(v, side: float) -> float:
    """A bootstrap CI endpoint: JSON ``null`` (or a non-finite value) is unbounded, ±inf."""
    if v is None:
        return side * math.inf
    v = float(v)
    return v if math.isfinite(v) else side * math.inf


def coefficient_rows(estimates, *, labels=None, sd=None, bootstrap=None) -> list[dict]:
    """What the coefficient plot draws, row by row (pure; unit-tested).

    Parameters
    ----------
    estimates : iterable of EstimateRecord or dict
        ``results/estimates/{spec}.json`` records
        (:func:`nqp_resilience.estimation.record.read_estimate`). Records without a coefficient
        (``describe``) are skipped. Rows follow the order given within each table; tables are
        sorted.
    labels : mapping spec id -> label, optional
        Overrides :func:`spec_label`.
    sd : mapping variable -> standard deviation, optional
        If given, every coefficient and CI bound is multiplied by
        ``sd[base_regressor(regressor)] / sd[dependent]`` (standardised effect).
    bootstrap : mapping spec id -> wild bootstrap result, or iterable of results, optional
        ``results/bootstrap/{spec}.json`` records (``regressor``, ``bootstrap_ci``, ``method``,
        ``level``): a spec with one gets its bootstrap CI, scaled like the CR1 CI; a ``null``
        endpoint is unbounded (±inf). A result whose regressor is not the estimate's raises
        ``ValueError``; results of specs not drawn are ignored.

    Returns
    -------
    list of dict
        ``spec, table, label, dependent, regressor, factor, coef, lo, hi, position,
        boot_lo, boot_hi, method`` where ``position`` is the 0-based row within the table's
        panel, top first, and ``boot_lo``, ``boot_hi`` (possibly ±inf), ``method`` (``wcr``,
        ``wcu`` or ``wre``) are None for a spec without a bootstrap.
    """
    from collections import Counter

    recs = [e for e in estimates if e.get("coef") is not None]
    if not recs:
        raise ValueError("no estimate has a coefficient (only describe records?)")
    pairs = Counter((e.get("dependent"), e.get("regressor")) for e in recs)
    main_pair = pairs.most_common(1)[0][0]
    labels = dict(labels or {})
    if bootstrap is not None and not isinstance(bootstrap, dict):
        bootstrap = {b["spec"]: b for b in bootstrap}
    bootstrap = dict(bootstrap or {})
    rows = []
    for table in sorted(dict.fromkeys(e.get("table") for e in recs), key=_table_key):
        for pos, e in enumerate(x for x in recs if x.get("table") == table):
            factor = 1.0
            if sd is not None:
                x, y = base_regressor(str(e["regressor"])), e["dependent"]
                missing = [v for v in (x, y) if v not in sd]
                if missing:
                    raise KeyError(
                        f"spec {e['spec']}: no standard deviation for {', '.join(missing)}"
                    )
                factor = float(sd[x]) / float(sd[y])
            lo, hi = _ci(e)
            boot = bootstrap.get(e["spec"])
            boot_lo = boot_hi = method = None
            if boot is not None:
                if boot.get("regressor") != e.get("regressor"):
                    raise ValueError(
                        f"spec {e['spec']}: the bootstrap result tests {boot.get('regressor')!r},"
                        f" the estimate is of {e.get('regressor')!r}; rerun the bootstrap"
                    )
                b_lo, b_hi = boot["bootstrap_ci"]
                boot_lo = _bootstrap_bound(b_lo, -1.0) * factor
                boot_hi = _bootstrap_bound(b_hi, 1.0) * factor
                method = str(boot.get("method"))
            rows.append(
                {
                    "spec": e["spec"],
                    "table": table,
                    "label": labels.get(e["spec"], spec_label(e, main_pair)),
                    "dependent": e.get("dependent"),
                    "regressor": e.get("regressor"),
                    "factor": factor,
                    "coef": float(e["coef"]) * factor,
                    "lo": lo * factor,
                    "hi": hi * factor,
                    "position": pos,
                    "boot_lo": boot_lo,
                    "boot_hi": boot_hi,
                    "method": method,
                }
            )
    return rows


def _bootstrap_legend(bootstrap) -> str:
    """Legend text of the bootstrap CIs: level and methods of the results, e.g. "wild cluster
    bootstrap 95 % CI (WCR; WRE for IV)"."""
    records = list(bootstrap.values())
    levels = {float(b.get("level", 0.95)) for b in records}
    level = f"{_fmt_level(levels.pop())} % CI" if len(levels) == 1 else "CI"
    present = [m for m in BOOTSTRAP_METHOD_NAMES if any(b.get("method") == m for b in records)]
    ols = [BOOTSTRAP_METHOD_NAMES[m] for m in present if m != "wre"]
    methods = ", ".join(ols)
    if "wre" in present:
        methods = f"{methods}; WRE for IV" if methods else "WRE"
    return f"wild cluster bootstrap {level}" + (f" ({methods})" if methods else "")


def _fmt_level(level: float) -> str:
    return f"{level * 100:.4f}".rstrip("0").rstrip(".")


def coefficient_plot(estimates, pdf_path, png_path, *, labels=None, sd=None, bootstrap=None):
    """Every spec's core coefficient with its 95 % CI, one panel per table.

    Parameters
    ----------
    estimates : list of EstimateRecord or dict
        Estimate records (``spec, table, column, dependent, regressor, coef, ci`` …), in the
        order the rows should appear within each table (pass them in registry order).
    pdf_path, png_path : path-like
        Output files.
    labels : mapping spec id -> row label, optional
    sd : mapping variable -> standard deviation, optional
        Standardise the effects (see :func:`coefficient_rows`), so that the rows of a panel
        with different outcomes or regressors (Tables 5 and 6) are comparable. Without it the
        raw coefficients are drawn (in Table 5 the Nqp1 row, per keyword per character, a unit
        far outside its range of 0–0.018, then dwarfs the others). Either way each panel has its
        own x-axis, zero always in view.
    bootstrap : mapping spec id -> wild bootstrap result, or iterable of results, optional
        ``results/bootstrap/{spec}.json`` records. Each spec with one gets a second bar under
        its CR1 interval: the bootstrap CI (vermillion, with end caps), the CR1 bar moving up
        by :data:`BOOTSTRAP_OFFSET` and the bootstrap bar sitting as far below the row's tick.
        An unbounded side runs to the edge of the panel and ends in an arrowhead. A legend at
        the top names both intervals. Without results the figure is exactly as before.

    Returns
    -------
    matplotlib.figure.Figure
        The coefficient markers of each panel are the ``Line2D`` with gid ``"coef"``, the CIs
        the ``LineCollection`` with gid ``"ci"``; the bootstrap CIs the ``LineCollection`` with
        gid ``"bootstrap_ci"``, their finite ends the ``Line2D`` ``"bootstrap_cap"`` and the
        arrowheads of unbounded sides ``"bootstrap_open"``.
    """
    from matplotlib.lines import Line2D

    if bootstrap is not None and not isinstance(bootstrap, dict):
        bootstrap = {b["spec"]: b for b in bootstrap}
    rows = coefficient_rows(estimates, labels=labels, sd=sd, bootstrap=bootstrap)
    boot_colour = OKABE_ITO["vermillion"]
    any_boot = any(r["boot_lo"] is not None for r in rows)
    tables = list(dict.fromkeys(r["table"] for r in rows))
    counts = [sum(r["table"] == t for r in rows) for t in tables]
    row_height = 0.22 if any_boot else 0.16
    height = 0.45 + sum(row_height * n + 0.32 for n in counts) + (0.2 if any_boot else 0.0)
    with _style():
        fig = _new_figure(height)
        axes = fig.subplots(
            len(tables), 1, squeeze=False, gridspec_kw={"height_ratios": [n + 1.2 for n in counts]}
        )[:, 0]
        for ax, table, n in zip(axes, tables, counts, strict=True):
            tr = [r for r in rows if r["table"] == table]
            bt = [r for r in tr if r["boot_lo"] is not None]
            y = [
                r["position"] - (BOOTSTRAP_OFFSET if r["boot_lo"] is not None else 0.0) for r in tr
            ]
            ax.axvline(0.0, color="0.45", lw=0.7, ls=(0, (3, 2)), zorder=1)
            ax.hlines(
                y,
                [r["lo"] for r in tr],
                [r["hi"] for r in tr],
                color=OKABE_ITO["blue"],
                lw=1.1,
                zorder=2,
                gid="ci",
            )
            (pt,) = ax.plot(
                [r["coef"] for r in tr], y, "o", ms=3.2, color=OKABE_ITO["black"], zorder=3
            )
            pt.set_gid("coef")
            ticks = [r["position"] for r in tr]
            ax.set_yticks(ticks, [r["label"] for r in tr])
            ax.set_ylim(n - 0.5, -0.5)
            ax.tick_params(axis="y", length=0)
            ax.spines["left"].set_visible(False)
            ax.grid(axis="x", color="0.9", lw=0.5)
            ax.set_axisbelow(True)
            if bt:  # the finite bootstrap ends count for the panel's scale
                ends = [
                    (v, r["position"])
                    for r in bt
                    for v in (r["boot_lo"], r["boot_hi"])
                    if math.isfinite(v)
                ]
                if ends:
                    ax.update_datalim(ends)
                    ax.autoscale_view(scaley=False)
            lo, hi = ax.get_xlim()  # keep the zero line in view
            ax.set_xlim(min(lo, -0.05 * (hi - lo)), max(hi, 0.05 * (hi - lo)))
            if bt:
                _draw_bootstrap(ax, bt, boot_colour)
            ax.set_title(TABLE_TITLES.get(_table_key(table)[1], f"Table {table}"), pad=2)
        axes[-1].set_xlabel(
            "standardised effect, SD(y) per SD(x), with 95 % CI\n(each panel has its own scale)"
            if sd is not None
            else "coefficient, y units per x unit, with 95 % CI\n(each panel has its own scale)"
        )
        if any_boot:
            handles = [
                Line2D(
                    [],
                    [],
                    color=OKABE_ITO["blue"],
                    lw=1.1,
                    marker="o",
                    ms=3.2,
                    mfc=OKABE_ITO["black"],
                    mec=OKABE_ITO["black"],
                    label="coefficient, CR1 95 % CI (cluster-robust)",
                ),
                Line2D(
                    [],
                    [],
                    color=boot_colour,
                    lw=1.1,
                    marker="|",
                    ms=3.5,
                    mew=1.0,
                    label=_bootstrap_legend(bootstrap),
                ),
            ]
            fig.legend(handles=handles, loc="outside upper center", ncol=1, handlelength=1.8)
        _save(fig, pdf_path, png_path)
    return fig


def _draw_bootstrap(ax, rows, colour) -> None:
    """The bootstrap CIs of one panel, below each row's tick: bars clipped to the panel's
    x-range (fixed before this is called), caps at finite ends, arrowheads at unbounded ones."""
    xmin, xmax = ax.get_xlim()
    yb = [r["position"] + BOOTSTRAP_OFFSET for r in rows]
    ax.hlines(
        yb,
        [max(r["boot_lo"], xmin) for r in rows],
        [min(r["boot_hi"], xmax) for r in rows],
        color=colour,
        lw=1.1,
        zorder=2,
        gid="bootstrap_ci",
    )
    caps = [
        (v, y)
        for r, y in zip(rows, yb, strict=True)
        for v in (r["boot_lo"], r["boot_hi"])
        if math.isfinite(v)
    ]
    if caps:
        (cap,) = ax.plot(
            [c[0] for c in caps],
            [c[1] for c in caps],
            "|",
            ms=3.5,
            mew=1.0,
            color=colour,
            zorder=3,
        )
        cap.set_gid("bootstrap_cap")
    for side, edge, marker in ((-1, xmin, "<"), (1, xmax, ">")):
        open_y = [
            y
            for r, y in zip(rows, yb, strict=True)
            if math.isinf(r["boot_lo" if side < 0 else "boot_hi"])
        ]
        if open_y:
            (arrow,) = ax.plot(
                [edge] * len(open_y),
                open_y,
                marker,
                ms=3.0,
                color=colour,
                zorder=3,
                clip_on=False,
            )
            arrow.set_gid("bootstrap_open")
    ax.set_xlim(xmin, xmax)


# --------------------------------------------------------------------------------------------
# 2. Trends by region
# --------------------------------------------------------------------------------------------


def region_year_means(
    df,
    variables=("Nqp", "Resil"),
    *,
    region: str = "region",
    year: str = "year",
    entity: str | None = "city_code",
) -> dict:
    """Unweighted mean of each variable by region and year (pure; unit-tested).

    Returns
    -------
    dict
        ``years`` (sorted int array), ``regions`` (:data:`REGIONS` present in the data first,
        then any others sorted), ``means[var][region]`` (array over ``years``, NaN where a
        region has no finite value that year), ``n_entities[region]`` (distinct ``entity``
        values, or None without that column).
    """
    import numpy as np

    reg = np.asarray([("" if v is None else str(v)) for v in _column(df, region)], dtype=object)
    yr = np.asarray(_column(df, year), dtype=float)
    ok = np.isfinite(yr) & (reg != "")
    years = np.unique(yr[ok]).astype(int)
    present = set(reg[ok])
    regions = [r for r in REGIONS if r in present] + sorted(present - set(REGIONS))
    ent = _column(df, entity) if entity is not None and entity in df else None
    means = {}
    for var in variables:
        x = np.asarray(_column(df, var), dtype=float)
        means[var] = {}
        for r in regions:
            m = np.full(len(years), np.nan)
            for k, t in enumerate(years):
                sel = ok & (reg == r) & (yr == t) & np.isfinite(x)
                if sel.any():
                    m[k] = x[sel].mean()
            means[var][r] = m
    n_ent = {
        r: (len(set(ent[ok & (reg == r)].tolist())) if ent is not None else None) for r in regions
    }
    return {"years": years, "regions": regions, "means": means, "n_entities": n_ent}


def trends_by_region(analysis_df, pdf_path, png_path, *, variables=("Nqp", "Resil")):
    """Mean Nqp and mean Resil by year for the four regions, two panels.

    Parameters
    ----------
    analysis_df : DataFrame or dict of arrays
        The analysis panel; needs ``region``, ``year`` and the variables (``city_code`` for the
        city counts in the legend, if present).
    pdf_path, png_path : path-like
    variables : the two variables, left and right panel

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    data = region_year_means(analysis_df, variables)
    titles = {"Nqp": "Nqp (new quality productivity)", "Resil": "Resil (economic resilience)"}
    extra = iter(_EXTRA_STYLES)
    styles = {r: _REGION_STYLE.get(r) or next(extra, ("0.4", "o")) for r in data["regions"]}
    with _style():
        fig = _new_figure(1.2 + 1.45 * len(variables))
        axes = fig.subplots(len(variables), 1, sharex=True, squeeze=False)[:, 0]
        for ax, var in zip(axes, variables, strict=True):
            for r in data["regions"]:
                colour, marker = styles[r]
                n = data["n_entities"][r]
                ax.plot(
                    data["years"],
                    data["means"][var][r],
                    color=colour,
                    marker=marker,
                    ms=2.4,
                    lw=1.0,
                    label=r.capitalize() + (f" ({n} cities)" if n is not None else ""),
                )
            ax.set_title(titles.get(var, var), pad=2)
            ax.set_ylabel("mean index value\n(dimensionless)")
            ax.xaxis.set_major_locator(MaxNLocator(nbins=7, integer=True))
            ax.grid(axis="y", color="0.9", lw=0.5)
            ax.set_axisbelow(True)
        axes[-1].set_xlabel("year")
        handles, labs = axes[0].get_legend_handles_labels()
        fig.legend(
            handles, labs, loc="outside upper center", ncol=2, handlelength=1.8, columnspacing=1.2
        )
        _save(fig, pdf_path, png_path)
    return fig


# --------------------------------------------------------------------------------------------
# 3. Entropy weights
# --------------------------------------------------------------------------------------------

_LEVELS_UP = ("tertiary", "secondary", "primary")
_ACRONYMS = {"gdp": "GDP", "cod": "COD", "so2": "SO₂", "rd": "R&D"}


def pretty_name(identifier: str) -> str:
    """``gdp_per_capita`` -> ``GDP per capita`` (the CSV's ``name`` column is Chinese, which
    the bundled DejaVu font cannot draw)."""
    words = [_ACRONYMS.get(w, w) for w in str(identifier).split("_")]
    if words and words[0] == words[0].lower():
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def weight_layers(weights_df) -> dict:
    """Criterion-layer totals and measure weights of ``nqp_weights.csv`` (pure; unit-tested).

    Parameters
    ----------
    weights_df : DataFrame or list of dict
        Columns ``scope, level, id, parent, weight``. With a ``pooled`` scope those rows are
        used; otherwise (``by_year`` index: one scope per year) each weight is the mean over
        the scopes.

    Returns
    -------
    dict
        ``scope_note`` (str), ``criteria`` (list of (id, weight) in file order),
        ``measures`` (list of (criterion id, measure id, weight), grouped by criterion in
        criterion order, descending weight within a group, ties by id). Weights are shares of
        the index (the measures sum to 1). A criterion's total is its ``criterion`` row if the
        file has one, else the sum of its measures.
    """
    records = weights_df.to_dict("records") if hasattr(weights_df, "to_dict") else list(weights_df)
    scopes = list(dict.fromkeys(str(r["scope"]) for r in records))
    if "pooled" in scopes:
        use, note = [r for r in records if str(r["scope"]) == "pooled"], "pooled weights"
    else:
        use = records
        note = (
            f"mean over {len(scopes)} yearly weight sets ({min(scopes)}–{max(scopes)})"
            if len(scopes) > 1
            else f"weights of scope {scopes[0]}"
        )
    acc: dict[tuple, list] = {}
    for r in use:
        key = (str(r["level"]), str(r["id"]), str(r["parent"]))
        acc.setdefault(key, []).append(float(r["weight"]))
    mean = {k: sum(v) / len(v) for k, v in acc.items()}
    parent = {lvl: {i: p for (lv, i, p) in mean if lv == lvl} for lvl in _LEVELS_UP}
    criteria = {i: w for (lv, i, _), w in mean.items() if lv == "criterion"}
    measures = [(i, p, w) for (lv, i, p), w in mean.items() if lv == "measure"]
    if not measures:
        raise ValueError("the weights have no 'measure' rows")
    out_m = []
    for mid, p, w in measures:
        for lvl in _LEVELS_UP:  # walk up one level at a time (ids repeat across levels)
            p = parent[lvl].get(p, p)
        if criteria and p not in criteria:
            raise ValueError(
                f"measure {mid!r} does not lead to a criterion-layer indicator (ends at {p!r})"
            )
        out_m.append((p, mid, w))
    order = list(criteria) or list(dict.fromkeys(c for c, _, _ in out_m))
    totals = {c: criteria.get(c, sum(w for cc, _, w in out_m if cc == c)) for c in order}
    out_m.sort(key=lambda t: (order.index(t[0]), -t[2], t[1]))
    return {"scope_note": note, "criteria": [(c, totals[c]) for c in order], "measures": out_m}


def entropy_weights_plot(weights_df, pdf_path, png_path):
    """Entropy weights by layer: criterion totals (top) and measures by criterion (bottom).

    Parameters
    ----------
    weights_df : DataFrame or list of dict
        ``results/indices/nqp_weights.csv`` (see :func:`weight_layers` for the scopes).
    pdf_path, png_path : path-like

    Returns
    -------
    matplotlib.figure.Figure
        Bars carry gids ``criterion`` and ``measure``.
    """
    layers = weight_layers(weights_df)
    crit = layers["criteria"]
    colour = {c: _CRITERION_COLOURS[k % len(_CRITERION_COLOURS)] for k, (c, _) in enumerate(crit)}
    # measure panel: one bar per measure, groups separated by a gap of 0.6 rows
    ys, y, prev = [], 0.0, None
    for c, _, _ in layers["measures"]:
        if prev is not None and c != prev:
            y += 0.6
        ys.append(y)
        y += 1.0
        prev = c
    n_m = len(ys)
    height = 0.9 + 0.16 * len(crit) + 0.115 * n_m + 0.05 * len(crit)
    with _style():
        fig = _new_figure(height)
        ax_c, ax_m = fig.subplots(2, 1, gridspec_kw={"height_ratios": [len(crit) + 1.6, y + 1.6]})
        yc = list(range(len(crit)))
        ax_c.barh(
            yc,
            [100 * w for _, w in crit],
            color=[colour[c] for c, _ in crit],
            height=0.65,
            gid="criterion",
        )
        for k, (_, w) in enumerate(crit):
            ax_c.text(100 * w, k, f" {100 * w:.1f} %", va="center", ha="left", fontsize=6)
        ax_c.set_yticks(yc, [pretty_name(c) for c, _ in crit])
        ax_c.set_ylim(len(crit) - 0.5, -0.5)
        ax_c.set_xlim(0, 100 * max(w for _, w in crit) * 1.25)
        ax_c.set_title(f"Criterion layers ({layers['scope_note']})", pad=2)
        ax_c.set_xlabel("weight (% of the Nqp index)")
        ax_m.barh(
            ys,
            [100 * w for _, _, w in layers["measures"]],
            color=[colour[c] for c, _, _ in layers["measures"]],
            height=0.75,
            gid="measure",
        )
        ax_m.set_yticks(ys, [pretty_name(m) for _, m, _ in layers["measures"]])
        ax_m.set_ylim(ys[-1] + 0.6, -0.6)
        ax_m.set_title("Measures, by criterion layer", pad=2)
        ax_m.set_xlabel("weight (% of the Nqp index)")
        for ax in (ax_c, ax_m):
            ax.tick_params(axis="y", length=0)
            ax.spines["left"].set_visible(False)
            ax.grid(axis="x", color="0.9", lw=0.5)
            ax.set_axisbelow(True)
        _save(fig, pdf_path, png_path)
    return fig


# --------------------------------------------------------------------------------------------
# 4. Propensity-score overlap
# --------------------------------------------------------------------------------------------


def silverman_bandwidth(x) -> float:
    """Silverman's rule of thumb, ``0.9 · min(sd, IQR/1.349) · n^(−1/5)`` (Silverman 1986, 3.31)."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    q75, q25 = np.percentile(x, [75, 25]) if x.size else (0.0, 0.0)
    spread = min(sd, (q75 - q25) / 1.349) if q75 > q25 else sd
    return 0.9 * spread * x.size**-0.2 if spread > 0 else 0.01


#: Kernel evaluations per block of :func:`weighted_kde` (256 KB of float64 per temporary).
_KDE_BLOCK = 32_768


def weighted_kde(x, weights, grid, bandwidth: float):
    """Gaussian kernel density of ``x`` with weights, reflected at 0 and 1 (scores live there).

    ``f(g) = Σ_i w_i [φ((g − x_i)/h) + φ((g + x_i)/h) + φ((g − 2 + x_i)/h)] / (h Σ_i w_i)``;
    on [0, 1] it integrates to 1 for any x in [0, 1].
    """
    import numpy as np

    x = np.asarray(x, dtype=float)
    w = np.asarray(weights, dtype=float)
    g = np.asarray(grid, dtype=float)[:, None]
    if x.size == 0 or not np.sum(w) > 0:
        return np.zeros(g.shape[0])
    h = float(bandwidth)
    k = np.zeros((g.shape[0], x.size))
    mirrors = (x[None, :], -x[None, :], (2.0 - x)[None, :])
    # a block of grid points at a time, so that the temporaries stay in the CPU cache (several
    # times faster than whole-grid arrays); every element is computed as before, so the result
    # is the same to the bit
    rows = max(1, _KDE_BLOCK // x.size)
    for start in range(0, g.shape[0], rows):
        gb, kb = g[start : start + rows], k[start : start + rows]
        for mirror in mirrors:
            z = (gb - mirror) / h
            kb += np.exp(-0.5 * z * z)
    return (k @ w) / (h * math.sqrt(2.0 * math.pi) * np.sum(w))


def overlap_densities(
    pscore, treated, weight, support, *, n_grid: int = 401, bandwidth=None
) -> dict:
    """Score densities of treated and controls before and after matching (pure; unit-tested).

    Parameters
    ----------
    pscore, treated, support : arrays per row (``Matching.pscore``, ``.treated``, ``.support``;
        NaN outside the matching sample)
    weight : array per row, the ATT weight (``Matching.att_weight``: 1 for treated on support,
        the accumulated weight ``W_j`` for controls, 0 otherwise)
    n_grid : grid points
    bandwidth : float, optional; default Silverman's rule on all scores of the sample

    Returns
    -------
    dict
        ``grid, bandwidth``; densities ``before_treated, before_control`` (all treated / all
        controls of the sample, unweighted), ``after_treated`` (treated on support),
        ``after_control`` (controls weighted by ``weight``); counts ``n_treated, n_control,
        n_treated_on_support, n_control_matched``; weighted means ``mean_*`` of the score.
    """
    import numpy as np

    p = np.asarray(pscore, dtype=float)
    t = np.asarray(treated, dtype=float)
    w = np.asarray(weight, dtype=float)
    s = np.asarray(support, dtype=float)
    ok = np.isfinite(p) & np.isfinite(t)
    h = float(bandwidth) if bandwidth is not None else silverman_bandwidth(p[ok])
    lo, hi = max(0.0, float(p[ok].min()) - 3 * h), min(1.0, float(p[ok].max()) + 3 * h)
    grid = np.linspace(lo, hi, n_grid)
    groups = {
        "before_treated": (ok & (t == 1), None),
        "before_control": (ok & (t == 0), None),
        "after_treated": (ok & (t == 1) & (s == 1), None),
        "after_control": (ok & (t == 0) & (w > 0), w),
    }
    out = {"grid": grid, "bandwidth": h}
    for name, (sel, wt) in groups.items():
        ww = np.ones(int(sel.sum())) if wt is None else wt[sel]
        out[name] = weighted_kde(p[sel], ww, grid, h)
        out[f"mean_{name}"] = float(np.sum(ww * p[sel]) / np.sum(ww)) if sel.any() else math.nan
    out["n_treated"] = int(groups["before_treated"][0].sum())
    out["n_control"] = int(groups["before_control"][0].sum())
    out["n_treated_on_support"] = int(groups["after_treated"][0].sum())
    out["n_control_matched"] = int(groups["after_control"][0].sum())
    return out


def pscore_overlap(
    df,
    covariates,
    treat,
    method,
    pdf_path,
    png_path,
    *,
    outcome=None,
    treatment_rule=None,
    year: str = "year",
    **match_options,
):
    """Propensity-score densities of treated and controls before/after one matcher.

    Parameters
    ----------
    df : DataFrame or dict of arrays
    covariates : list of column names (the workflow: the eight controls)
    treat : column name: a 0/1 treatment, or with ``treatment_rule`` the variable it is built
        from (the workflow: ``"Nqp"``)
    method : ``"nearest" | "radius" | "kernel"``
    pdf_path, png_path : path-like
    outcome : optional outcome column; rows where it is missing leave the sample, as in the
        estimation (psmatch2's ``markout``)
    treatment_rule : None, ``"above_yearly_median"`` or ``"above_median"``
        (:func:`nqp_resilience.estimation.matching.treatment_indicator`, medians by ``year``)
    year : the year column for ``"above_yearly_median"``
    **match_options : passed to :func:`nqp_resilience.estimation.matching.match`
        (``caliper, bandwidth, common_support, ties, model, kernel, pscore`` — ``pscore`` to plot
        precomputed scores)

    Returns
    -------
    (matplotlib.figure.Figure, dict)
        The figure and the :func:`overlap_densities` it draws.
    """
    import numpy as np
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from nqp_resilience.estimation.matching import match, treatment_indicator

    cols = list(dict.fromkeys([*covariates, *([outcome] if outcome else [])]))
    data = {c: np.asarray(_column(df, c), dtype=float) for c in cols}
    if treatment_rule is None:
        data["_treated"] = np.asarray(_column(df, treat), dtype=float)
    else:
        groups = _column(df, year) if treatment_rule == "above_yearly_median" else None
        data["_treated"] = treatment_indicator(
            np.asarray(_column(df, treat), dtype=float), groups, treatment_rule
        )
    m = match(data, "_treated", list(covariates), method, outcome=outcome, **match_options)
    dens = overlap_densities(m.pscore, m.treated, m.att_weight, m.support)
    opts = m.options
    detail = ""
    if method == "radius":
        detail = f", caliper {opts['caliper']:g}"
    elif method == "kernel":
        detail = f", h = {opts['bandwidth']:g}"
    elif opts.get("caliper") is not None:
        detail = f", caliper {opts['caliper']:g}"
    after_title = f"After {METHOD_NAMES.get(method, method)} matching"
    if detail:  # the panel is ~1.6 in wide: about 36 characters of the 6.5 pt bold title
        after_title += detail if len(after_title + detail) <= 36 else "\n(" + detail[2:] + ")"
    t_col, c_col = OKABE_ITO["vermillion"], OKABE_ITO["blue"]
    with _style():
        fig = _new_figure(2.3)
        axes = fig.subplots(1, 2, sharey=True)
        panels = (
            (
                axes[0],
                "Before matching",
                "before",
                f"Treated (n = {dens['n_treated']})",
                f"Controls (n = {dens['n_control']})",
            ),
            (
                axes[1],
                after_title,
                "after",
                f"Treated on support (n = {dens['n_treated_on_support']} of {dens['n_treated']})",
                f"Matched controls (n = {dens['n_control_matched']}, weighted)",
            ),
        )
        g = dens["grid"]
        for ax, title, key, lab_t, lab_c in panels:
            ax.fill_between(g, dens[f"{key}_treated"], color=t_col, alpha=0.15, lw=0)
            ax.plot(
                g, dens[f"{key}_treated"], color=t_col, lw=1.1, label=lab_t, gid=f"{key}_treated"
            )
            ax.plot(
                g,
                dens[f"{key}_control"],
                color=c_col,
                lw=1.1,
                ls=(0, (4, 1.5)),
                label=lab_c,
                gid=f"{key}_control",
            )
            ax.set_title(title, pad=2, fontsize=6.5)
            ax.set_xlabel("propensity score")
            ax.set_xlim(g[0], g[-1])
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.legend(
                loc="upper left",
                bbox_to_anchor=(0.0, -0.28),
                fontsize=5.8,
                handlelength=1.8,
                borderaxespad=0.0,
            )
        axes[0].set_ylabel("density")
        axes[0].set_ylim(bottom=0)
        _save(fig, pdf_path, png_path)
    return fig, dens


def pscore_overlap_for_spec(df, spec: dict, control_variables, pdf_path, png_path):
    """:func:`pscore_overlap` for a ``psm_fe`` spec of the registry, exactly as it is estimated.

    Same sample and treatment as ``specs._psm_fe``: the spec's sample filter, the treatment
    from ``psm.treatment_variable`` (default Nqp) by ``psm.treatment_rule`` (default above the
    yearly median) on the filtered rows, the spec's controls as covariates, the dependent
    variable as outcome (rows missing it or a control leave the sample), logit scores and the
    spec's ``method, caliper, bandwidth, common_support, ties``.
    """
    import numpy as np

    from nqp_resilience.estimation.specs import apply_sample, spec_columns, spec_controls

    controls = spec_controls(spec, list(control_variables))
    data = {c: np.asarray(_column(df, c)) for c in spec_columns(spec, list(control_variables))}
    mask = apply_sample(data, spec.get("sample", []))
    data = {k: v[mask] for k, v in data.items()}
    opts = spec["psm"]
    return pscore_overlap(
        data,
        controls,
        opts.get("treatment_variable", "Nqp"),
        opts["method"],
        pdf_path,
        png_path,
        outcome=spec["dependent"],
        treatment_rule=opts.get("treatment_rule", "above_yearly_median"),
        caliper=opts.get("caliper"),
        bandwidth=opts.get("bandwidth", 0.06),
        common_support=opts.get("common_support", True),
        ties=opts.get("ties", False),
    )
