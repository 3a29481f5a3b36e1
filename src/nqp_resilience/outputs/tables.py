"""LaTeX tables (docs/tables.md): Tables 1-7, the PSM balance table, the replication table and
the wild bootstrap table (Table 8).

Inputs: the estimate records ``results/estimates/{spec}.json`` (read by
:func:`nqp_resilience.estimation.record.read_estimate`; any mapping with their keys), the wild
bootstrap results ``results/bootstrap/{spec}.json`` (:func:`read_bootstrap`), the spec
registry entries of one table (``config.yaml: specs``, registry order), the entropy weights
``results/indices/nqp_weights.csv``, the indicator system ``resources/indicators.yaml``,
``resources/published.yaml``, a label file ``resources/labels/labels_{en,zh}.yaml`` and the
jinja2 templates in ``resources/templates/``.
Outputs: the text of one ``.tex`` file per table (a ``table`` float with caption and label,
ready for ``\\input``) and of a standalone ``tables.tex`` that inputs them all.

Layout. All number formatting happens here, in :func:`fmt_number` and the helpers built on it
(:func:`stars`, :func:`fmt_coef`, :func:`fmt_se`, :func:`fmt_estimate`); the templates receive
finished LaTeX cells and only arrange them. Estimates (coefficients and their standard errors)
get adaptive decimals (:func:`estimate_decimals`): ``tables.decimals`` is the minimum, raised
until the coefficient and its SE each show :data:`SIGNIFICANT_DIGITS` significant digits, so a
nonzero estimate never prints as ``0.000``. Label values are LaTeX fragments (``R$^2$``); a name
that has no label is printed verbatim through :func:`latex_escape`. The templates use LaTeX-safe
jinja2 delimiters: ``((* block *))``, ``((( variable )))``, ``((= comment =))``.

LaTeX requirements: ``booktabs`` (Debian: texlive-latex-recommended), ``array``, ``tabularx``
and ``graphicx`` (texlive-latex-base); for Chinese labels ``ctex`` under XeLaTeX
(texlive-lang-chinese, texlive-xetex). See ``docs/tables.md``.

Importing this module is cheap: jinja2 and PyYAML are imported inside the functions that use
them, and pandas not at all.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation.record import BOOTSTRAP_METHODS, read_bootstrap

#: Default significance thresholds for one, two and three stars (10 %, 5 %, 1 %).
DEFAULT_STARS = (0.10, 0.05, 0.01)

#: Template file of each table (in the template folder).
TEMPLATES = {
    1: "table1.tex.j2",
    2: "table2.tex.j2",
    3: "table3.tex.j2",
    4: "table4.tex.j2",
    5: "table5.tex.j2",
    6: "table6.tex.j2",
    7: "table7.tex.j2",
    8: "table8.tex.j2",
    "psm_balance": "psm_balance.tex.j2",
    "replication": "replication.tex.j2",
}

#: Significant digits an estimate and its standard error show at least (adaptive decimals).
SIGNIFICANT_DIGITS = 2

#: Most decimals an estimate gets; a nonzero value that would need more for its significant
#: digits is printed in scientific notation instead (``5.3\times10^{-8}``).
MAX_DECIMALS = 6

#: Regression tables: one ``table{n}.tex.j2`` template each, one column per spec of that table.
ESTIMATE_TABLES = (3, 4, 5, 6, 7)

#: Tables that print the regression constant (the paper shows it in Table 3 only).
CONSTANT_TABLES = frozenset({3})

_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


# --------------------------------------------------------------------------- formatting


def latex_escape(text) -> str:
    """Escape the characters LaTeX treats specially, so ``text`` prints verbatim.

    ``& % $ # _ { }`` get a backslash; ``~ ^ \\`` become ``\\textasciitilde{}``,
    ``\\textasciicircum{}`` and ``\\textbackslash{}``; ``< > |`` (which OT1 fonts print as
    other glyphs) become ``\\textless{}``, ``\\textgreater{}`` and ``\\textbar{}``.
    """
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text))


def estimate_decimals(
    values, minimum: int = 3, significant: int = SIGNIFICANT_DIGITS, cap: int = MAX_DECIMALS
) -> int:
    """Decimals that give every nonzero value at least ``significant`` significant digits.

    For a value x the digits needed are d(x) = significant − 1 − ⌊log10 |x|⌋ (0.065 needs 3
    for two significant digits, 0.0055 needs 4, 0.000053 needs 6); the result is
    max(``minimum``, d(x) over the values), capped at max(``cap``, ``minimum``). Zero, None,
    NaN and infinite values need nothing.
    """
    d = minimum
    for v in values:
        if v is None:
            continue
        v = abs(float(v))
        if v == 0 or math.isnan(v) or math.isinf(v):
            continue
        d = max(d, significant - 1 - math.floor(math.log10(v)))
    return min(d, max(cap, minimum))


def fmt_number(
    x,
    decimals: int = 3,
    *,
    thousands: bool = False,
    latex: bool = True,
    significant: int | None = None,
) -> str:
    """Format one number for a table cell (the one formatting function of the tables).

    Parameters
    ----------
    x : float, int or None
        The value; ``None`` and NaN give the empty string (an empty cell).
    decimals : int
        Digits after the decimal point (rounded half to even on the binary value, as Python's
        ``format`` does); with ``significant`` the minimum.
    thousands : bool
        Group thousands: ``2{,}760`` in LaTeX (the braces stop math mode adding space after the
        comma), ``2,760`` otherwise.
    latex : bool
        LaTeX output: a true minus sign ``$-$``; otherwise the Unicode minus U+2212.
    significant : int, optional
        Raise the decimals (see :func:`estimate_decimals`) so that a nonzero value shows this
        many significant digits; a value that would need more than :data:`MAX_DECIMALS` (or
        ``decimals``, if larger) is printed in scientific notation, ``$5.3\\times10^{-8}$``
        (plain text ``5.3e-08``), so it never reads as zero.

    Without ``significant`` a value that rounds to zero prints without a sign (``0.000``, never
    ``-0.000``).
    """
    if x is None:
        return ""
    if isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0:
        raise ValueError(f"decimals must be a non-negative integer, got {decimals!r}")
    value = float(x)
    if math.isnan(value):
        return ""
    minus = "$-$" if latex else "\u2212"
    if math.isinf(value):
        return (minus if value < 0 else "") + (r"$\infty$" if latex else "\u221e")
    scientific = False
    if significant is not None:
        needed = estimate_decimals([value], decimals, significant, cap=10**6)
        decimals = min(needed, max(MAX_DECIMALS, decimals))
        scientific = needed > decimals  # the cap would cost significant digits
    body = format(abs(value), f"{',' if thousands else ''}.{decimals}f")
    nonzero = any(c in "123456789" for c in body)
    if scientific:
        mantissa, exponent = format(value, f".{max(significant - 1, 0)}e").split("e")
        if not latex:
            return f"{mantissa.replace('-', chr(0x2212))}e{exponent}"
        return f"${mantissa}\\times10^{{{int(exponent)}}}$"
    if latex and thousands:
        body = body.replace(",", "{,}")
    return (minus if value < 0 and nonzero else "") + body


def _check_thresholds(thresholds) -> tuple[float, ...]:
    out = tuple(float(t) for t in thresholds)
    if any(not 0 < t < 1 for t in out) or len(set(out)) != len(out):
        raise ValueError(f"star thresholds must be distinct numbers in (0, 1), got {thresholds!r}")
    return tuple(sorted(out, reverse=True))


def stars(p, thresholds=DEFAULT_STARS, *, latex: bool = True) -> str:
    """Significance stars for a p-value: one star per threshold that ``p`` is strictly below.

    With the default (0.10, 0.05, 0.01): ``p < 0.10`` gives ``*``, ``p < 0.05`` ``**``,
    ``p < 0.01`` ``***`` (Stata ``esttab`` convention; ``p = 0.05`` exactly gets one star). In
    LaTeX the stars are set as a superscript, ``$^{**}$``. No p-value, no stars.
    """
    th = _check_thresholds(thresholds)
    if p is None or math.isnan(float(p)):
        return ""
    n = sum(float(p) < t for t in th)
    if n == 0:
        return ""
    return f"$^{{{'*' * n}}}$" if latex else "*" * n


def fmt_coef(
    coef,
    p=None,
    decimals: int = 3,
    thresholds=DEFAULT_STARS,
    *,
    latex: bool = True,
    significant: int | None = SIGNIFICANT_DIGITS,
) -> str:
    """A coefficient with its stars: ``0.065$^{***}$``, ``$-$0.109$^{**}$``; ``decimals`` is the
    minimum, raised for ``significant`` digits (:func:`fmt_number`; ``None`` keeps it fixed)."""
    cell = fmt_number(coef, decimals, latex=latex, significant=significant)
    return cell + stars(p, thresholds, latex=latex) if cell else ""


def fmt_se(
    se, decimals: int = 3, *, latex: bool = True, significant: int | None = SIGNIFICANT_DIGITS
) -> str:
    """A standard error in parentheses, ``(0.019)``; empty when there is none. Decimals as in
    :func:`fmt_coef`."""
    cell = fmt_number(se, decimals, latex=latex, significant=significant)
    return f"({cell})" if cell else ""


def fmt_estimate(
    coef, se, p=None, decimals: int = 3, thresholds=DEFAULT_STARS, *, latex: bool = True
) -> tuple[str, str]:
    """The coefficient cell and the SE cell of one estimate, with the same decimals.

    The decimals are :func:`estimate_decimals` of the pair: at least ``decimals``, and enough
    for the coefficient and the SE to show :data:`SIGNIFICANT_DIGITS` significant digits each
    (−0.0000527 with SE 0.0000389 prints ``$-$0.000053`` and ``(0.000039)``; 0.065 with SE
    0.019 stays ``0.065`` and ``(0.019)``).
    """
    d = estimate_decimals([coef, se], decimals)
    return (fmt_coef(coef, p, d, thresholds, latex=latex), fmt_se(se, d, latex=latex))


def _percent(t: float) -> str:
    return f"{t * 100:.4f}".rstrip("0").rstrip(".")


def star_legend(thresholds, labels) -> str:
    """The star note, e.g. ``$^{*}$, $^{**}$ and $^{***}$: p < 10\\%, 5\\% and 1\\%``.

    The wording comes from the label file: ``notes.stars`` with the placeholders ``<stars>`` and
    ``<levels>``, joined with ``notes.list_sep`` and ``notes.list_last``.
    """
    th = _check_thresholds(thresholds)
    sep, last = _label(labels, "notes", "list_sep"), _label(labels, "notes", "list_last")

    def join(items):
        return items[0] if len(items) == 1 else sep.join(items[:-1]) + last + items[-1]

    marks = join([f"$^{{{'*' * (i + 1)}}}$" for i in range(len(th))])
    levels = join([_percent(t) + r"\%" for t in th])
    return _label(labels, "notes", "stars").replace("<stars>", marks).replace("<levels>", levels)


# --------------------------------------------------------------------------- labels


def load_labels(labels) -> dict:
    """The label mapping: a dict as given, or the YAML file at the path ``labels``."""
    if isinstance(labels, dict):
        return labels
    from nqp_resilience.data.io import read_yaml

    data = read_yaml(labels)
    if not isinstance(data, dict):
        raise ConfigError(
            "(file)",
            "a label file must be a mapping of sections",
            source=str(labels),
            hint="see resources/labels/labels_en.yaml",
        )
    return {**data, "_source": str(labels)}


def _label(labels, section, key, default=None) -> str:
    """``labels[section][key]``; a missing required label is a user error naming the file."""
    value = (labels.get(section) or {}).get(key)
    if value is None:
        if default is not None:
            return default
        raise ConfigError(
            f"{section}.{key}",
            "label missing",
            source=labels.get("_source", "labels"),
            hint="every label of resources/labels/labels_en.yaml must be present",
        )
    return str(value)


def var_label(labels, name: str) -> str:
    """Label of a variable; ``D_x_Nqp`` without its own label becomes ``D $\\times$ Nqp``."""
    mapping = labels.get("variables") or {}
    if name in mapping:
        return str(mapping[name])
    if "_x_" in name:
        left, right = name.split("_x_", 1)
        return f"{var_label(labels, left)} $\\times$ {var_label(labels, right)}"
    return latex_escape(name)


def _yes_no(labels, flag: bool) -> str:
    return _label(labels, "rows", "included" if flag else "excluded")


#: A non-default control set of at most this many variables is named in its cell; a larger
#: one reads "Custom (k)" and is listed in the table note.
CONTROLS_NAMED_MAX = 2


def controls_cell(labels, used, default=None, spec_controls=None) -> tuple[str, str | None]:
    """The "Controls" cell of one column and, for a larger custom set, its list for the note.

    ``used`` are the controls of the estimate; ``default`` the configured default set
    (``config.yaml: control_variables``). "Yes" (``rows.included``) only for exactly the default
    set, "No" (``rows.excluded``) for none; otherwise the variables' labels (up to
    :data:`CONTROLS_NAMED_MAX` of them, e.g. "GDP, GOV") or ``rows.controls_custom`` with the
    number, "Custom (3)", and the list returned for the note. Without ``default`` the spec's
    ``controls: true`` marks the default set.
    """
    used = list(used or [])
    if not used:
        return _yes_no(labels, False), None
    is_default = set(used) == set(default) if default is not None else spec_controls is True
    if is_default:
        return _yes_no(labels, True), None
    names = [var_label(labels, v) for v in used]
    if len(used) <= CONTROLS_NAMED_MAX:
        return ", ".join(names), None
    return _label(labels, "rows", "controls_custom", "Custom (<n>)").replace(
        "<n>", str(len(used))
    ), ", ".join(names)


# --------------------------------------------------------------------------- rendering


def _environment(template_dir):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        block_start_string="((*",
        block_end_string="*))",
        variable_start_string="(((",
        variable_end_string=")))",
        comment_start_string="((=",
        comment_end_string="=))",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )


def render_template(template_dir, name: str, **context) -> str:
    """Render ``name`` from ``template_dir`` with ``context``; a trailing newline is ensured."""
    text = _environment(template_dir).get_template(name).render(**context)
    return text if text.endswith("\n") else text + "\n"


def _notes(labels, key, thresholds=None, extra=()) -> str:
    parts = [str(n) for n in extra]
    note = (labels.get("tables", {}).get(key) or {}).get("notes")
    if note:
        parts.insert(0, str(note).strip())
    if thresholds is not None:
        parts.append(star_legend(thresholds, labels))
    return " ".join(p for p in parts if p)


def _caption(labels, key) -> str:
    table = (labels.get("tables") or {}).get(key) or {}
    if "caption" not in table:
        raise ConfigError(
            f"tables.{key}.caption", "label missing", source=labels.get("_source", "labels")
        )
    return str(table["caption"])


# --------------------------------------------------------------------------- Tables 3-7


def _term(est: dict, name: str):
    """(coef, se, p) of one term of an estimate record."""
    if name == est.get("regressor"):
        return est.get("coef"), est.get("se"), est.get("p")
    params, bse = est.get("params") or {}, est.get("bse") or {}
    p = ((est.get("extra") or {}).get("p_values") or {}).get(name)
    return params.get(name), bse.get(name), p


def _instruments(spec: dict, est: dict) -> list[str]:
    inst = (est.get("extra") or {}).get("instruments") or spec.get("instrument") or []
    return [inst] if isinstance(inst, str) else list(inst)


def _psm_method(spec: dict, est: dict) -> str:
    return (est.get("extra") or {}).get("psm_method") or (spec.get("psm") or {}).get(
        "method", "nearest"
    )


def _columns(specs, estimates, labels) -> list[dict]:
    """One column per spec; an ``iv_fe`` spec gives two (first stage, second stage)."""
    cols = []
    for spec in specs:
        sid = spec["id"]
        if sid not in estimates:
            raise KeyError(
                f"no estimate for spec {sid!r}: the table rule must take "
                f"results/estimates/{sid}.json as input"
            )
        est = estimates[sid]
        title = (labels.get("spec_titles") or {}).get(sid)
        base = {"spec": sid, "est": est, "title": title, "entry": spec}
        if spec.get("estimator", est.get("estimator")) == "iv_fe":
            inst = _instruments(spec, est)
            group = (
                _label(labels, "columns", "iv_group")
                + " "
                + ", ".join(var_label(labels, i) for i in inst)
            )
            cols.append(
                {
                    **base,
                    "kind": "iv_first",
                    "group": group,
                    "header": _label(labels, "columns", "iv_first"),
                    "dependent": var_label(labels, est["regressor"]),
                    "instruments": inst,
                }
            )
            cols.append(
                {
                    **base,
                    "kind": "iv_second",
                    "group": group,
                    "header": _label(labels, "columns", "iv_second"),
                    "dependent": var_label(labels, est["dependent"]),
                }
            )
        elif spec.get("estimator", est.get("estimator")) == "psm_fe":
            method = _psm_method(spec, est)
            cols.append(
                {
                    **base,
                    "kind": "psm",
                    "group": _label(labels, "columns", "psm_group"),
                    "header": _label(labels, "psm_methods", method, latex_escape(method)),
                    "dependent": var_label(labels, est["dependent"]),
                }
            )
        else:
            main = [spec["regressor"]] if spec.get("interact") and spec.get("regressor") else []
            cols.append(
                {
                    **base,
                    "kind": "ols",
                    "group": "",
                    "header": None,
                    "main": main,
                    "dependent": var_label(labels, est["dependent"]),
                }
            )
    for i, c in enumerate(cols, 1):
        if c["header"] is None:  # IV stages and PSM matchers are named, other columns numbered
            c["header"] = f"({i})"
    return cols


def _groups(cols) -> list[dict]:
    """Runs of adjacent columns with the same group label, with their LaTeX column numbers."""
    groups: list[dict] = []
    for i, c in enumerate(cols):
        position = i + 2  # column 1 holds the row labels
        if groups and groups[-1]["label"] == c["group"]:
            groups[-1]["span"] += 1
            groups[-1]["end"] = position
        else:
            groups.append({"label": c["group"], "span": 1, "start": position, "end": position})
    return groups


def estimates_table_context(
    table_number: int,
    specs: list[dict],
    estimates: dict[str, dict],
    labels,
    decimals: int = 3,
    stars=DEFAULT_STARS,
    show_constant: bool | None = None,
    control_variables=None,
    bootstrap: dict[str, dict] | None = None,
) -> dict:
    """Template variables of a regression table (Tables 3-7); see :func:`render_estimates_table`."""
    labels = load_labels(labels)
    thresholds = _check_thresholds(stars)
    specs = [s for s in specs if int(s.get("table", table_number)) == int(table_number)]
    if not specs:
        raise ValueError(f"table {table_number}: no specs given")
    cols = _columns(specs, estimates, labels)
    bootstrap = _matching_bootstraps(cols, bootstrap or {})
    if show_constant is None:
        show_constant = int(table_number) in CONSTANT_TABLES
    n = len(cols)

    # coefficient rows: terms in order of first appearance
    terms: list[str] = []
    shown: list[dict] = []
    for c in cols:
        est = c["est"]
        if c["kind"] == "iv_first":
            cell = {}
            extra = est.get("extra") or {}
            inst = c["instruments"]
            p = extra.get("first_stage_F_p") if len(inst) == 1 else None
            for name in inst:
                fs = (extra.get("first_stage") or {}).get(est["regressor"]) or {}
                coef = (fs.get("coef") or {}).get(
                    name, extra.get("first_stage_coef") if len(inst) == 1 else None
                )
                se = (fs.get("se") or {}).get(
                    name, extra.get("first_stage_se") if len(inst) == 1 else None
                )
                cell[name] = (coef, se, p)
        else:
            names = [*c.get("main", []), est["regressor"]]
            cell = {name: _term(est, name) for name in names}
        shown.append(cell)
    # regressors first (a main effect before its interaction), excluded instruments after them
    for first_stage in (False, True):
        for c, cell in zip(cols, shown, strict=True):
            if (c["kind"] == "iv_first") == first_stage:
                terms += [name for name in cell if name not in terms]
    coef_rows = []
    for name in terms:
        coefs, ses, boots = [], [], []
        for c, cell in zip(cols, shown, strict=True):
            coef, se, p = cell.get(name, (None, None, None))
            c_cell, se_cell = fmt_estimate(coef, se, p, decimals, thresholds)
            coefs.append(c_cell)
            ses.append(se_cell)
            boot = bootstrap.get(c["spec"]) if c["kind"] != "iv_first" else None
            shows = boot is not None and boot["regressor"] == name
            boots.append(fmt_bootstrap_p(boot["bootstrap_p"], decimals) if shows else "")
        coef_rows.append(
            {
                "label": var_label(labels, name),
                "coefs": coefs,
                "ses": ses,
                "boots": boots if any(boots) else [],
            }
        )
    if show_constant:
        consts = [
            _term(c["est"], "_cons") if c["kind"] != "iv_first" else (None, None, None)
            for c in cols
        ]
        if any(v[0] is not None for v in consts):
            cells = [fmt_estimate(co, se, p, decimals, thresholds) for co, se, p in consts]
            coef_rows.append(
                {
                    "label": _label(labels, "rows", "constant"),
                    "coefs": [c for c, _ in cells],
                    "ses": [se for _, se in cells],
                    "boots": [],
                }
            )

    def row(key, values):
        return {"label": _label(labels, "rows", key), "cells": values}

    iv_rows, stat_rows = [], []
    if any(c["kind"] == "iv_first" for c in cols):

        def iv(c, f):
            return f(c["est"].get("extra") or {}) if c["kind"] == "iv_first" else ""

        iv_rows = [
            row(
                "kp_lm",
                [
                    iv(
                        c,
                        lambda x: fmt_coef(
                            x.get("kp_lm"), x.get("kp_lm_p"), decimals, thresholds, significant=None
                        ),
                    )
                    for c in cols
                ],
            ),
            row("kp_f", [iv(c, lambda x: fmt_number(x.get("kp_f"), decimals)) for c in cols]),
            row(
                "stock_yogo",
                [
                    iv(c, lambda x: fmt_number((x.get("stock_yogo") or {}).get("10%"), decimals))
                    for c in cols
                ],
            ),
        ]
    controls, custom_controls = [], []
    for c in cols:
        cell, listed = controls_cell(
            labels, c["est"].get("controls"), control_variables, c["entry"].get("controls")
        )
        controls.append(cell)
        if listed and (c["header"], listed) not in custom_controls:
            custom_controls.append((c["header"], listed))
    stat_rows.append(row("controls", controls))
    if any(c["est"].get("trends") for c in cols):
        stat_rows.append(
            row("trends", [_yes_no(labels, bool(c["est"].get("trends"))) for c in cols])
        )
    fe = [set(c["est"].get("fixed_effects") or []) for c in cols]
    stat_rows.append(row("city_fe", [_yes_no(labels, "city" in f) for f in fe]))
    stat_rows.append(row("year_fe", [_yes_no(labels, "year" in f) for f in fe]))
    stat_rows.append(
        row("nobs", [fmt_number(c["est"].get("nobs"), 0, thousands=True) for c in cols])
    )
    if any(c["kind"] == "psm" for c in cols):
        stat_rows.append(
            row(
                "matched_n",
                [
                    fmt_number((c["est"].get("extra") or {}).get("matched_n"), 0, thousands=True)
                    if c["kind"] == "psm"
                    else ""
                    for c in cols
                ],
            )
        )
    stat_rows.append(
        row(
            "r2",
            [
                "" if c["kind"] == "iv_first" else fmt_number(c["est"].get("r2"), decimals)
                for c in cols
            ],
        )
    )

    groups = _groups(cols)
    key = f"table{int(table_number)}"
    # the SE note names city clustering only when every column clusters by city
    clustered = all(c["est"].get("cluster", "city") == "city" for c in cols)
    se_note = _label(labels, "notes", "se" if clustered else "se_other")
    extra_notes = []
    if bootstrap:
        extra_notes.append(bootstrap_brackets_note(list(bootstrap.values()), labels))
    if any(c["kind"] == "iv_first" for c in cols):
        extra_notes.append(_label(labels, "notes", "iv"))
    if any(c["kind"] == "psm" for c in cols):
        extra_notes.append(_label(labels, "notes", "psm"))
    for header, listed in custom_controls:
        extra_notes.append(
            _label(labels, "notes", "controls_custom", "Controls of <column>: <list>.")
            .replace("<column>", header)
            .replace("<list>", listed)
        )
    return {
        "table": key,
        "caption": _caption(labels, key),
        "label": f"tab:{key}",
        "ncols": n,
        "groups": groups if any(g["label"] for g in groups) else [],
        "headers": [c["header"] for c in cols],
        "titles": [c["title"] or "" for c in cols] if any(c["title"] for c in cols) else [],
        "dependents": [c["dependent"] for c in cols],
        "variable_header": _label(labels, "rows", "variable"),
        "coef_rows": coef_rows,
        "iv_rows": iv_rows,
        "stat_rows": stat_rows,
        "notes": _notes(labels, key, thresholds, [se_note] + extra_notes),
        "notes_label": _label(labels, "notes", "label"),
    }


def render_estimates_table(
    table_number: int,
    specs: list[dict],
    estimates: dict[str, dict],
    labels,
    template_dir,
    decimals: int = 3,
    stars=DEFAULT_STARS,
    show_constant: bool | None = None,
    template: str | None = None,
    control_variables=None,
    bootstrap: dict[str, dict] | None = None,
) -> str:
    """The ``.tex`` text of regression Table 3, 4, 5, 6 or 7.

    Parameters
    ----------
    table_number : int
        3 to 7; selects the template ``table{n}.tex.j2`` and the caption ``tables.table{n}``.
    specs : list of dict
        Registry entries (``config.yaml: specs``) of this table, in registry order; one column
        per spec, two for an ``iv_fe`` spec (first stage: coefficient on the excluded
        instrument; second stage). Entries of other tables are ignored.
    estimates : dict
        ``{spec id: estimate record}`` (the JSON of ``results/estimates/{spec}.json``).
    labels : dict or path
        Label mapping or label file (``resources/labels/labels_en.yaml``).
    template_dir : path
        Folder of the templates.
    decimals : int
        Digits of R² and the IV statistics, and the minimum for coefficients and SEs (more where
        needed for two significant digits, see :func:`fmt_estimate`).
    stars : sequence of float
        Significance thresholds, one star each (default 0.10, 0.05, 0.01; strict ``p <``).
    show_constant : bool, optional
        Print the constant row; default only in Table 3, as the paper does.
    control_variables : list of str, optional
        The default control set (``config.yaml: control_variables``): the "Controls" row says
        "Yes" for it, "No" without controls and names any other set (:func:`controls_cell`).
    bootstrap : dict, optional
        ``{spec id: wild bootstrap result}`` (``results/bootstrap/{spec}.json``, see
        :func:`read_bootstrap`; ``tables.bootstrap_p``). Each coefficient a result tests (its
        ``regressor``; the second stage of an IV spec) gets the bootstrap p-value in brackets
        under its SE, ``[0.012]``, and the notes say what the brackets are. Without it (the
        default) the table is exactly the table without a bootstrap.

    Rows: the core regressor (for an ``interact`` spec the main effect, then ``D × regressor``),
    SEs in parentheses below; the constant (Table 3); for IV columns KP rk LM (stars from its
    p-value), KP rk Wald F and the Stock–Yogo 10 % maximal-IV-size critical value; controls,
    city-specific trends (when a spec has them), city and year fixed effects, N, matched N
    (PSM columns), R² (overall; blank for a first stage).
    """
    context = estimates_table_context(
        table_number,
        specs,
        estimates,
        labels,
        decimals,
        stars,
        show_constant,
        control_variables,
        bootstrap,
    )
    return render_template(template_dir, template or TEMPLATES[int(table_number)], **context)


# --------------------------------------------------------------------------- wild bootstrap

#: The wild bootstrap table (``table8.tex.j2``): one row per bootstrapped spec.
BOOTSTRAP_TABLE = 8


def read_bootstraps(paths) -> dict[str, dict]:
    """Bootstrap results by spec id, in the order of ``paths``."""
    out: dict[str, dict] = {}
    for path in paths:
        record = read_bootstrap(path)
        out[str(record["spec"])] = record
    return out


def fmt_bootstrap_p(p, decimals: int = 3) -> str:
    """A bootstrap p-value in brackets, ``[0.012]``; empty when there is none."""
    cell = fmt_number(p, decimals)
    return f"[{cell}]" if cell else ""


def _matching_bootstraps(cols, bootstrap: dict) -> dict[str, dict]:
    """The bootstrap results of the table's columns, checked against their estimates: the same
    tested regressor and coefficient (a result of another regression is an error, not a
    silently wrong p-value). Results of specs the table does not show are ignored."""
    out = {}
    for c in cols:
        boot = bootstrap.get(c["spec"])
        if boot is None or c["spec"] in out:
            continue
        est = c["est"]
        coef, boot_coef = est.get("coef"), boot.get("coef")
        same = boot.get("regressor") == est.get("regressor") and (
            coef is None
            or boot_coef is None
            or math.isclose(float(coef), float(boot_coef), rel_tol=1e-6, abs_tol=1e-12)
        )
        if not same:
            raise ValueError(
                f"the bootstrap result of spec {c['spec']!r} tests {boot.get('regressor')!r} = "
                f"{boot_coef!r}, but its estimate is {est.get('regressor')!r} = {coef!r}: "
                "the bootstrap result is out of date; rerun it"
            )
        out[c["spec"]] = boot
    return out


def _common(records, key: str):
    """The one value of ``key`` that every record shares; ValueError naming the specs if not."""
    values = list(dict.fromkeys(r.get(key) for r in records))
    if len(values) != 1:
        by = ", ".join(f"{r.get('spec')}: {r.get(key)!r}" for r in records)
        raise ValueError(
            f"the bootstrap results differ in {key!r} ({by}); one table shows one setting of "
            "the bootstrap section, so rerun the bootstrap of every spec"
        )
    return values[0]


def _join(labels, items: list[str]) -> str:
    sep, last = _label(labels, "notes", "list_sep"), _label(labels, "notes", "list_last")
    return items[0] if len(items) == 1 else sep.join(items[:-1]) + last + items[-1]


def _bootstrap_weights(labels, weights) -> str:
    return _label(labels, "bootstrap_weights", str(weights), latex_escape(weights))


def _methods_in(records) -> list[str]:
    present = {str(r["method"]) for r in records}
    return [m for m in BOOTSTRAP_METHODS if m in present]


def bootstrap_brackets_note(records, labels) -> str:
    """The note of a regression table that shows bootstrap p-values in brackets.

    From ``notes.bootstrap_p`` with ``<methods>`` (e.g. "WCR" or "WCR and WRE"), ``<weights>``,
    ``<draws>`` (the draws requested; enumeration noted) and ``<p_type>`` (the p-value
    convention, ``bootstrap_p_types``).
    """
    labels = load_labels(labels)
    records = list(records)
    methods = _join(labels, [_label(labels, "bootstrap_methods", m) for m in _methods_in(records)])
    weights = _join(
        labels,
        [_bootstrap_weights(labels, w) for w in dict.fromkeys(r["weights"] for r in records)],
    )
    requested = list(dict.fromkeys(int(r["reps_requested"]) for r in records))
    draws = _label(labels, "bootstrap", "draws").replace(
        "<n>", _join(labels, [fmt_number(n, 0, thousands=True) for n in requested])
    )
    if any(r.get("enumerated") for r in records):
        draws += _label(labels, "bootstrap", "enumerated_where")
    p_type = _common(records, "p_type")
    return (
        _label(labels, "notes", "bootstrap_p")
        .replace("<methods>", methods)
        .replace("<weights>", weights)
        .replace("<draws>", draws)
        .replace("<p_type>", _label(labels, "bootstrap_p_types", str(p_type)))
    )


def _bootstrap_row_label(record, labels, main_pair) -> str:
    """The column and a short name: ``(3) ADM $\\times$ Nqp`` for an interaction, ``(1) Une on
    Nqp`` for another outcome or regressor than the most common pair, else the spec id without
    its family prefix (``(4) drop municipalities``); a descriptive column (``IV Relief``) alone.
    The same rule as the coefficient plot's row labels."""
    col = str(record.get("column") or "").strip()
    if col and not col.startswith("("):
        return latex_escape(col)
    dep, reg = str(record["dependent"]), str(record["regressor"])
    if "_x_" in reg:
        short = var_label(labels, reg)
    elif (dep, reg) != main_pair:
        short = (
            _label(labels, "bootstrap", "regression")
            .replace("<y>", var_label(labels, dep))
            .replace("<x>", var_label(labels, reg))
        )
    else:
        sid = str(record["spec"])
        for prefix in ("rob_", "mech_", "het_", "iv_"):
            if sid.startswith(prefix):
                sid = sid[len(prefix) :]
                break
        short = latex_escape(sid.replace("_", " "))
    return f"{latex_escape(col)} {short}".strip()


