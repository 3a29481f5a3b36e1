"""The paper's variables from the city panel (docs/indices.md): outcomes, controls, mechanisms,
instruments and heterogeneity indicators.

Every function is pure: it takes the panel (canonical variables in canonical units, one row per
city-year, sorted by city and year) and returns arrays or a DataFrame aligned with it. Notation:
Y GDP, Y_k value added of industry k (1 primary, 2 secondary, 3 tertiary), L_k employment in
industry k, L = Σ L_k, g growth rates as fractions, N the nation.
"""

from __future__ import annotations

from nqp_resilience.errors import ConfigError
from nqp_resilience.lazy import lazy_module

# imported on first use: check_instrument_config runs while Snakemake parses the workflow
np = lazy_module("numpy")

RESIL_FORMULAS = ("relative", "difference", "ratio")
MRD_FORMULAS = ("employment_recovery", "national_rebound", "own_rebound")
RATIONALIZATION_VARIANTS = ("combined", "hamming", "theil")
CONTROLS = ("GDP", "GOV", "IND", "INV", "TRADE", "TEC", "FIN", "OPE")


def _lag(panel, column: str, periods: int = 1) -> np.ndarray:
    """Within-city lag; NaN where the previous year is not in the panel."""
    prev = panel.groupby("city_code", sort=False)[column].shift(periods)
    gap = panel["year"] - panel.groupby("city_code", sort=False)["year"].shift(periods)
    return np.where(gap == periods, prev, np.nan)


def resilience(g, g_nat, formula: str = "relative"):
    """Economic resilience (Martin 2012 sensitivity with a national counterfactual).

    ``relative``: (g_it − g_Nt)/|g_Nt|; ``difference``: g_it − g_Nt; ``ratio``: g_it/g_Nt.
    """
    g, g_nat = np.asarray(g, dtype=float), np.asarray(g_nat, dtype=float)
    if formula == "relative":
        return (g - g_nat) / np.abs(g_nat)
    if formula == "difference":
        return g - g_nat
    if formula == "ratio":
        return g / g_nat
    raise ConfigError("resil.formula", f"{formula!r} is not one of {RESIL_FORMULAS}")


def recovery_speed(panel, formula: str = "employment_recovery"):
    """Mrd, the speed of recovery (Martin 2012's recovery index, year by year).

    ``employment_recovery`` (default): urban-unit employment growth minus national employment
    growth, (E_it/E_i,t−1 − 1) − (E_Nt/E_N,t−1 − 1), Martin's measure on employment;
    ``national_rebound``: the growth rebound beyond the national one,
    (g_it − g_i,t−1) − (g_Nt − g_N,t−1); ``own_rebound``: g_it − g_i,t−1.
    The first year of each city has no lag: NaN.
    """
    if formula == "employment_recovery":
        city = (
            panel["urban_employment"].to_numpy(dtype=float) / _lag(panel, "urban_employment") - 1.0
        )
        nat = (
            panel["national_employment"].to_numpy(dtype=float)
            / panel["national_employment_lag"].to_numpy()
            - 1.0
        )
        return city - nat
    own = panel["gdp_growth"].to_numpy() - _lag(panel, "gdp_growth")
    if formula == "own_rebound":
        return own
    if formula == "national_rebound":
        return own - (
            panel["national_gdp_growth"].to_numpy() - panel["national_gdp_growth_lag"].to_numpy()
        )
    raise ConfigError("mrd.formula", f"{formula!r} is not one of {MRD_FORMULAS}")


def unemployment(panel):
    """Une: registered unemployed / (registered unemployed + urban employment)."""
    u = panel["registered_unemployed"].to_numpy(dtype=float)
    return u / (u + panel["urban_employment"].to_numpy(dtype=float))


def _sector_shares(panel):
    y = panel[["gdp_primary", "gdp_secondary", "gdp_tertiary"]].to_numpy(dtype=float)
    lab = panel[["employment_primary", "employment_secondary", "employment_tertiary"]].to_numpy(
        dtype=float
    )
    return y, lab


