"""The analysis panel: every variable the specifications need, its codebook, and Table 2.

Inputs: the city panel, the NQP index, the Nqp1 text measure and the derived variables.
Outputs: ``results/panel/analysis.parquet`` (one row per city-year), its Markdown codebook, and
the descriptive statistics of Table 2 as data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nqp_resilience.indices import variables as V

IDS = ["city_code", "city_name", "province_code", "region", "year"]


@dataclass(frozen=True)
class Definition:
    """One row of the analysis codebook."""

    name: str
    definition: str
    formula: str
    unit: str
    sources: str


def definitions(options: dict) -> list[Definition]:
    """Codebook rows; formulas state the configured variants."""
    resil = {"relative": "(g_it − g_Nt) / |g_Nt|", "difference": "g_it − g_Nt", "ratio": "g_it / g_Nt"}
    mrd = {"employment_recovery": "(E_it/E_i,t−1 − 1) − (E_Nt/E_N,t−1 − 1), E urban-unit employment",
           "national_rebound": "(g_it − g_i,t−1) − (g_Nt − g_N,t−1)", "own_rebound": "g_it − g_i,t−1"}
    rat = {"combined": "½[minmax(1 − ½Σ_k|Y_k/Y − L_k/L|) + minmax(−Σ_k (Y_k/Y) ln((Y_k/L_k)/(Y/L)))]",
           "hamming": "1 − ½Σ_k|Y_k/Y − L_k/L|", "theil": "−Σ_k (Y_k/Y) ln((Y_k/L_k)/(Y/L))"}
    interact = options["iv"]["relief"]["interact"]
    relief = {"trend": "relief_km × (year − first year)", "none": "relief_km"}.get(
        interact, f"relief_km × {interact.split(':', 1)[-1]}")
    lag = options["iv"]["internet"]["lag"]
    e = options["entropy"]
    return [
        Definition("Resil", "economic resilience (sensitivity index, national counterfactual)",
                   resil[options["resil"]["formula"]], "ratio" if options["resil"]["formula"] != "difference" else "fraction",
                   "gdp_growth, national_gdp_growth"),
        Definition("Nqp", "new quality productivity index (entropy weights, Table 1 system)",
                   f"Σ_j w_j x'_ij; {e['scope']} scope, {e['aggregation']} aggregation, variant {e['variant']}, "
                   f"ε = {e['eps']:g}", "index in [0, 1]", "27 measures of resources/indicators.yaml"),
        Definition("Nqp_labourers", "criterion-layer score: labourers (劳动者)", "see Nqp", "index", "Nqp measures"),
        Definition("Nqp_objects_of_labour", "criterion-layer score: objects of labour (劳动对象)", "see Nqp", "index",
                   "Nqp measures"),
        Definition("Nqp_means_of_labour", "criterion-layer score: means of labour (劳动资料)", "see Nqp", "index",
                   "Nqp measures"),
        Definition("Nqp1", "NQP keywords in the province's government work report",
                   "keyword tokens / non-whitespace characters"
                   + (" (province + central report)" if options["nqp1"]["include_central"] else ""),
                   "keywords per character (0.003 = 30 per 10,000 characters)",
                   "reports/{province}_{year}.txt, resources/nqp_keywords.txt"),
        Definition("Une", "urban registered unemployment rate", "U / (U + urban employment)", "fraction",
                   "registered_unemployed, urban_employment"),
        Definition("Mrd", "recovery speed", mrd[options["mrd"]["formula"]], "fraction (NaN in the first year)",
                   "urban_employment, national_employment" if options["mrd"]["formula"] == "employment_recovery"
                   else "gdp_growth, national_gdp_growth"),
        Definition("GDP", "economic development", "ln(Y / P)", "ln CNY per person", "gdp, population"),
        Definition("GOV", "government intervention", "general budget expenditure / Y", "fraction",
                   "fiscal_expenditure, gdp"),
        Definition("IND", "industrial-structure level coefficient", "Σ_k k · Y_k / Σ_k Y_k", "1–3",
                   "gdp_primary, gdp_secondary, gdp_tertiary"),
        Definition("INV", "fixed-asset investment", "fixed-asset investment / Y", "fraction",
                   "fixed_asset_investment, gdp"),
        Definition("TRADE", "wholesale and retail development", "wholesale and retail sales / Y", "fraction",
                   "wholesale_retail_sales, gdp"),
        Definition("TEC", "science and education", "(science + education expenditure) / Y", "fraction",
                   "science_expenditure, education_expenditure, gdp"),
        Definition("FIN", "financial development", "year-end loans / Y", "fraction", "loans, gdp"),
        Definition("OPE", "openness", "FDI used (USD) × CNY/USD / Y", "fraction", "fdi, cny_per_usd, gdp"),
        Definition("Rat", f"industrial-structure rationalisation ({options['mechanisms']['rationalization']})",
                   rat[options["mechanisms"]["rationalization"]], "index",
                   "gdp_primary/secondary/tertiary, employment_primary/secondary/tertiary"),
        Definition("Adv", "industrial-structure advancement", "Σ_k (Y_k/Y) · minmax(ln(Y_k/L_k))", "index",
                   "gdp_primary/secondary/tertiary, employment_primary/secondary/tertiary"),
        Definition("Talent", "talent agglomeration (location quotient)",
                   "(college-educated / P) / national college-educated share", "ratio",
                   "college_educated, population, national_college_share"),
        Definition("INN", "technological innovation", "invention patent applications / P × 10,000",
                   "per 10,000 people", "invention_applications, population"),
        Definition("Relief", "instrument: terrain relief interacted with time", relief, "km (× years or series)",
                   "relief"),
        Definition("Internet", "instrument: 1984 telephones × national internet users",
                   f"(telephones per 10k in 1984 / 100) × national internet users in t−{lag} / 10^8",
                   "phones per 100 people × 100 million users", "telephones_1984, national_internet_users"),
        Definition("Asset", "non-resource-based city", "1 − resource-based (2013–2020 plan)", "0/1",
                   "resources/cities/city_attributes.csv"),
        Definition("GOVP", "high government science participation",
                   f"1 if the city's mean science share of the budget > its sample "
                   f"{options['heterogeneity']['govp_threshold']}", "0/1",
                   "science_expenditure, fiscal_expenditure"),
        Definition("ADM", "high administrative rank",
                   "municipality, provincial capital, sub-provincial or larger city", "0/1",
                   "resources/cities/city_attributes.csv"),
        Definition("municipality", "municipality (北京, 天津, 上海, 重庆)", "is_municipality", "0/1",
                   "resources/cities/city_attributes.csv"),
    ]


def derived_variables(panel, national, attributes, options: dict):
    """Outcomes, controls, mechanisms, instruments and heterogeneity flags for every city-year."""
    import pandas as pd

    panel = panel.sort_values(["city_code", "year"], kind="mergesort").reset_index(drop=True)
    nat = national.set_index("year")
    lags = {f"{c}_lag": panel["year"].map(lambda y, c=c: nat[c].get(y - 1, np.nan))
            for c in ("national_gdp_growth", "national_employment") if c in nat.columns}
    panel = panel.assign(**lags)
    out = panel[["city_code", "year"]].copy()
    out["Resil"] = V.resilience(panel["gdp_growth"], panel["national_gdp_growth"], options["resil"]["formula"])
    out["Une"] = V.unemployment(panel)
    out["Mrd"] = V.recovery_speed(panel, options["mrd"]["formula"])
    out = pd.concat([out, V.controls(panel)], axis=1)
    out["Rat"] = V.rationalization(panel, options["mechanisms"]["rationalization"])
    out["Adv"] = V.advancement(panel)
    out["Talent"] = V.talent(panel)
    out["INN"] = V.innovation(panel)
    out["Relief"] = V.relief_instrument(panel, options["iv"]["relief"]["interact"], int(options["years"]["start"]))
    out["Internet"] = V.internet_instrument(panel, national, int(options["iv"]["internet"]["lag"]))
    out = pd.concat([out, V.heterogeneity(panel, attributes, options["heterogeneity"]["govp_threshold"])], axis=1)
    return out


def analysis_panel(panel, index, nqp1, derived):
    """Join everything on (city_code, year); Nqp1 comes from the city's province."""
    ids = panel[IDS]
    nqp = index.rename(columns=lambda c: c if c in ("city_code", "year") else c.replace("nqp", "Nqp", 1))
    out = ids.merge(nqp, on=["city_code", "year"], how="left", validate="one_to_one")
    out = out.merge(nqp1[["province_code", "year", "Nqp1"]], on=["province_code", "year"], how="left",
                    validate="many_to_one")
    out = out.merge(derived, on=["city_code", "year"], how="left", validate="one_to_one")
    order = IDS + ["Resil", "Nqp", "Nqp1", "Une", "Mrd", *V.CONTROLS, "Rat", "Adv", "Talent", "INN", "Relief",
                   "Internet", "Asset", "GOVP", "ADM", "municipality"]
    rest = [c for c in out.columns if c not in order]
    return out[order + rest].sort_values(["city_code", "year"], kind="mergesort").reset_index(drop=True)