def _bootstrap_ci(ci, decimals: int) -> str:
    """``[lo, hi]``; an unbounded endpoint (``None`` or infinite) is ``$-\\infty$`` or
    ``$\\infty$`` with an open parenthesis."""

    def finite(v):
        return v is not None and math.isfinite(float(v))

    lo, hi = ci
    left = f"[{fmt_number(lo, decimals)}" if finite(lo) else r"($-\infty$"
    right = f"{fmt_number(hi, decimals)}]" if finite(hi) else r"$\infty$)"
    return f"{left}, {right}"


def _table_order(table) -> tuple:
    try:
        return (0, int(table))
    except (TypeError, ValueError):
        return (1, 0)


def bootstrap_table_context(records, labels, decimals: int = 3) -> dict:
    """Template variables of the wild bootstrap table; see :func:`render_bootstrap_table`."""
    from collections import Counter

    labels = load_labels(labels)
    records = list(records.values()) if isinstance(records, dict) else list(records)
    if not records:
        raise ValueError("bootstrap table: no bootstrap results given")
    level = float(_common(records, "level"))
    p_type = str(_common(records, "p_type"))
    null = _common(records, "null_value")
    main_pair = Counter((str(r["dependent"]), str(r["regressor"])) for r in records).most_common(1)[
        0
    ][0]
    rows: list[dict] = []
    for table in sorted(dict.fromkeys(r.get("table") for r in records), key=_table_order):
        n = _table_order(table)[1]
        heading = (
            _label(labels, "table8_header", "table").replace("<n>", str(n))
            if n in ESTIMATE_TABLES
            else _label(labels, "table8_header", "other")
        )
        rows.append({"kind": "heading", "label": heading})
        for r in (x for x in records if x.get("table") == table):
            d = estimate_decimals([r["coef"], r["se"]], decimals)
            coef, se = fmt_estimate(r["coef"], r["se"], None, decimals)
            reps = fmt_number(r["reps"], 0, thousands=True)
            rows.append(
                {
                    "kind": "row",
                    "spec": _bootstrap_row_label(r, labels, main_pair),
                    "coef": coef,
                    "se": se[1:-1],
                    "p": fmt_number(r["p"], decimals),
                    "method": _label(labels, "bootstrap_methods", str(r["method"])),
                    "bootstrap_p": fmt_number(r["bootstrap_p"], decimals),
                    "ci": _bootstrap_ci(r["bootstrap_ci"], d),
                    "draws": (
                        _label(labels, "bootstrap", "enumerated").replace("<reps>", reps)
                        if r.get("enumerated")
                        else reps
                    ),
                    "weights": _bootstrap_weights(labels, r["weights"]),
                    "clusters": fmt_number(r["bootstrap_clusters"], 0, thousands=True),
                }
            )
    percent = _percent(level)
    notes = [_label(labels, "bootstrap_method_notes", m) for m in _methods_in(records)]
    notes.append(
        _label(labels, "bootstrap_p_notes", p_type).replace(
            "<null>", format(float(null), ".10g").replace("-", "$-$")
        )
    )
    notes.append(
        _label(labels, "bootstrap", "ci")
        .replace("<level>", percent)
        .replace("<alpha>", _percent(1 - level))
    )
    if any(r.get("enumerated") for r in records):
        notes.append(_label(labels, "bootstrap", "enumerated_note"))
    kinds = list(dict.fromkeys(str(r["bootstrap_cluster"]) for r in records))
    notes.append(
        _label(labels, "bootstrap", "clusters").replace(
            "<clusters>",
            _join(
                labels, [_label(labels, "bootstrap_clusters", k, latex_escape(k)) for k in kinds]
            ),
        )
    )
    notes.append(_label(labels, "bootstrap", "psm"))
    key = f"table{BOOTSTRAP_TABLE}"
    header = {
        k: _label(labels, "table8_header", k)
        for k in (
            "spec",
            "cr1",
            "bootstrap",
            "coef",
            "se",
            "p",
            "method",
            "bootstrap_p",
            "draws",
            "weights",
            "clusters",
        )
    }
    header["ci"] = _label(labels, "table8_header", "ci").replace("<level>", percent)
    return {
        "table": key,
        "caption": _caption(labels, key),
        "label": f"tab:{key}",
        "header": header,
        "rows": rows,
        "notes": _notes(labels, key, None, notes),
        "notes_label": _label(labels, "notes", "label"),
    }