def controls(panel):
    """The eight controls of Table 2.

    GDP = ln(Y/P) (CNY per person); GOV = budget expenditure/Y; IND = Σ_k k·Y_k/ΣY_k;
    INV = fixed-asset investment/Y; TRADE = wholesale and retail sales/Y;
    TEC = (science + education expenditure)/Y; FIN = year-end loans/Y;
    OPE = FDI used (USD × CNY/USD)/Y.
    """
    import pandas as pd

    gdp = panel["gdp"].to_numpy(dtype=float)
    y, _ = _sector_shares(panel)
    shares = y / y.sum(axis=1, keepdims=True)
    return pd.DataFrame(
        {
            "GDP": np.log(gdp / panel["population"].to_numpy(dtype=float)),
            "GOV": panel["fiscal_expenditure"].to_numpy() / gdp,
            "IND": shares @ np.array([1.0, 2.0, 3.0]),
            "INV": panel["fixed_asset_investment"].to_numpy() / gdp,
            "TRADE": panel["wholesale_retail_sales"].to_numpy() / gdp,
            "TEC": (
                panel["science_expenditure"].to_numpy() + panel["education_expenditure"].to_numpy()
            )
            / gdp,
            "FIN": panel["loans"].to_numpy() / gdp,
            "OPE": panel["fdi"].to_numpy() * panel["cny_per_usd"].to_numpy() / gdp,
        },
        index=panel.index,
    )


def minmax(values):
    """Min–max normalisation over all rows (pooled); constant input gives zeros."""
    values = np.asarray(values, dtype=float)
    lo, hi = np.nanmin(values), np.nanmax(values)
    return np.zeros_like(values) if hi == lo else (values - lo) / (hi - lo)


def hamming_fit(panel):
    """Hamming closeness of output and employment structure: 1 − ½ Σ_k |Y_k/Y − L_k/L|."""
    y, lab = _sector_shares(panel)
    return 1.0 - 0.5 * np.abs(
        y / y.sum(axis=1, keepdims=True) - lab / lab.sum(axis=1, keepdims=True)
    ).sum(axis=1)


