"""Cleaning and sample construction (docs/cleaning.md): interim tables -> the city panel.

Inputs: the ingested city-year tables (yearbook years, CNRDS), the city-level static tables,
the national series and the city attribute table. Outputs: the balanced panel (one row per
city-year, canonical variables), the audit of every imputed cell, and the sample log.

Order of operations (each documented in docs/cleaning.md):

1. Build the full city × year grid of the attribute table, so that a city-year absent from
   the extracts counts as missing.
2. Drop, in this order, with the first applicable reason recorded per city: cities changed in
   2011 (configured change types); cities not prefecture-level in every year; cities with no
   observations; cities with more than ``max_missing_share`` of required cells missing
   *before* interpolation.
3. Interpolate within city over years: linear for interior gaps; edges by ``edge``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nqp_resilience.errors import ConfigError

EDGE_METHODS = ("nearest", "linear_extrapolate", "none")
IDENTIFIERS = ["city_code", "city_name", "province_code", "region", "year"]


@dataclass
class SampleOptions:
    """The ``sample`` and ``interpolation`` blocks of the config."""

    years: tuple[int, int]
    drop_changed_2011: bool = True
    changed_2011_types: tuple[str, ...] = ("abolished", "status_change", "boundary_gain")
    drop_partial_period: bool = True
    max_missing_share: float = 0.2
    required_variables: tuple[str, ...] = ()
    edge: str = "nearest"


def _gap_arrays(years, values, edge: str):
    """The checked edge rule's inputs as float arrays, the values to fill (a copy) and the
    methods (all ``""``)."""
    if edge not in EDGE_METHODS:
        raise ValueError(f"edge must be one of {EDGE_METHODS}, got {edge!r}")
    values = np.asarray(values, dtype=float)
    years = np.asarray(years, dtype=float)
    return years, values, values.copy(), np.full(values.shape, "", dtype=object)


def interpolate_series(years: np.ndarray, values: np.ndarray, edge: str = "nearest"):
    """Fill the gaps of one city's series.

    Parameters
    ----------
    years : array of int, sorted ascending
    values : array of float with ``nan`` for missing
    edge : {"nearest", "linear_extrapolate", "none"}
        How to fill before the first and after the last observation. ``linear_extrapolate``
        extends the line through the two nearest observations (nearest value if only one).

    Returns
    -------
    filled : array of float
    method : array of str, ``""`` where the value was observed or left missing, else
        ``"linear_interior"``, ``"nearest_edge"`` or ``"linear_extrapolate"``.
    """
    years, values, filled, method = _gap_arrays(years, values, edge)
    obs = ~np.isnan(values)
    if obs.sum() == 0:
        return filled, method
    ox, oy = years[obs], values[obs]
    interior = ~obs & (years > ox[0]) & (years < ox[-1])
    filled[interior] = np.interp(years[interior], ox, oy)
    method[interior] = "linear_interior"
    before, after = ~obs & (years < ox[0]), ~obs & (years > ox[-1])
    if edge == "nearest":
        filled[before], filled[after] = oy[0], oy[-1]
        method[before | after] = "nearest_edge"
    elif edge == "linear_extrapolate":
        if len(ox) == 1:
            filled[before | after] = oy[0]
            method[before | after] = "nearest_edge"
        else:
            lo = oy[0] + (years[before] - ox[0]) * (oy[1] - oy[0]) / (ox[1] - ox[0])
            hi = oy[-1] + (years[after] - ox[-1]) * (oy[-1] - oy[-2]) / (ox[-1] - ox[-2])
            filled[before], filled[after] = lo, hi
            method[before | after] = "linear_extrapolate"
    return filled, method


def interpolate_rows(years: np.ndarray, values: np.ndarray, edge: str = "nearest"):
    """:func:`interpolate_series` of every row of ``values`` (n_series, n_years) at once, with
    the same values to the bit and the same methods.

    The interior points take numpy's ``interp`` arithmetic: between the observations a and b
    around year x, ``slope * (x - x_a) + y_a`` with ``slope = (y_b - y_a) / (x_b - x_a)``, and
    its fallbacks when that is not a number (``slope * (x - x_b) + y_b``, then ``y_a`` if the
    two values are equal). One row at a time took most of ``build_panel`` on a county panel
    (50,000 series).
    """
    years, values, filled, method = _gap_arrays(years, values, edge)
    if values.size == 0:
        return filled, method
    n_years = values.shape[1]
    obs = ~np.isnan(values)
    pos = np.arange(n_years)
    # the last observation at or before each year, the first at or after it (-1 / n: none)
    prev = np.maximum.accumulate(np.where(obs, pos, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(obs, pos, n_years)[:, ::-1], axis=1)[:, ::-1]
    missing = ~obs
    interior = missing & (prev >= 0) & (nxt < n_years)
    rows, cols = np.nonzero(interior)
    if rows.size:
        a, b = prev[rows, cols], nxt[rows, cols]
        xa, xb, x = years[a], years[b], years[cols]
        ya, yb = values[rows, a], values[rows, b]
        slope = (yb - ya) / (xb - xa)
        with np.errstate(invalid="ignore"):
            out = slope * (x - xa) + ya
            bad = np.isnan(out)
            if bad.any():
                out[bad] = slope[bad] * (x[bad] - xb[bad]) + yb[bad]
                still = np.isnan(out) & (ya == yb)
                out[still] = ya[still]
        filled[rows, cols] = out
        method[rows, cols] = "linear_interior"
    before = missing & (nxt < n_years) & (prev < 0)
    after = missing & (prev >= 0) & (nxt >= n_years)
    if edge == "none" or not (before | after).any():
        return filled, method
    r = np.arange(values.shape[0])
    # the first and last observation of each row (clipped for rows without any, which have
    # neither edge), and their neighbours among the observations
    first = np.minimum(nxt[:, 0], n_years - 1)
    last = np.maximum(prev[:, -1], 0)
    y_first, y_last = values[r, first], values[r, last]
    if edge == "nearest":
        filled[before] = np.broadcast_to(y_first[:, None], values.shape)[before]
        filled[after] = np.broadcast_to(y_last[:, None], values.shape)[after]
        method[before | after] = "nearest_edge"
        return filled, method
    # linear_extrapolate: the line through the two nearest observations (one: its value)
    single = (first == last)[:, None]
    ends = before | after
    flat = ends & single
    filled[flat] = np.broadcast_to(y_first[:, None], values.shape)[flat]
    method[flat] = "nearest_edge"
    lines = ends & ~single
    if lines.any():
        second = nxt[r, np.minimum(first + 1, n_years - 1)]
        before_last = prev[r, np.maximum(last - 1, 0)]
        rb, cb = np.nonzero(before & ~single)
        if rb.size:
            x0, x1 = years[first[rb]], years[second[rb]]
            y0, y1 = values[rb, first[rb]], values[rb, second[rb]]
            filled[rb, cb] = y0 + (years[cb] - x0) * (y1 - y0) / (x1 - x0)
        ra, ca = np.nonzero(after & ~single)
        if ra.size:
            x1, x0 = years[last[ra]], years[before_last[ra]]
            y1, y0 = values[ra, last[ra]], values[ra, before_last[ra]]
            filled[ra, ca] = y1 + (years[ca] - x1) * (y1 - y0) / (x1 - x0)
        method[lines] = "linear_extrapolate"
    return filled, method


def build_panel(
    city_year: list,
    city_static: list,
    national,
    attributes,
    options: SampleOptions,
    variable_order: list[str],
):
    """Assemble, filter and interpolate the city panel.

    Parameters
    ----------
    city_year : list of DataFrame
        Ingested tables keyed by (city_code, year): the yearbook years and the CNRDS files.
    city_static : list of DataFrame
        Ingested tables keyed by city_code (relief, 1984 telephones).
    national : DataFrame
        National series keyed by year.
    attributes : DataFrame
        ``city_attributes.csv`` (see :func:`nqp_resilience.data.cities.attributes_frame`).
    options : SampleOptions
    variable_order : list of str
        Canonical city-year variables in codebook order (the panel's column order).

    Returns
    -------
    panel, audit, sample : DataFrame, DataFrame, DataFrame
        The panel; the imputed cells (city_code, year, variable, method, value); one row per
        attribute-table city with ``kept`` and ``reason``.
    """
    import pandas as pd

    y0, y1 = options.years
    years = np.arange(y0, y1 + 1)
    city_year, city_static, national = (
        [_without_provenance(t) for t in tables] for tables in (city_year, city_static, [national])
    )
    national = national[0]
    merged = _combine(city_year)
    variables = [v for v in variable_order if v in merged.columns]
    required = list(options.required_variables) or variables
    unknown = [v for v in required if v not in variables]
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], variables, n=1)
        raise ConfigError(
            "sample.required_variables",
            f"unknown variable(s) {unknown}",
            hint=(f"did you mean '{close[0]}'? " if close else "")
            + f"canonical city-year variables are: {', '.join(variables)}",
        )

    attrs = attributes.set_index("city_code")
    grid = pd.MultiIndex.from_product([attrs.index.astype(str), years], names=["city_code", "year"])
    data = merged.set_index(["city_code", "year"]).reindex(grid)[variables]

    sample = _sample_decisions(data, attrs, options, required, years)
    keep = sample.loc[sample["kept"], "city_code"].tolist()
    if not keep:
        raise _empty_sample(sample, options)
    data = data.loc[data.index.get_level_values("city_code").isin(keep)].copy()

    # the grid is complete and sorted (city, year): interpolate on a (city, year, variable) array
    cities = data.index.get_level_values("city_code").unique()
    values = data.to_numpy(dtype=float, copy=True).reshape(len(cities), len(years), len(variables))
    # every (city, variable) series as a row of years, all interpolated at once
    series = values.transpose(0, 2, 1).reshape(-1, len(years))
    filled, method = interpolate_rows(years, series, options.edge)
    values = filled.reshape(len(cities), len(variables), len(years)).transpose(0, 2, 1)
    methods = method.reshape(len(cities), len(variables), len(years)).transpose(0, 2, 1)
    data = pd.DataFrame(values.reshape(-1, len(variables)), index=data.index, columns=variables)
    ci, ti, vi = np.nonzero(methods != "")
    audit = pd.DataFrame(
        {
            "city_code": np.asarray(cities)[ci].astype(str),
            "year": years[ti].astype("int64"),
            "variable": np.asarray(variables, dtype=object)[vi].astype(str),
            "method": methods[ci, ti, vi].astype(str),
            "value": values[ci, ti, vi],
        }
    )
    audit = audit.sort_values(["city_code", "year", "variable"], kind="mergesort").reset_index(
        drop=True
    )

    panel = data.reset_index()
    ids = attrs.loc[keep, ["city_name", "province_code", "region"]].reset_index()
    panel = ids.merge(panel, on="city_code", how="right")
    for table in city_static:
        panel = panel.merge(table, on="city_code", how="left")
    nat = national[national["year"].between(y0, y1)]
    panel = panel.merge(nat, on="year", how="left")
    panel = panel[IDENTIFIERS + [c for c in panel.columns if c not in IDENTIFIERS]]
    panel = panel.sort_values(["city_code", "year"], kind="mergesort").reset_index(drop=True)
    panel["year"] = panel["year"].astype("int64")
    return panel, audit, sample


def _without_provenance(table):
    """An ingested table without its raw-file line column (provenance for messages only)."""
    from nqp_resilience.data.ingest import SOURCE_LINE

    return table.drop(columns=[SOURCE_LINE], errors="ignore")


def _combine(tables):
    """One row per city-year: stack tables with the same variables (the yearbook years), then
    outer-join the stacks (yearbook, patents, innovation)."""
    import pandas as pd

    stacks: dict[tuple, list] = {}
    for t in tables:
        stacks.setdefault(tuple(sorted(t.columns)), []).append(t)
    merged = None
    for group in stacks.values():
        block = pd.concat(group, ignore_index=True)
        merged = (
            block if merged is None else merged.merge(block, on=["city_code", "year"], how="outer")
        )
    return merged


def _empty_sample(sample, options: SampleOptions) -> ConfigError:
    """The error when the sample rules keep no city: the counts of the reasons and the fix of
    the most common one."""
    from collections import Counter

    kinds = Counter(_reason_kind(r) for r in sample["reason"])
    counts = "; ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    y0, y1 = options.years
    top = kinds.most_common(1)[0][0] if kinds else ""
    if top == _reason_kind("not a prefecture-level city in every year"):
        hint = (
            "the city attribute table lists each city's first and last year as a prefecture-level "
            f"city (first_year_2010_2021, last_year_2010_2021), and no city covers {y0}–{y1}; for "
            "another period give a unit table that covers it (config key city_attributes; the "
            "simulator writes one to units/city_attributes.csv) or set "
            "sample.drop_partial_period: false"
        )
    elif top == _reason_kind("no observations in the raw extracts"):
        hint = (
            "the raw extracts have no rows for the cities of the attribute table in these years: "
            "check raw_dir, the years of the config and that the city codes match the attribute "
            "table (config key city_attributes)"
        )
    else:
        hint = "see the reasons above and the sample options in config.yaml (sample:)"
    return ConfigError(
        "years",
        f"the sample rules keep no city of the {len(sample)} in the attribute table for "
        f"{y0}–{y1} ({counts})",
        hint=hint,
    )


def _sample_decisions(data, attrs, options: SampleOptions, required, years):
    import pandas as pd

    share = data[required].isna().groupby(level="city_code").mean().mean(axis=1).to_dict()
    any_obs = data[required].notna().any(axis=1).groupby(level="city_code").any().to_dict()
    rows = []
    # plain values by column (a pandas row per city costs about 0.1 ms: 0.3 s on a county panel)
    columns = {c: attrs[c].tolist() for c in attrs.columns}
    for i, code in enumerate(attrs.index.tolist()):
        a = {c: values[i] for c, values in columns.items()}
        reason = ""
        ctype = a.get("changed_2011_type", "")
        if (
            options.drop_changed_2011
            and a["changed_2011"] == 1
            and ctype in options.changed_2011_types
        ):
            reason = (
                f"prefecture-level {'status' if ctype != 'boundary_gain' else 'boundary'} "
                f"changed in 2011 ({ctype})"
            )
        elif options.drop_partial_period and (
            a["first_year_2010_2021"] > years[0] or a["last_year_2010_2021"] < years[-1]
        ):
            reason = (
                f"not a prefecture-level city in every year {years[0]}–{years[-1]} "
                f"(listed {a['first_year_2010_2021']}–{a['last_year_2010_2021']})"
            )
        elif not any_obs.get(code, False):
            reason = "no observations in the raw extracts"
        elif share.get(code, 1.0) > options.max_missing_share:
            reason = (
                f"{share[code]:.1%} of required cells missing before interpolation "
                f"(limit {options.max_missing_share:.0%})"
            )
        rows.append(
            {
                "city_code": str(code),
                "city_name": a["city_name"],
                "province_name": a["province_name"],
                "missing_share": float(share.get(code, 1.0)),
                "kept": reason == "",
                "reason": reason,
            }
        )
    return pd.DataFrame(rows).sort_values("city_code", kind="mergesort").reset_index(drop=True)


def check_panel(panel, required, edge: str, path="panel") -> None:
    """After interpolation with an edge method, no required cell may be missing."""
    from nqp_resilience.errors import DataError

    if edge == "none":
        return
    missing = panel[required].isna()
    if missing.any().any():
        r, c = np.argwhere(missing.to_numpy())[0]
        row = panel.iloc[r]
        raise DataError(
            path,
            "a required cell is still missing after interpolation",
            row=f"city {row['city_code']} {row['city_name']}, year {row['year']}",
            column=required[c],
            hint="the variable is missing in every year for this city; lower "
            "sample.max_missing_share or provide the data",
        )


def sample_report(sample, audit, panel, options: SampleOptions) -> str:
    """The sample log (Markdown): counts, every dropped city and why, imputation summary."""
    dropped = sample[~sample["kept"]]
    lines = [
        "# Sample construction",
        "",
        f"- Study period: {options.years[0]}–{options.years[1]} "
        f"({options.years[1] - options.years[0] + 1} years)",
        f"- Cities in the attribute table: {len(sample)}",
        f"- Cities kept: {int(sample['kept'].sum())}",
        f"- Cities dropped: {len(dropped)}",
        f"- Panel rows (city-years): {len(panel)}",
        f"- Imputed cells: {len(audit)} "
        f"({len(audit) / max(panel.shape[0] * max(panel.shape[1] - len(IDENTIFIERS), 1), 1):.2%}"
        " of panel cells)",
        f"- Edge method: {options.edge}; missing-share limit: {options.max_missing_share:.0%}",
        "",
        "## Dropped cities by reason",
        "",
    ]
    for kind, n in dropped["reason"].map(_reason_kind).value_counts().sort_index().items():
        lines.append(f"- {kind}: {n}")
    lines += [
        "",
        "## Dropped cities",
        "",
        "| city code | city | province | missing share | reason |",
        "|---|---|---|---|---|",
    ]
    for _, r in dropped.iterrows():
        lines.append(
            f"| {r['city_code']} | {r['city_name']} | {r['province_name']} | "
            f"{r['missing_share']:.1%} | {r['reason']} |"
        )
    if len(audit):
        lines += ["", "## Imputed cells by method", ""]
        for m, n in audit["method"].value_counts().sort_index().items():
            lines.append(f"- {m}: {n}")
    return "\n".join(lines) + "\n"


def _reason_kind(reason: str) -> str:
    if "2011" in reason and "changed" in reason:
        return "changed in 2011"
    if "not a prefecture-level city" in reason:
        return "not a city in every year"
    if "no observations" in reason:
        return "no observations"
    return "severely missing"