def render_bootstrap_table(
    records, labels, template_dir, decimals: int = 3, template: str | None = None
) -> str:
    """The ``.tex`` text of Table 8: the wild cluster bootstrap of every bootstrapped spec.

    Parameters
    ----------
    records : list of dict, or dict spec id -> dict
        Wild bootstrap results (``results/bootstrap/{spec}.json``, :func:`read_bootstrap`), in
        registry order; rows are grouped by the table of the spec (heading rows), in the given
        order within a table.
    labels, template_dir, decimals
        As in :func:`render_estimates_table`.

    Columns: the spec (its column and a short name), the CR1 coefficient, SE and p-value (as in
    Tables 3-7), the method (WCR, WCU or WRE), the bootstrap p-value, the bootstrap confidence
    interval at ``level`` by test inversion (an unbounded endpoint prints as ∞), the draws
    ("enumerated" when every weight vector was used), the weights and the number of bootstrap
    clusters. The notes name the methods, the p-value convention, the null, the interval, the
    clusters, and why the PSM specs have no bootstrap. The results must share ``level``,
    ``p_type`` and ``null_value`` (one bootstrap configuration); otherwise ``ValueError``.
    """
    return render_template(
        template_dir,
        template or TEMPLATES[BOOTSTRAP_TABLE],
        **bootstrap_table_context(records, labels, decimals),
    )