def theil_deviation(panel):
    """Theil structural deviation Σ_k (Y_k/Y) ln((Y_k/L_k)/(Y/L)); 0 = output and labour match."""
    y, lab = _sector_shares(panel)
    ys = y / y.sum(axis=1, keepdims=True)
    prod = (y / lab) / (y.sum(axis=1, keepdims=True) / lab.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(ys > 0, ys * np.log(prod), 0.0)
    return terms.sum(axis=1)


def rationalization(panel, variant: str = "combined"):
    """Industrial-structure rationalisation (higher = more rational).

    ``hamming``: the Hamming closeness; ``theil``: minus the Theil deviation; ``combined``
    (default): the mean of the pooled min–max-normalised Hamming closeness and −Theil.
    """
    if variant == "hamming":
        return hamming_fit(panel)
    if variant == "theil":
        return -theil_deviation(panel)
    if variant == "combined":
        return 0.5 * (minmax(hamming_fit(panel)) + minmax(-theil_deviation(panel)))
    raise ConfigError(
        "mechanisms.rationalization", f"{variant!r} is not one of {RATIONALIZATION_VARIANTS}"
    )


def advancement(panel):
    """Industrial-structure advancement Σ_k (Y_k/Y)·LPn_k, LPn_k = pooled min–max of ln(Y_k/L_k)."""
    y, lab = _sector_shares(panel)
    ys = y / y.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        lp = np.log(y / lab)
    lp = np.where(np.isfinite(lp), lp, np.nan)
    lpn = np.column_stack([minmax(lp[:, k]) for k in range(3)])
    return np.nansum(ys * lpn, axis=1)


def talent(panel):
    """Talent agglomeration: location quotient of the college-educated population share."""
    share = panel["college_educated"].to_numpy(dtype=float) / panel["population"].to_numpy(
        dtype=float
    )
    return share / panel["national_college_share"].to_numpy(dtype=float)


def innovation(panel):
    """INN: invention patent applications per 10,000 people."""
    return (
        panel["invention_applications"].to_numpy(dtype=float)
        / panel["population"].to_numpy(dtype=float)
        * 1e4
    )


def relief_instrument(panel, interact: str = "trend", first_year: int | None = None):
    """Terrain relief (km) interacted with a time-varying term.

    ``trend``: relief × (year − first year); ``national:<series>``: relief × the national
    series of that year (a canonical national variable); ``none``: relief alone, which is
    time-invariant and therefore absorbed by city fixed effects (see
    :func:`check_instrument_config`).
    """
    relief_km = panel["relief"].to_numpy(dtype=float) / 1000.0
    if interact == "none":
        return relief_km
    if interact == "trend":
        first = panel["year"].min() if first_year is None else first_year
        return relief_km * (panel["year"].to_numpy() - first)
    if interact.startswith("national:"):
        series = interact.split(":", 1)[1]
        if series not in panel.columns or not series.startswith("national_"):
            nat = [c for c in panel.columns if c.startswith("national_")]
            raise ConfigError(
                "iv.relief.interact",
                f"unknown national series {series!r}",
                hint=f"use one of: {', '.join('national:' + c for c in nat)}",
            )
        return relief_km * panel[series].to_numpy(dtype=float)
    raise ConfigError("iv.relief.interact", f"{interact!r} is not trend, none or national:<series>")


def internet_instrument(panel, national, lag: int = 1):
    """Internet = fixed telephones per 100 people in 1984 × national internet users (100 million)
    in t−lag."""
    users = national.set_index("year")["national_internet_users"]
    wanted = panel["year"].to_numpy() - lag
    missing = sorted(int(y) for y in set(wanted) - set(users.index))
    if missing:
        from nqp_resilience.errors import DataError

        raise DataError(
            "ceic/national.csv",
            f"national internet users missing for year(s) {missing}",
            column="national_internet_users",
            hint=f"the Internet instrument uses year t−{lag}: "
            "include those years in the CEIC extract",
        )
    return (
        panel["telephones_1984"].to_numpy(dtype=float) / 100.0 * users.loc[wanted].to_numpy() / 1e8
    )


#: The raw city-year cells of the industry split (Rat and Adv): Y_k and L_k of the three industries.
_SECTORS = (
    "gdp_primary",
    "gdp_secondary",
    "gdp_tertiary",
    "employment_primary",
    "employment_secondary",
    "employment_tertiary",
)


def dependent_inputs(
    resil_formula: str = "relative",
    mrd_formula: str = "employment_recovery",
    rationalization_variant: str = "combined",
) -> dict[str, tuple[tuple[str, int], ...]]:
    """The raw city-year cells each outcome and mechanism is computed from, under the configured
    formulas: variable -> ``(raw variable, lag)`` pairs, lag 0 the same year, 1 the previous one.

    These are the variables a spec may use as its dependent; the analysis panel flags the rows
    where one of these cells was interpolated (``imputed_<variable>``,
    :func:`nqp_resilience.indices.analysis.imputed_flags`). Only the city's own cells count:
    national series are not interpolated by the panel build, and the pooled min–max of Rat
    (``combined``) and Adv is a normalisation over all rows, not an input of one row.

    Resil uses g_it under every ``resil.formula``; Mrd uses urban employment in t and t−1
    (``employment_recovery``) or GDP growth in t and t−1 (``national_rebound``,
    ``own_rebound``); every ``mechanisms.rationalization`` variant uses the same industry
    split. An unknown formula raises :class:`ConfigError` naming its key.
    """
    if resil_formula not in RESIL_FORMULAS:
        raise ConfigError("resil.formula", f"{resil_formula!r} is not one of {RESIL_FORMULAS}")
    if mrd_formula not in MRD_FORMULAS:
        raise ConfigError("mrd.formula", f"{mrd_formula!r} is not one of {MRD_FORMULAS}")
    if rationalization_variant not in RATIONALIZATION_VARIANTS:
        raise ConfigError(
            "mechanisms.rationalization",
            f"{rationalization_variant!r} is not one of {RATIONALIZATION_VARIANTS}",
        )
    growth = "urban_employment" if mrd_formula == "employment_recovery" else "gdp_growth"
    return {
        "Resil": (("gdp_growth", 0),),
        "Une": (("registered_unemployed", 0), ("urban_employment", 0)),
        "Mrd": ((growth, 0), (growth, 1)),
        "Rat": tuple((v, 0) for v in _SECTORS),
        "Adv": tuple((v, 0) for v in _SECTORS),
        "Talent": (("college_educated", 0), ("population", 0)),
        "INN": (("invention_applications", 0), ("population", 0)),
    }


def check_instrument_config(relief_interact: str, fixed_effects) -> None:
    """Stop early when a time-invariant instrument meets city fixed effects.

    With city fixed effects, a variable that does not change over time within a city is
    absorbed by the city dummies: its within-city variation is zero, so the first stage has no
    identifying variation (the matrix of demeaned instruments is singular).
    """
    if relief_interact == "none" and "city" in list(fixed_effects):
        raise ConfigError(
            "iv.relief.interact",
            "Relief (terrain relief) is time-invariant, "
            "so with city fixed effects it is absorbed by the "
            "city dummies and cannot identify anything: "
            "the demeaned instrument is identically zero",
            hint="set iv.relief.interact to 'trend' (Relief × (year − first year), the default) or "
            "'national:<series>' (e.g. national:national_internet_users), or remove 'city' from "
            "iv.fixed_effects",
        )


def assert_time_varying(panel, column: str, entity: str = "city_code") -> None:
    """Data-level version of :func:`check_instrument_config` for any column."""
    within = panel.groupby(entity)[column].transform(lambda s: s - s.mean()).to_numpy(dtype=float)
    within = within[np.isfinite(within)]
    if within.size == 0 or np.allclose(within, 0.0):
        raise ConfigError(
            column,
            f"{column} does not vary over time within any {entity}, so entity fixed "
            "effects absorb it",
            hint="interact it with a time-varying series, or drop the entity FE",
        )


def heterogeneity(panel, attributes, govp_threshold: str = "mean"):
    """Asset (non-resource-based = 1), GOVP (above-threshold science share of the budget = 1),
    ADM (municipality, provincial capital, sub-provincial or larger city = 1).

    GOVP compares each city's mean science share over its years with the mean (or median) of
    those city means: on a balanced panel this equals the pooled sample mean.
    """
    import pandas as pd

    attrs = attributes.set_index("city_code")
    codes = panel["city_code"]
    sci = (
        (panel["science_expenditure"] / panel["fiscal_expenditure"])
        .groupby(panel["city_code"])
        .mean()
    )
    if govp_threshold == "mean":
        cut = sci.mean()
    elif govp_threshold == "median":
        cut = sci.median()
    else:
        raise ConfigError(
            "heterogeneity.govp_threshold", f"{govp_threshold!r} is not mean or median"
        )
    return pd.DataFrame(
        {
            "Asset": (1 - attrs.loc[codes, "is_resource_based"].to_numpy()).astype("int64"),
            "GOVP": (sci.loc[codes].to_numpy() > cut).astype("int64"),
            "ADM": attrs.loc[codes, "adm_high"].to_numpy().astype("int64"),
            "municipality": attrs.loc[codes, "is_municipality"].to_numpy().astype("int64"),
        },
        index=panel.index,
    )