def codebook_markdown(analysis, defs: list[Definition]) -> str:
    """The analysis codebook: name, definition, formula, unit, source variables, N and mean."""
    lines = ["# Analysis panel codebook", "",
             f"`results/panel/analysis.parquet`: {analysis['city_code'].nunique()} cities × "
             f"{analysis['year'].nunique()} years = {len(analysis)} rows; keys city_code (6-digit code) and year.",
             "Identifiers: city_code, city_name, province_code, region (east/central/west/northeast), year.", "",
             "| name | definition | formula | unit | source variables | N | mean |", "|---|---|---|---|---|---|---|"]
    for d in defs:
        if d.name not in analysis.columns:
            continue
        col = analysis[d.name]
        cells = [d.name, d.definition, d.formula, d.unit, d.sources, str(int(col.notna().sum())), f"{col.mean():.4f}"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Notation: Y GDP, P population, Y_k and L_k value added and employment of industry k "
              "(1 primary, 2 secondary, 3 tertiary), g real GDP growth, N the nation; minmax is pooled "
              "over the panel. Definitions: docs/indices.md."]
    return "\n".join(lines) + "\n"


DESC_VARIABLES = ["Resil", "Nqp", "GDP", "GOV", "IND", "INV", "TRADE", "TEC", "FIN", "OPE"]


def descriptive_statistics(analysis, variables=DESC_VARIABLES, defs: list[Definition] | None = None):
    """Table 2 as data: N, mean, sd (n − 1), min, max of each variable (the numbers of the
    ``desc_stats`` spec, :func:`nqp_resilience.estimation.specs.describe`, with the codebook definitions)."""
    import pandas as pd

    from nqp_resilience.estimation.specs import describe

    labels = {d.name: d.definition for d in defs or []}
    stats = describe({v: analysis[v].to_numpy(dtype=float) for v in variables}, list(variables))
    return pd.DataFrame([{"variable": v, "definition": labels.get(v, ""), **stats[v]} for v in variables])