def unshown_specs(specs, template_dir="resources/templates", results_dir="results") -> list[str]:
    """One warning per spec that no LaTeX table shows, naming the spec, its table and the fix.

    Table 2 shows the ``describe`` spec ``desc_stats``; Tables 3-7 (:data:`ESTIMATE_TABLES`,
    each with a template ``table{n}.tex.j2`` in ``template_dir``) show the regression specs
    whose ``table`` is n. Any other spec, e.g. ``table: 8``, is still estimated (its JSON is
    written) but appears in no table, which is easy to miss. Table 8 has a template too, but it
    is the wild bootstrap table (:func:`render_bootstrap_table`), which shows no estimates: a
    spec with ``table: 8`` is warned about like any other.
    """
    out = []
    for spec in specs:
        sid, n = spec["id"], int(spec["table"])
        template = Path(template_dir) / f"table{n}.tex.j2"
        where = f"its estimate is still written to {results_dir}/estimates/{sid}.json"
        if spec.get("estimator") == "describe":
            if n == 2 and sid == "desc_stats":
                continue
            out.append(
                f"spec '{sid}' (describe, table {n}) is shown in no table: Table 2 shows the spec "
                f"'desc_stats' only; {where}"
            )
        elif n not in ESTIMATE_TABLES:
            if n in (1, 2):
                why = (
                    f"Table {n} shows "
                    f"{'the indicator system' if n == 1 else 'the spec desc_stats'} only"
                )
            elif n == BOOTSTRAP_TABLE:
                why = (
                    f"Table {n} ({template}) is the wild bootstrap table: it lists the bootstrap "
                    "p-values of the specs in bootstrap.specs, not estimates"
                )
            else:
                why = f"there is no template {template}"
            out.append(
                f"spec '{sid}' has table: {n}, but no table shows it "
                f"({why}; regression specs appear "
                f"in Tables {ESTIMATE_TABLES[0]}-{ESTIMATE_TABLES[-1]}); {where}. "
                f"To show it, set its "
                f"table to one of {', '.join(map(str, ESTIMATE_TABLES))}"
            )
        elif not template.exists():
            out.append(
                f"spec '{sid}' has table: {n}, but the template {template} is missing, so no table "
                f"shows it; {where}"
            )
    return out


