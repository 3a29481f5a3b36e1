"""The analysis panel: every variable the specifications need, its codebook, and Table 2.

Inputs: the city panel, the NQP index, the Nqp1 text measure and the derived variables (with
the imputed-outcome flags from the panel build's imputation audit). Outputs:
``results/panel/analysis.parquet`` (one row per city-year), its Markdown codebook, and the
descriptive statistics of Table 2 as data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nqp_resilience.indices import variables as V
from nqp_resilience.indices.registry import (
    ANALYSIS_VARIABLES,
    DESC_VARIABLES,
    IDENTIFIERS,
    imputed_flag,
    names,
)
from nqp_resilience.indices.registry import BY_NAME as REGISTRY

#: The identifier columns of the analysis panel (from the registry).
IDS = list(IDENTIFIERS)


@dataclass(frozen=True)
class Definition:
    """One row of the analysis codebook."""

    name: str
    definition: str
    formula: str
    unit: str
    sources: str


def definitions(options: dict) -> list[Definition]:
    """Codebook rows, one per non-identifier variable of the registry
    (:data:`~nqp_resilience.indices.registry.ANALYSIS_VARIABLES`, in its order): its definition
    and unit, and the formula and source variables of the configured variant."""
    resil = {
        "relative": "(g_it − g_Nt) / |g_Nt|",
        "difference": "g_it − g_Nt",
        "ratio": "g_it / g_Nt",
    }
    mrd = {
        "employment_recovery": "(E_it/E_i,t−1 − 1) − (E_Nt/E_N,t−1 − 1), E urban-unit employment",
        "national_rebound": "(g_it − g_i,t−1) − (g_Nt − g_N,t−1)",
        "own_rebound": "g_it − g_i,t−1",
    }
    rat = {
        "combined": "½[minmax(1 − ½Σ_k|Y_k/Y − L_k/L|) + minmax(−Σ_k (Y_k/Y) ln((Y_k/L_k)/(Y/L)))]",
        "hamming": "1 − ½Σ_k|Y_k/Y − L_k/L|",
        "theil": "−Σ_k (Y_k/Y) ln((Y_k/L_k)/(Y/L))",
    }
    interact = options["iv"]["relief"]["interact"]
    relief = {"trend": "relief_km × (year − first year)", "none": "relief_km"}.get(
        interact, f"relief_km × {interact.split(':', 1)[-1]}"
    )
    lag = options["iv"]["internet"]["lag"]
    e = options["entropy"]
    ways = options["mechanisms"]["rationalization"]
    inputs = _dependent_inputs(options)
    city_file = "resources/cities/city_attributes.csv"
    # name -> (formula, source variables, and the definition or unit where the configured
    # variant changes the registry's default wording)
    rows = {
        "Resil": (
            resil[options["resil"]["formula"]],
            "gdp_growth, national_gdp_growth",
            {"unit": "fraction"} if options["resil"]["formula"] == "difference" else {},
        ),
        "Nqp": (
            f"Σ_j w_j x'_ij; {e['scope']} scope, {e['aggregation']} aggregation, "
            f"variant {e['variant']}, ε = {e['eps']:g}",
            "27 measures of resources/indicators.yaml",
            {},
        ),
        "Nqp_labourers": ("see Nqp", "Nqp measures", {}),
        "Nqp_objects_of_labour": ("see Nqp", "Nqp measures", {}),
        "Nqp_means_of_labour": ("see Nqp", "Nqp measures", {}),
        "Nqp1": (
            "keyword tokens / non-whitespace characters"
            + (" (province + central report)" if options["nqp1"]["include_central"] else ""),
            "reports/{province}_{year}.txt, resources/nqp_keywords.txt",
            {},
        ),
        "Une": ("U / (U + urban employment)", "registered_unemployed, urban_employment", {}),
        "Mrd": (
            mrd[options["mrd"]["formula"]],
            "urban_employment, national_employment"
            if options["mrd"]["formula"] == "employment_recovery"
            else "gdp_growth, national_gdp_growth",
            {},
        ),
        "GDP": ("ln(Y / P)", "gdp, population", {}),
        "GOV": ("general budget expenditure / Y", "fiscal_expenditure, gdp", {}),
        "IND": ("Σ_k k · Y_k / Σ_k Y_k", "gdp_primary, gdp_secondary, gdp_tertiary", {}),
        "INV": ("fixed-asset investment / Y", "fixed_asset_investment, gdp", {}),
        "TRADE": ("wholesale and retail sales / Y", "wholesale_retail_sales, gdp", {}),
        "TEC": (
            "(science + education expenditure) / Y",
            "science_expenditure, education_expenditure, gdp",
            {},
        ),
        "FIN": ("year-end loans / Y", "loans, gdp", {}),
        "OPE": ("FDI used (USD) × CNY/USD / Y", "fdi, cny_per_usd, gdp", {}),
        "Rat": (
            rat[ways],
            "gdp_primary/secondary/tertiary, employment_primary/secondary/tertiary",
            {"definition": f"{REGISTRY['Rat'].description} ({ways})"},
        ),
        "Adv": (
            "Σ_k (Y_k/Y) · minmax(ln(Y_k/L_k))",
            "gdp_primary/secondary/tertiary, employment_primary/secondary/tertiary",
            {},
        ),
        "Talent": (
            "(college-educated / P) / national college-educated share",
            "college_educated, population, national_college_share",
            {},
        ),
        "INN": (
            "invention patent applications / P × 10,000",
            "invention_applications, population",
            {},
        ),
        "Relief": (relief, "relief", {}),
        "Internet": (
            f"(telephones per 10k in 1984 / 100) × national internet users in t−{lag} / 10^8",
            "telephones_1984, national_internet_users",
            {},
        ),
        "Asset": ("1 − resource-based (2013–2020 plan)", city_file, {}),
        "GOVP": (
            f"1 if the city's mean science share of the budget > its sample "
            f"{options['heterogeneity']['govp_threshold']}",
            "science_expenditure, fiscal_expenditure",
            {},
        ),
        "ADM": ("municipality, provincial capital, sub-provincial or larger city", city_file, {}),
        "municipality": ("is_municipality", city_file, {}),
        **{
            imputed_flag(name): (
                f"1 if a cell of {_cells_text(cells)} was interpolated, else 0",
                "results/audit/imputed_cells.parquet",
                {},
            )
            for name, cells in inputs.items()
        },
    }
    out = []
    for var in ANALYSIS_VARIABLES:
        if var.role == "identifier":
            continue
        formula, sources, variant = rows[var.name]  # a KeyError names a variable without a formula
        out.append(
            Definition(
                var.name,
                variant.get("definition", var.description),
                formula,
                variant.get("unit", var.unit),
                sources,
            )
        )
    return out


def _cells_text(cells) -> str:
    """``(raw variable, lag)`` pairs as the codebook prints them: ``urban_employment (t, t−1)``."""
    lags: dict[str, list[str]] = {}
    for raw, lag in cells:
        lags.setdefault(raw, []).append("t" if lag == 0 else f"t−{lag}")
    return ", ".join(f"{raw} ({', '.join(when)})" for raw, when in lags.items())


def _dependent_inputs(options: dict) -> dict[str, tuple[tuple[str, int], ...]]:
    """The raw city-year cells of each flagged outcome and mechanism under the configured
    formulas (``resil.formula``, ``mrd.formula``, ``mechanisms.rationalization``):
    :func:`nqp_resilience.indices.variables.dependent_inputs`."""
    return V.dependent_inputs(
        options["resil"]["formula"],
        options["mrd"]["formula"],
        options["mechanisms"]["rationalization"],
    )


def imputed_flags(panel, audit, options: dict):
    """The imputed-outcome flags of every city-year: ``imputed_<variable>`` (int64 0/1) is 1
    where a raw cell the variable is computed from
    (:func:`~nqp_resilience.indices.variables.dependent_inputs`; for a lag, the city's cell of
    that earlier year) is a row of the imputation audit (``results/audit/imputed_cells.parquet``:
    city_code, year, variable, ...), whatever the fill method. Aligned with ``panel``."""
    import pandas as pd

    city = panel["city_code"].astype(str).to_numpy()
    year = panel["year"].to_numpy(dtype="int64")
    filled = {
        variable: pd.MultiIndex.from_arrays(
            [cells["city_code"].astype(str).to_numpy(), cells["year"].to_numpy(dtype="int64")]
        )
        for variable, cells in audit.groupby("variable", sort=False)
    }
    out = {}
    for name, cells in _dependent_inputs(options).items():
        flag = np.zeros(len(panel), dtype=bool)
        for raw, lag in cells:
            if raw in filled:
                flag |= pd.MultiIndex.from_arrays([city, year - lag]).isin(filled[raw])
        out[imputed_flag(name)] = flag.astype("int64")
    return pd.DataFrame(out, index=panel.index)


def derived_variables(panel, national, attributes, audit, options: dict):
    """Outcomes, controls, mechanisms, instruments and heterogeneity flags for every city-year,
    and the imputed-outcome flags (:func:`imputed_flags`) from the imputation audit ``audit``."""
    import pandas as pd

    panel = panel.sort_values(["city_code", "year"], kind="mergesort").reset_index(drop=True)
    nat = national.set_index("year")
    # the national value of the year before, looked up in a dict of each column (a lookup in
    # the column itself per city-year took seconds at county scale); the same values
    lags = {}
    for c in ("national_gdp_growth", "national_employment"):
        if c in nat.columns:
            by_year = nat[c].to_dict()
            lags[f"{c}_lag"] = panel["year"].map(lambda y, d=by_year: d.get(y - 1, np.nan))
    panel = panel.assign(**lags)
    out = panel[["city_code", "year"]].copy()
    out["Resil"] = V.resilience(
        panel["gdp_growth"], panel["national_gdp_growth"], options["resil"]["formula"]
    )
    out["Une"] = V.unemployment(panel)
    out["Mrd"] = V.recovery_speed(panel, options["mrd"]["formula"])
    out = pd.concat([out, V.controls(panel)], axis=1)
    out["Rat"] = V.rationalization(panel, options["mechanisms"]["rationalization"])
    out["Adv"] = V.advancement(panel)
    out["Talent"] = V.talent(panel)
    out["INN"] = V.innovation(panel)
    out["Relief"] = V.relief_instrument(
        panel, options["iv"]["relief"]["interact"], int(options["years"]["start"])
    )
    out["Internet"] = V.internet_instrument(panel, national, int(options["iv"]["internet"]["lag"]))
    out = pd.concat(
        [
            out,
            V.heterogeneity(panel, attributes, options["heterogeneity"]["govp_threshold"]),
            imputed_flags(panel, audit, options),
        ],
        axis=1,
    )
    return out


def analysis_panel(panel, index, nqp1, derived):
    """Join everything on (city_code, year); Nqp1 comes from the city's province."""
    ids = panel[IDS]
    nqp = index.rename(
        columns=lambda c: c if c in ("city_code", "year") else c.replace("nqp", "Nqp", 1)
    )
    out = ids.merge(nqp, on=["city_code", "year"], how="left", validate="one_to_one")
    out = out.merge(
        nqp1[["province_code", "year", "Nqp1"]],
        on=["province_code", "year"],
        how="left",
        validate="many_to_one",
    )
    out = out.merge(derived, on=["city_code", "year"], how="left", validate="one_to_one")
    # the registry's order; the criterion-layer scores come last, in the index's order
    order = IDS + [n for n in names() if n not in IDS and n not in names("layer")]
    rest = [c for c in out.columns if c not in order]
    return (
        out[order + rest]
        .sort_values(["city_code", "year"], kind="mergesort")
        .reset_index(drop=True)
    )


