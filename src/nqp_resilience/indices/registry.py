"""The analysis variables: the one list of the columns of ``results/panel/analysis.parquet``.

Everything else derives from :data:`ANALYSIS_VARIABLES`: the column order of the analysis panel
(:func:`panel_columns`), the variables a spec of ``config.yaml: specs`` may name
(:func:`spec_variables`, checked before any job runs), the rows and the default definitions and
units of ``results/panel/analysis_codebook.md``
(:func:`nqp_resilience.indices.analysis.definitions`), and the variables of Table 2
(:data:`DESC_VARIABLES`). The label files ``resources/labels/labels_{en,zh}.yaml`` give every
non-identifier variable a printed name (a test checks that they cover this list).

Adding a variable: compute it (``indices/analysis.py: derived_variables``, or the index), add
one :class:`AnalysisVariable` here, and its label to both label files.

Importing this module is cheap (standard library only): the workflow reads it while Snakemake
parses the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Roles of the analysis variables (what the paper uses them for).
ROLES = (
    "identifier",
    "outcome",
    "core",
    "layer",
    "control",
    "mechanism",
    "instrument",
    "heterogeneity",
    "sample",
)


@dataclass(frozen=True)
class AnalysisVariable:
    """One column of the analysis panel.

    Attributes
    ----------
    name : str
        Column name, as specs and tables name it.
    role : str
        One of :data:`ROLES`; ``layer`` columns are the criterion-layer scores of the NQP index
        (one per criterion of ``resources/indicators.yaml``).
    description : str
        What it is (the codebook's definition column under the default configuration).
    unit : str
        Its unit under the default configuration (a configured variant may state another in
        the codebook, e.g. ``resil.formula: difference`` gives a difference of fractions).
    """

    name: str
    role: str
    description: str
    unit: str


#: Every analysis-panel column, in codebook order (identifiers first; the layer scores after Nqp).
ANALYSIS_VARIABLES: tuple[AnalysisVariable, ...] = (
    AnalysisVariable("city_code", "identifier", "6-digit city code", "code"),
    AnalysisVariable("city_name", "identifier", "city name", "text"),
    AnalysisVariable("province_code", "identifier", "6-digit province code", "code"),
    AnalysisVariable("region", "identifier", "east/central/west/northeast", "category"),
    AnalysisVariable("year", "identifier", "data year", "year"),
    AnalysisVariable(
        "Resil",
        "outcome",
        "economic resilience (sensitivity index, national counterfactual)",
        "ratio",
    ),
    AnalysisVariable(
        "Nqp",
        "core",
        "new quality productivity index (entropy weights, Table 1 system)",
        "index in [0, 1]",
    ),
    AnalysisVariable(
        "Nqp_labourers", "layer", "criterion-layer score: labourers (劳动者)", "index"
    ),
    AnalysisVariable(
        "Nqp_objects_of_labour",
        "layer",
        "criterion-layer score: objects of labour (劳动对象)",
        "index",
    ),
    AnalysisVariable(
        "Nqp_means_of_labour", "layer", "criterion-layer score: means of labour (劳动资料)", "index"
    ),
    AnalysisVariable(
        "Nqp1",
        "core",
        "NQP keywords in the province's government work report",
        "keywords per character (0.003 = 30 per 10,000 characters)",
    ),
    AnalysisVariable("Une", "outcome", "urban registered unemployment rate", "fraction"),
    AnalysisVariable("Mrd", "outcome", "recovery speed", "fraction (NaN in the first year)"),
    AnalysisVariable("GDP", "control", "economic development", "ln CNY per person"),
    AnalysisVariable("GOV", "control", "government intervention", "fraction"),
    AnalysisVariable("IND", "control", "industrial-structure level coefficient", "1–3"),
    AnalysisVariable("INV", "control", "fixed-asset investment", "fraction"),
    AnalysisVariable("TRADE", "control", "wholesale and retail development", "fraction"),
    AnalysisVariable("TEC", "control", "science and education", "fraction"),
    AnalysisVariable("FIN", "control", "financial development", "fraction"),
    AnalysisVariable("OPE", "control", "openness", "fraction"),
    AnalysisVariable("Rat", "mechanism", "industrial-structure rationalisation", "index"),
    AnalysisVariable("Adv", "mechanism", "industrial-structure advancement", "index"),
    AnalysisVariable("Talent", "mechanism", "talent agglomeration (location quotient)", "ratio"),
    AnalysisVariable("INN", "mechanism", "technological innovation", "per 10,000 people"),
    AnalysisVariable(
        "Relief",
        "instrument",
        "instrument: terrain relief interacted with time",
        "km (× years or series)",
    ),
    AnalysisVariable(
        "Internet",
        "instrument",
        "instrument: 1984 telephones × national internet users",
        "phones per 100 people × 100 million users",
    ),
    AnalysisVariable("Asset", "heterogeneity", "non-resource-based city", "0/1"),
    AnalysisVariable("GOVP", "heterogeneity", "high government science participation", "0/1"),
    AnalysisVariable("ADM", "heterogeneity", "high administrative rank", "0/1"),
    AnalysisVariable("municipality", "sample", "municipality (北京, 天津, 上海, 重庆)", "0/1"),
    AnalysisVariable("imputed_Resil", "sample", "Resil computed from an interpolated cell", "0/1"),
    AnalysisVariable("imputed_Une", "sample", "Une computed from an interpolated cell", "0/1"),
    AnalysisVariable(
        "imputed_Mrd", "sample", "Mrd computed from an interpolated cell (t or t−1)", "0/1"
    ),
    AnalysisVariable("imputed_Rat", "sample", "Rat computed from an interpolated cell", "0/1"),
    AnalysisVariable("imputed_Adv", "sample", "Adv computed from an interpolated cell", "0/1"),
    AnalysisVariable(
        "imputed_Talent", "sample", "Talent computed from an interpolated cell", "0/1"
    ),
    AnalysisVariable("imputed_INN", "sample", "INN computed from an interpolated cell", "0/1"),
)

#: Variables by name.
BY_NAME: dict[str, AnalysisVariable] = {v.name: v for v in ANALYSIS_VARIABLES}


def imputed_flag(variable: str) -> str:
    """The analysis-panel column flagging the rows where ``variable`` is computed from an
    interpolated raw cell (``imputed_<variable>``; see docs/cleaning.md, "Imputed outcomes")."""
    return f"imputed_{variable}"


#: The outcomes and mechanisms with an imputed-outcome flag (``imputed_<variable>``), in order.
IMPUTED_FLAGGED = tuple(v.name for v in ANALYSIS_VARIABLES if imputed_flag(v.name) in BY_NAME)


def names(*roles: str) -> tuple[str, ...]:
    """Names of the variables of the given roles (all if none), in registry order."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")
    return tuple(v.name for v in ANALYSIS_VARIABLES if not roles or v.role in roles)


#: The identifier columns, first in the panel.
IDENTIFIERS = names("identifier")
#: The paper's eight control variables (``config.yaml: control_variables`` by default).
CONTROLS = names("control")
#: Table 2: the outcome, the core regressor and the controls.
DESC_VARIABLES = ("Resil", "Nqp", *CONTROLS)


def panel_columns() -> tuple[str, ...]:
    """The columns of ``results/panel/analysis.parquet``, in file order: the identifiers, the
    variables, then the criterion-layer scores (they come last with the index's join)."""
    layers = names("layer")
    variables = tuple(n for n in names() if n not in IDENTIFIERS and n not in layers)
    return IDENTIFIERS + variables + layers


def spec_variables() -> tuple[str, ...]:
    """The columns a spec may name (every panel column but the city name), in file order."""
    return tuple(n for n in panel_columns() if n != "city_name")


def labelled_variables() -> tuple[str, ...]:
    """The variables a table may print, which the label files must name: all but identifiers."""
    return tuple(n for n in names() if n not in IDENTIFIERS)
