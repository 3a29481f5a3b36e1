"""Which observations each specification loses to missing values, and why.

Inputs: the city panel (``results/panel/panel.parquet``, for the time-invariant variables read
from the static files), the analysis panel, and the specification registry. Output: the
spec-sample audit, ``results/audit/spec_samples.{md,csv}``.

A city absent from a static file (``static/relief.csv``, ``static/telephones_1984.csv``) keeps
every other variable, so it stays in the panel and in most specifications, but the instrument
built from that file is missing for it and the IV specification silently runs on fewer cities.
Stata's listwise deletion does the same without a word. This audit names every such city, the
file it is absent from, the specifications it drops out of and the observations each one loses.
"""

from __future__ import annotations

import numpy as np

from nqp_resilience.estimation.specs import apply_sample, spec_columns

#: Columns of the spec-sample table (one row per spec × city × missing variable).
COLUMNS = [
    "spec",
    "city_code",
    "city_name",
    "variable",
    "rows_lost",
    "city_rows_lost",
    "city_rows",
    "years",
    "n_sample",
    "n_complete",
    "city_absent_from",
]


def spec_samples(
    analysis, panel, specs: dict, control_variables: list[str], static_files: dict[str, str]
):
    """Observations each specification loses to missing values, by city and variable.

    Parameters
    ----------
    analysis : DataFrame
        The analysis panel (one row per city-year).
    panel : DataFrame
        The city panel, with the time-invariant variables of the static files.
    specs : dict
        The registry, spec id -> spec (regression specs; ``describe`` specs are skipped).
    control_variables : list of str
        The controls of ``controls: true``.
    static_files : dict
        Canonical static variable -> the raw file it is read from.

    Returns
    -------
    summary : DataFrame
        One row per regression spec: ``spec``, ``n_sample`` (rows passing the sample filter),
        ``n_complete`` (rows with every variable of the spec present; the estimator may drop
        further singleton rows), ``rows_lost``, ``cities_lost`` (cities with no complete row).
    lost : DataFrame
        One row per spec × city × missing variable (:data:`COLUMNS`): ``rows_lost`` rows miss
        that variable, ``city_rows_lost`` of the city's ``city_rows`` rows in the sample miss
        any variable; ``city_absent_from``
        names the static files the city is absent from, if any.
    absent : DataFrame
        One row per kept city absent from a static file: ``city_code``, ``city_name``,
        ``variable``, ``static_file``.
    """
    import pandas as pd

    codes = analysis["city_code"].astype(str).to_numpy()
    years = analysis["year"].to_numpy()
    names = dict(zip(panel["city_code"].astype(str), panel["city_name"], strict=True))
    absent_rows = []
    for var, path in sorted(static_files.items()):
        if var not in panel:
            continue
        miss = panel.loc[panel[var].isna(), "city_code"].astype(str).unique()
        absent_rows += [
            {"city_code": c, "city_name": names.get(c, ""), "variable": var, "static_file": path}
            for c in sorted(miss)
        ]
    absent = pd.DataFrame(
        absent_rows, columns=["city_code", "city_name", "variable", "static_file"]
    )
    absent_files = (
        absent.groupby("city_code")["static_file"]
        .agg(lambda s: ", ".join(sorted(set(s))))
        .to_dict()
    )

    summary, lost = [], []
    for sid, spec in specs.items():
        if spec["estimator"] == "describe":
            continue
        data = {c: analysis[c].to_numpy() for c in analysis.columns}
        in_sample = apply_sample(data, spec.get("sample", []))
        used = [c for c in spec_columns(spec, control_variables) if c not in ("city_code", "year")]
        missing = {c: in_sample & pd.isna(analysis[c]).to_numpy() for c in used}
        any_missing = np.zeros(len(analysis), dtype=bool)
        for m in missing.values():
            any_missing |= m
        complete = in_sample & ~any_missing
        n_sample, n_complete = int(in_sample.sum()), int(complete.sum())
        cities_in = set(codes[in_sample])
        cities_kept = set(codes[complete])
        summary.append(
            {
                "spec": sid,
                "n_sample": n_sample,
                "n_complete": n_complete,
                "rows_lost": n_sample - n_complete,
                "cities_lost": len(cities_in - cities_kept),
            }
        )
        city_lost = pd.Series(codes[in_sample & any_missing]).value_counts().to_dict()
        city_rows = pd.Series(codes[in_sample]).value_counts().to_dict()
        for var, m in missing.items():
            if not m.any():
                continue
            counts = pd.Series(codes[m]).value_counts().sort_index()
            years_of = (
                pd.Series(years[m]).groupby(codes[m]).agg(lambda y: " ".join(map(str, sorted(y))))
            )
            for city, n in counts.items():
                lost.append(
                    {
                        "spec": sid,
                        "city_code": city,
                        "city_name": names.get(city, ""),
                        "variable": var,
                        "rows_lost": int(n),
                        "city_rows_lost": int(city_lost[city]),
                        "city_rows": int(city_rows[city]),
                        "years": years_of[city],
                        "n_sample": n_sample,
                        "n_complete": n_complete,
                        "city_absent_from": absent_files.get(city, ""),
                    }
                )
    lost_df = pd.DataFrame(lost, columns=COLUMNS).sort_values(
        ["spec", "city_code", "variable"], kind="mergesort"
    )
    return pd.DataFrame(summary), lost_df.reset_index(drop=True), absent