def codebook_markdown(analysis, defs: list[Definition]) -> str:
    """The analysis codebook: name, definition, formula, unit, source variables, N and mean."""
    lines = [
        "# Analysis panel codebook",
        "",
        f"`results/panel/analysis.parquet`: {analysis['city_code'].nunique()} cities × "
        f"{analysis['year'].nunique()} years = {len(analysis)} rows; "
        "keys city_code (6-digit code) and year.",
        "Identifiers: city_code, city_name, province_code, "
        "region (east/central/west/northeast), year.",
        "",
        "| name | definition | formula | unit | source variables | N | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in defs:
        if d.name not in analysis.columns:
            continue
        col = analysis[d.name]
        cells = [
            d.name,
            d.definition,
            d.formula,
            d.unit,
            d.sources,
            str(int(col.notna().sum())),
            f"{col.mean():.4f}",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Notation: Y GDP, P population, Y_k and L_k value added and employment of industry k "
        "(1 primary, 2 secondary, 3 tertiary), g real GDP growth, N the nation; minmax is pooled "
        "over the panel. Definitions: docs/indices.md.",
    ]
    return "\n".join(lines) + "\n"


def descriptive_statistics(
    analysis, variables=DESC_VARIABLES, defs: list[Definition] | None = None
):
    """Table 2 as data: N, mean, sd (n − 1), min, max of each variable (the numbers of the
    ``desc_stats`` spec, :func:`nqp_resilience.estimation.specs.describe`, with the codebook
    definitions)."""
    import pandas as pd

    from nqp_resilience.estimation.specs import describe

    labels = {d.name: d.definition for d in defs or []}
    stats = describe({v: analysis[v].to_numpy(dtype=float) for v in variables}, list(variables))
    return pd.DataFrame(
        [{"variable": v, "definition": labels.get(v, ""), **stats[v]} for v in variables]
    )