# --------------------------------------------------------------------------- Table 1


def _weights_by_node(weights_rows) -> tuple[dict, int]:
    """Mean weight per (level, id) over the scopes (one scope when pooled, one per year when
    by_year)."""
    sums: dict[tuple[str, str], float] = {}
    counts: dict[tuple[str, str], int] = {}
    scopes = set()
    for r in weights_rows:
        key = (str(r["level"]), str(r["id"]))
        scopes.add(str(r.get("scope", "pooled")))
        sums[key] = sums.get(key, 0.0) + float(r["weight"])
        counts[key] = counts.get(key, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}, len(scopes)


def indicator_table_context(
    weights_rows, indicators_path, labels, decimals: int = 3, directions: dict | None = None
) -> dict:
    """Template variables of Table 1; see :func:`render_indicator_table`."""
    from nqp_resilience.indices.indicators import load_indicator_system

    labels = load_labels(labels)
    system = load_indicator_system(indicators_path, directions)
    weights, n_scopes = _weights_by_node(weights_rows)
    names = labels.get("indicators") or {}
    source_names = bool(labels.get("indicator_names_from_source", False))

    def name(level, node_id, source_name):
        if node_id in (names.get(level) or {}):
            return str(names[level][node_id])
        return (
            latex_escape(source_name) if source_names else latex_escape(node_id.replace("_", " "))
        )

    def weight(level, node_id):
        if (level, node_id) not in weights:
            raise KeyError(
                f"no entropy weight for {level} {node_id!r}: "
                "weights file and indicator system differ"
            )
        return fmt_number(weights[(level, node_id)], decimals)

    by_tertiary: dict[str, list] = {}
    for m in system.measures:
        by_tertiary.setdefault(m.path[3], []).append(m)
    rows: list[dict] = []
    seen: set[tuple[str, str]] = set()

    def item(**cells):
        return {
            "kind": "item",
            "secondary": "",
            "indicator": "",
            "direction": "",
            "weight": "",
            **cells,
        }

    for m in system.measures:
        for depth, level in enumerate(("criterion", "primary")):
            node = m.path[depth]
            if (level, node) not in seen:
                seen.add((level, node))
                rows.append(
                    {
                        "kind": level,
                        "name": name(level, node, m.names[depth]),
                        "weight": weight(level, node),
                    }
                )
        secondary = ""
        if ("secondary", m.path[2]) not in seen:
            seen.add(("secondary", m.path[2]))
            secondary = (
                f"{name('secondary', m.path[2], m.names[2])} ({weight('secondary', m.path[2])})"
            )
        tertiary = m.path[3]
        if len(by_tertiary[tertiary]) == 1:
            rows.append(
                item(
                    secondary=secondary,
                    indicator=name("tertiary", tertiary, m.names[3]),
                    direction=_direction(m.direction),
                    weight=weight("measure", m.id),
                )
            )
            continue
        if (
            "tertiary",
            tertiary,
        ) not in seen:  # a composite indicator: its own row, then its measures
            seen.add(("tertiary", tertiary))
            rows.append(
                item(
                    secondary=secondary,
                    indicator=name("tertiary", tertiary, m.names[3]),
                    weight=weight("tertiary", tertiary),
                )
            )
        rows.append(
            item(
                indicator=r"\quad " + name("measure", m.id, m.id),
                direction=_direction(m.direction),
                weight=weight("measure", m.id),
            )
        )
    total = sum(weights.get(("measure", m.id), 0.0) for m in system.measures)
    extra = [_label(labels, "notes", "weights_by_year")] if n_scopes > 1 else []
    return {
        "table": "table1",
        "caption": _caption(labels, "table1"),
        "label": "tab:table1",
        "header": {
            k: _label(labels, "table1_header", k)
            for k in ("secondary", "indicator", "direction", "weight")
        },
        "rows": rows,
        "total_label": _label(labels, "rows", "total"),
        "total": fmt_number(total, decimals),
        "notes": _notes(labels, "table1", None, extra),
        "notes_label": _label(labels, "notes", "label"),
    }