#: Cities named in a row of the Markdown summary; more are counted (the CSV lists every one).
MAX_LISTED = 10


def spec_samples_markdown(summary, lost, absent) -> str:
    """The spec-sample audit as Markdown: static-file gaps first, then every spec's N."""
    lines = [
        "# Observations each specification uses",
        "",
        "Rows passing a spec's sample filter, and those with every variable of the spec present "
        "(listwise deletion, as Stata does; the estimator may drop further singleton rows).",
        "",
    ]
    lines += ["## Cities absent from a static file", ""]
    if absent.empty:
        lines += ["None: every city of the panel is in every static file.", ""]
    else:
        lines += [
            "These cities stay in the panel, but every spec that uses a variable built from the "
            "file runs without them:",
            "",
            "| city code | city | absent from | specs without it (rows lost) |",
            "|---|---|---|---|",
        ]
        for (code, name, path), _ in absent.groupby(
            ["city_code", "city_name", "static_file"], sort=True
        ):
            gone = lost[(lost["city_code"] == code) & (lost["city_rows_lost"] == lost["city_rows"])]
            hit = gone.groupby("spec", sort=False)["city_rows_lost"].first()
            specs_text = ", ".join(f"{s} (−{n})" for s, n in hit.items()) or "none"
            lines.append(f"| {code} | {name} | {path} | {specs_text} |")
        lines.append("")
    lines += [
        "## N by specification",
        "",
        "| spec | rows in sample | complete rows | rows lost | cities lost |",
        "|---|---|---|---|---|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r['spec']} | {r['n_sample']} | {r['n_complete']} | {r['rows_lost']} "
            f"| {r['cities_lost']} |"
        )
    if not lost.empty:
        lines += [
            "",
            "## Rows lost, by spec and missing variable",
            "",
            "| spec | variable | rows | cities | years | cities affected |",
            "|---|---|---|---|---|---|",
        ]
        for (sid, var), g in lost.groupby(["spec", "variable"], sort=False):
            yrs = sorted({y for text in g["years"] for y in text.split()})
            who = (
                ", ".join(f"{c} {n}" for c, n in zip(g["city_code"], g["city_name"], strict=True))
                if len(g) <= MAX_LISTED
                else f"{len(g)} cities (all listed in spec_samples.csv)"
            )
            lines.append(
                f"| {sid} | {var} | {int(g['rows_lost'].sum())} | {len(g)} "
                f"| {', '.join(yrs)} | {who} |"
            )
    return "\n".join(lines) + "\n"