def _direction(d: str) -> str:
    return "$+$" if d == "+" else "$-$"


def render_indicator_table(
    weights_rows,
    indicators_path,
    labels,
    template_dir,
    decimals: int = 3,
    directions: dict | None = None,
    template: str | None = None,
) -> str:
    """The ``.tex`` text of Table 1: the NQP indicator system with its entropy weights.

    Parameters
    ----------
    weights_rows : iterable of dict
        Rows of ``results/indices/nqp_weights.csv`` (keys scope, level, id, weight, ...), e.g.
        ``csv.DictReader``; with ``entropy.scope: by_year`` the table shows the mean over years.
    indicators_path : path
        ``resources/indicators.yaml`` (the tree and the order of the rows).
    labels, template_dir, decimals
        As in :func:`render_estimates_table`.
    directions : dict, optional
        ``config.yaml: entropy.directions`` overrides, so the table prints the directions used.

    One row per measure (a composite tertiary indicator first gets a row of its own with its
    total weight). Weights are global: the measure's share of Nqp; a layer's weight in
    parentheses is its share (the sum over its measures for flat aggregation).
    """
    context = indicator_table_context(weights_rows, indicators_path, labels, decimals, directions)
    return render_template(template_dir, template or TEMPLATES[1], **context)


def read_weights(path) -> list[dict]:
    """Rows of ``nqp_weights.csv`` as dicts (no pandas)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- Table 2


def desc_table_context(desc_record: dict, labels, decimals: int = 3) -> dict:
    """Template variables of Table 2; see :func:`render_desc_table`."""
    labels = load_labels(labels)
    rows = []
    for var, s in (desc_record.get("statistics") or {}).items():
        rows.append(
            {
                "variable": var_label(labels, var),
                "definition": (labels.get("definitions") or {}).get(var, ""),
                "n": fmt_number(s.get("N"), 0, thousands=True),
                **{k: fmt_number(s.get(k), decimals) for k in ("mean", "sd", "min", "max")},
            }
        )
    if not rows:
        raise ValueError("desc_stats record has no 'statistics'")
    return {
        "table": "table2",
        "caption": _caption(labels, "table2"),
        "label": "tab:table2",
        "header": {
            k: _label(labels, "table2_header", k)
            for k in ("variable", "definition", "n", "mean", "sd", "min", "max")
        },
        "rows": rows,
        "notes": _notes(labels, "table2"),
        "notes_label": _label(labels, "notes", "label"),
    }


def render_desc_table(
    desc_record: dict, labels, template_dir, decimals: int = 3, template: str | None = None
) -> str:
    """The ``.tex`` text of Table 2 from ``results/estimates/desc_stats.json``.

    Variables in the record's order (``variables`` of the ``desc_stats`` spec); columns N
    (with thousands separator), mean, SD, min, max; definitions from ``definitions`` in the
    label file.
    """
    return render_template(
        template_dir, template or TEMPLATES[2], **desc_table_context(desc_record, labels, decimals)
    )


# --------------------------------------------------------------------------- PSM balance


def balance_table_context(psm_records: list[dict], labels, decimals: int = 1) -> dict:
    """Template variables of the balance table; see :func:`render_balance_table`."""
    labels = load_labels(labels)
    if not psm_records:
        raise ValueError("balance table: no PSM estimate records given")
    matchers = [
        _label(labels, "psm_methods", _psm_method({}, r), latex_escape(_psm_method({}, r)))
        for r in psm_records
    ]
    balances = [
        {b["variable"]: b for b in (r.get("extra") or {}).get("balance", [])} for r in psm_records
    ]
    variables = list(balances[0])
    rows = []
    for var in variables:
        before = [bal[var]["bias_unmatched"] for bal in balances if var in bal]
        if max(before) - min(before) > 1e-6:
            raise ValueError(
                f"balance table: unmatched bias of {var!r} differs between matchers "
                f"({', '.join(f'{b:.6f}' for b in before)}); they must share one sample"
            )
        rows.append(
            {
                "label": var_label(labels, var),
                "before": fmt_number(before[0], decimals),
                "after": [
                    fmt_number(bal.get(var, {}).get("bias_matched"), decimals) for bal in balances
                ],
            }
        )

    def mean_abs(bal, key):
        vals = [abs(b[key]) for b in bal.values() if b.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    summary = [
        {
            "label": _label(labels, "rows", "mean_abs_bias"),
            "before": fmt_number(mean_abs(balances[0], "bias_unmatched"), decimals),
            "after": [fmt_number(mean_abs(bal, "bias_matched"), decimals) for bal in balances],
        },
        {
            "label": _label(labels, "rows", "matched_n"),
            "before": "",
            "after": [
                fmt_number((r.get("extra") or {}).get("matched_n"), 0, thousands=True)
                for r in psm_records
            ],
        },
    ]
    return {
        "table": "psm_balance",
        "caption": _caption(labels, "psm_balance"),
        "label": "tab:psm_balance",
        "matchers": matchers,
        "header": {
            k: _label(labels, "balance_header", k) for k in ("covariate", "before", "after")
        },
        "rows": rows,
        "summary": summary,
        "notes": _notes(labels, "psm_balance"),
        "notes_label": _label(labels, "notes", "label"),
    }


def render_balance_table(
    psm_records: list[dict], labels, template_dir, decimals: int = 1, template: str | None = None
) -> str:
    """The ``.tex`` text of the PSM balance table (``pstest``-style standardised % bias).

    Parameters
    ----------
    psm_records : list of dict
        The ``psm_fe`` estimate records, one column per matcher in the given order; each has
        ``extra.balance`` (``variable``, ``bias_unmatched``, ``bias_matched``) and
        ``extra.matched_n``. The unmatched bias is one column (the full sample is common to all
        matchers; a difference raises ``ValueError``).
    decimals : int
        Digits of the % bias (default 1, as ``pstest`` prints).
    """
    return render_template(
        template_dir,
        template or TEMPLATES["psm_balance"],
        **balance_table_context(psm_records, labels, decimals),
    )


# --------------------------------------------------------------------------- replication


def replication_table_context(
    published: dict, estimates: dict[str, dict], labels, decimals: int = 3
) -> dict:
    """Template variables of the replication table; see :func:`render_replication_table`."""
    from nqp_resilience.outputs.replication import comparison_rows

    labels = load_labels(labels)
    rows = comparison_rows(published, estimates)
    flag_keys = list((published.get("inconsistencies") or {}).keys())
    for r in rows:
        for f in filter(None, (s.strip() for s in r["flags"].split(","))):
            if f not in flag_keys:
                flag_keys.append(f)
    used = [k for k in flag_keys if any(k in r["flags"].split(", ") for r in rows)]
    letters = {k: chr(ord("a") + i) for i, k in enumerate(used)}
    statistics = labels.get("statistics") or {}

    def number(x, se, is_n, published):
        """A value with its SE. Ours: adaptive decimals (:func:`fmt_estimate`); published: as
        the paper prints them (one significant digit at least, so no invented precision)."""
        if is_n:
            return fmt_number(x, 0, thousands=True)
        if se is None:
            return fmt_number(x, decimals)
        if published:
            d = estimate_decimals([x, se], decimals, significant=1)
            return f"{fmt_number(x, d)} {fmt_se(se, d, significant=None)}"
        value, se_cell = fmt_estimate(x, se, None, decimals)
        return f"{value} {se_cell}"

    out, previous_table, previous_spec = [], None, None
    for r in rows:
        if r["table"] != previous_table:
            out.append(
                {
                    "kind": "heading",
                    "label": _label(labels, "replication_header", "table").replace(
                        "<n>", str(r["table"])
                    ),
                }
            )
            previous_table = r["table"]
        spec = ""
        if (
            r["spec"] != previous_spec
        ):  # the spec and its inconsistency letters on its first row only
            marks = ",".join(
                letters[f] for f in (s.strip() for s in r["flags"].split(",")) if f in letters
            )
            spec = (
                r"\texttt{"
                + latex_escape(r["spec"])
                + "}"
                + (f"$^{{\\mathrm{{{marks}}}}}$" if marks else "")
            )
            previous_spec = r["spec"]
        is_n = r["statistic"] == "N"
        stat = statistics.get(r["statistic"])
        if stat is None:
            stat = var_label(labels, r["statistic"])
        pub = number(r["published"], r["published_se"], is_n, published=True)
        ours = number(r["ours"], r["ours_se"], is_n, published=False)
        out.append(
            {
                "kind": "row",
                "spec": spec,
                "statistic": stat,
                "published": pub,
                "ours": ours,
                "z": fmt_number(r["z"], 2),
            }
        )
    coef_rows = [r for r in rows if r["within_2se"] is not None]
    within = sum(1 for r in coef_rows if r["within_2se"])
    flag_texts = labels.get("flags") or {}
    legend = [
        f"({letters[k]}) "
        + str(flag_texts.get(k) or latex_escape(published["inconsistencies"].get(k, k)))
        for k in used
    ]
    summary = (
        _label(labels, "notes", "replication_summary")
        .replace("<within>", str(within))
        .replace("<total>", str(len(coef_rows)))
    )
    return {
        "table": "replication",
        "caption": _caption(labels, "replication"),
        "label": "tab:replication",
        "header": {
            k: _label(labels, "replication_header", k)
            for k in ("spec", "statistic", "published", "ours", "z")
        },
        "rows": out,
        "notes": " ".join([_notes(labels, "replication"), *legend, summary]).strip(),
        "notes_label": _label(labels, "notes", "label"),
    }


def render_replication_table(
    published: dict,
    estimates: dict[str, dict],
    labels,
    template_dir,
    decimals: int = 3,
    template: str | None = None,
) -> str:
    """The ``.tex`` text of the replication table: published number (SE) vs ours (SE), Δ/SE.

    Rows come from :func:`nqp_resilience.outputs.replication.comparison_rows`
    (``resources/published.yaml`` against the estimate records); the paper's inconsistencies that
    touch a row are marked by a
    letter explained in the notes (short texts from ``flags`` in the label file).
    """
    return render_template(
        template_dir,
        template or TEMPLATES["replication"],
        **replication_table_context(published, estimates, labels, decimals),
    )


# --------------------------------------------------------------------------- document

_PREAMBLE = {
    "en": ["\\documentclass[10pt]{article}"],
    "zh": ["\\documentclass[10pt]{article}", "\\usepackage[UTF8]{ctex}"],
}
# \pdftrailerid{} drops the PDF /ID, which pdfTeX derives from the time and the output path
# (a temporary folder per run): with it, tables.pdf is byte-identical across runs.
_PACKAGES = [
    "\\usepackage{booktabs}",
    "\\usepackage{array}",
    "\\usepackage{tabularx}",
    "\\usepackage{graphicx}",
    "\\ifdefined\\pdftrailerid\\pdftrailerid{}\\fi",
]


def render_document(table_files: list[str], language: str = "en", *, relative_to=None) -> str:
    """A standalone ``tables.tex`` that ``\\input``s every table, in the given order.

    ``language="en"`` compiles with pdflatex; ``"zh"`` loads ``ctex`` and needs XeLaTeX.
    With ``relative_to`` (the folder of ``tables.tex``) the paths are made relative to it;
    otherwise they are written as given. No date or other run-dependent text.
    """
    if language not in _PREAMBLE:
        raise ValueError(f"language must be one of {sorted(_PREAMBLE)}, got {language!r}")
    engine = "xelatex" if language == "zh" else "pdflatex"
    lines = [
        f"% All tables of the replication; compile with {engine}. "
        "Generated by nqp_resilience.outputs.tables.",
        *_PREAMBLE[language],
        *_PACKAGES,
        "",
        "\\begin{document}",
    ]
    for f in table_files:
        path = os.path.relpath(f, relative_to) if relative_to is not None else str(f)
        path = Path(path).as_posix()
        if any(c in path for c in " %#{}\\$&"):
            raise ValueError(f"table path {path!r} contains a character \\input cannot take")
        lines.append(f"\\input{{{path}}}")
    lines += ["\\end{document}", ""]
    return "\n".join(lines)
