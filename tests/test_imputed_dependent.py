"""Imputed outcomes: the ``imputed_<variable>`` flags of the analysis panel and the option
``estimation.imputed_dependent`` (docs/cleaning.md, "Imputed outcomes").

(a) the dependency map and the flags on a hand-made panel and imputation audit (the Mrd lag, the
formula variants); (b) the flags through ``derived_variables`` and the registry; (c)
``with_imputed_dependent``: keep and drop, the columns the jobs read, the spec-sample audit;
(d) the config key; (e) end to end, the drop option on a copy of the completed workflow.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from nqp_resilience.errors import ConfigError
from nqp_resilience.estimation.specs import (
    apply_sample,
    spec_columns,
    validate_specs,
    with_imputed_dependent,
)
from nqp_resilience.indices import analysis
from nqp_resilience.indices import registry as R
from nqp_resilience.indices import variables as V
from test_variables import A, B, make_attributes, make_national, make_panel, no_audit, options

from conftest import ROOT, snakemake

FLAGS = [f"imputed_{v}" for v in ("Resil", "Une", "Mrd", "Rat", "Adv", "Talent", "INN")]


def audit(*cells) -> pd.DataFrame:
    """An imputation audit with one row per (city, year, variable) cell."""
    return pd.DataFrame(
        {
            "city_code": pd.Series([c for c, _, _ in cells], dtype=str),
            "year": pd.Series([y for _, y, _ in cells], dtype="int64"),
            "variable": pd.Series([v for _, _, v in cells], dtype=str),
            "method": pd.Series(["linear_interior"] * len(cells), dtype=str),
            "value": pd.Series([1.0] * len(cells), dtype=float),
        }
    )


def grid() -> pd.DataFrame:
    """Cities A and B × 2010–2012, sorted by city and year (the rows of every flag below)."""
    return pd.DataFrame({"city_code": [A] * 3 + [B] * 3, "year": [2010, 2011, 2012] * 2})


def opts(resil="relative", mrd="employment_recovery", rat="combined") -> dict:
    return {
        "resil": {"formula": resil},
        "mrd": {"formula": mrd},
        "mechanisms": {"rationalization": rat},
    }


# --------------------------------------------------------------------------- (a) the map and flags


def test_dependent_inputs_follow_the_configured_formulas():
    default = V.dependent_inputs()
    assert list(default) == list(R.IMPUTED_FLAGGED)
    assert default["Resil"] == (("gdp_growth", 0),)
    assert default["Une"] == (("registered_unemployed", 0), ("urban_employment", 0))
    # Mrd: employment growth t/t−1 by default, GDP growth t and t−1 for the rebound formulas
    assert default["Mrd"] == (("urban_employment", 0), ("urban_employment", 1))
    for mrd in ("national_rebound", "own_rebound"):
        assert V.dependent_inputs(mrd_formula=mrd)["Mrd"] == (("gdp_growth", 0), ("gdp_growth", 1))
    # Resil reads g_it whatever the formula; every rationalisation variant the same six cells
    for resil in V.RESIL_FORMULAS:
        assert V.dependent_inputs(resil_formula=resil)["Resil"] == (("gdp_growth", 0),)
    sectors = {v for v, _ in default["Rat"]}
    assert sectors == {
        f"{k}_{s}" for k in ("gdp", "employment") for s in ("primary", "secondary", "tertiary")
    }
    for rat in V.RATIONALIZATION_VARIANTS:
        assert V.dependent_inputs(rationalization_variant=rat)["Rat"] == default["Rat"]
    assert default["Adv"] == default["Rat"]
    assert default["Talent"] == (("college_educated", 0), ("population", 0))
    assert default["INN"] == (("invention_applications", 0), ("population", 0))


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"resil_formula": "relativ"}, "resil.formula"),
        ({"mrd_formula": "rebound"}, "mrd.formula"),
        ({"rationalization_variant": "entropy"}, "mechanisms.rationalization"),
    ],
)
def test_dependent_inputs_refuse_an_unknown_formula(kwargs, key):
    with pytest.raises(ConfigError) as exc:
        V.dependent_inputs(**kwargs)
    assert exc.value.key == key


def test_dependent_inputs_name_raw_panel_variables():
    """Every cell of the map is a column of the city panel the variables are computed from."""
    columns = set(make_panel().columns)
    for mrd in V.MRD_FORMULAS:
        for name, cells in V.dependent_inputs(mrd_formula=mrd).items():
            assert {raw for raw, _ in cells} <= columns, name


# the audit of the flag tests: rows of grid() are A2010, A2011, A2012, B2010, B2011, B2012
CELLS = audit(
    (A, 2011, "urban_employment"),  # Une A2011; Mrd (employment) A2011 and, as the lag, A2012
    (A, 2010, "population"),  # Talent and INN A2010
    (B, 2010, "invention_applications"),  # INN B2010
    (B, 2012, "employment_secondary"),  # Rat and Adv B2012
    (B, 2011, "gdp_growth"),  # Resil B2011; Mrd (rebound) B2011 and B2012
    (A, 2012, "forest_cover"),  # an Nqp measure: no flag
)


def test_imputed_flags_default_formulas():
    flags = analysis.imputed_flags(grid(), CELLS, opts())
    assert list(flags.columns) == FLAGS
    assert (flags.dtypes == "int64").all()
    assert flags["imputed_Resil"].tolist() == [0, 0, 0, 0, 1, 0]
    assert flags["imputed_Une"].tolist() == [0, 1, 0, 0, 0, 0]
    # the t−1 cell: A2011's employment enters Mrd of A2011 and of A2012
    assert flags["imputed_Mrd"].tolist() == [0, 1, 1, 0, 0, 0]
    assert flags["imputed_Rat"].tolist() == [0, 0, 0, 0, 0, 1]
    assert flags["imputed_Adv"].tolist() == [0, 0, 0, 0, 0, 1]
    assert flags["imputed_Talent"].tolist() == [1, 0, 0, 0, 0, 0]
    assert flags["imputed_INN"].tolist() == [1, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("mrd", ["national_rebound", "own_rebound"])
def test_imputed_flags_mrd_rebound_uses_gdp_growth_and_its_lag(mrd):
    flags = analysis.imputed_flags(grid(), CELLS, opts(mrd=mrd))
    # B2011's growth enters Mrd of B2011 (t) and B2012 (t−1); employment no longer counts
    assert flags["imputed_Mrd"].tolist() == [0, 0, 0, 0, 1, 1]
    assert flags["imputed_Une"].tolist() == [0, 1, 0, 0, 0, 0]  # Une still reads employment


def test_imputed_flags_lag_stays_within_the_city():
    # A2012 filled: Mrd of A2012 only; B2010 (the next row, another city) is not its successor
    flags = analysis.imputed_flags(grid(), audit((A, 2012, "urban_employment")), opts())
    assert flags["imputed_Mrd"].tolist() == [0, 0, 1, 0, 0, 0]


def test_imputed_flags_without_imputed_cells_are_zero():
    flags = analysis.imputed_flags(grid(), no_audit(), opts())
    assert list(flags.columns) == FLAGS
    assert (flags.to_numpy() == 0).all() and (flags.dtypes == "int64").all()


def test_imputed_flags_any_fill_method_counts_and_align_with_the_panel():
    cells = audit((B, 2012, "population")).assign(method="nearest_edge")
    shuffled = grid().iloc[[5, 0, 3]].set_index(pd.Index([10, 11, 12]))
    flags = analysis.imputed_flags(shuffled, cells, opts())
    assert flags.index.tolist() == [10, 11, 12]
    assert flags["imputed_INN"].tolist() == [1, 0, 0]


# --------------------------------------------------------------------------- (b) panel and registry


def test_derived_variables_add_the_flags():
    panel = make_panel().iloc[[4, 0, 5, 2, 3, 1]].reset_index(drop=True)  # sorted by the job
    out = analysis.derived_variables(
        panel, make_national(), make_attributes(), CELLS, options(mrd="national_rebound")
    )
    assert list(out.columns)[-8:] == ["municipality", *FLAGS]
    assert (out[FLAGS].dtypes == "int64").all()
    assert out["imputed_Une"].tolist() == [0, 1, 0, 0, 0, 0]
    assert out["imputed_Mrd"].tolist() == [0, 0, 0, 0, 1, 1]
    assert out["imputed_INN"].tolist() == [1, 0, 0, 1, 0, 0]
    pd.testing.assert_frame_equal(
        out[FLAGS], analysis.imputed_flags(grid(), CELLS, opts(mrd="national_rebound"))
    )
    # the other variables do not depend on the audit
    clean = analysis.derived_variables(
        panel, make_national(), make_attributes(), no_audit(), options(mrd="national_rebound")
    )
    rest = [c for c in clean.columns if c not in FLAGS]
    pd.testing.assert_frame_equal(out[rest], clean[rest])
    assert (clean[FLAGS].to_numpy() == 0).all()


def test_registry_and_codebook_have_the_flags():
    assert R.IMPUTED_FLAGGED == ("Resil", "Une", "Mrd", "Rat", "Adv", "Talent", "INN")
    for name in FLAGS:
        var = R.BY_NAME[name]
        assert (var.role, var.unit) == ("sample", "0/1")
        assert name in R.spec_variables()
    assert R.DESC_VARIABLES == ("Resil", "Nqp", *R.CONTROLS)  # Table 2 unchanged
    full = {
        "resil": {"formula": "relative"},
        "mrd": {"formula": "employment_recovery"},
        "mechanisms": {"rationalization": "combined"},
        "iv": {"relief": {"interact": "trend"}, "internet": {"lag": 1}},
        "entropy": {"scope": "pooled", "aggregation": "flat", "variant": "shift", "eps": 1e-4},
        "nqp1": {"include_central": False},
        "heterogeneity": {"govp_threshold": "mean"},
    }
    defs = {d.name: d for d in analysis.definitions(full)}
    assert defs["imputed_Mrd"].formula == (
        "1 if a cell of urban_employment (t, t−1) was interpolated, else 0"
    )
    assert defs["imputed_Mrd"].sources == "results/audit/imputed_cells.parquet"
    full["mrd"] = {"formula": "own_rebound"}
    defs = {d.name: d for d in analysis.definitions(full)}
    assert "gdp_growth (t, t−1)" in defs["imputed_Mrd"].formula


# --------------------------------------------------------------------------- (c) the option

CONTROLS = list(R.CONTROLS)


def registry() -> dict[str, dict]:
    return validate_specs(
        [
            {"id": "desc", "table": 2, "estimator": "describe", "variables": ["Resil", "Nqp"]},
            {
                "id": "base",
                "table": 3,
                "estimator": "ols_fe",
                "dependent": "Resil",
                "regressor": "Nqp",
            },
            {
                "id": "nomuni",
                "table": 5,
                "estimator": "ols_fe",
                "dependent": "Resil",
                "regressor": "Nqp",
                "sample": [{"column": "municipality", "op": "==", "value": 0}],
            },
            {
                "id": "inn",
                "table": 7,
                "estimator": "ols_fe",
                "dependent": "INN",
                "regressor": "Nqp",
            },
            {
                "id": "iv",
                "table": 4,
                "estimator": "iv_fe",
                "dependent": "Mrd",
                "regressor": "Nqp",
                "instrument": "Relief",
            },
            # a dependent without a flag: left as it is
            {
                "id": "gdp",
                "table": 9,
                "estimator": "ols_fe",
                "dependent": "GDP",
                "regressor": "Nqp",
            },
        ],
        CONTROLS,
    )


def test_keep_returns_the_specs_unchanged():
    specs = registry()
    assert with_imputed_dependent(specs, "keep") is specs


def test_drop_appends_the_flag_filter_without_mutating():
    specs = registry()
    before = copy.deepcopy(specs)
    out = with_imputed_dependent(specs, "drop")
    assert specs == before  # the input is untouched
    assert list(out) == list(specs)
    flag = lambda v: {"column": f"imputed_{v}", "op": "==", "value": 0}  # noqa: E731
    assert out["base"]["sample"] == [flag("Resil")]
    assert out["nomuni"]["sample"] == [
        {"column": "municipality", "op": "==", "value": 0},
        flag("Resil"),
    ]
    assert out["inn"]["sample"] == [flag("INN")]
    assert out["iv"]["sample"] == [flag("Mrd")]
    assert out["desc"] is specs["desc"] and out["gdp"] is specs["gdp"]
    # every other field as given
    assert {k: v for k, v in out["iv"].items() if k != "sample"} == {
        k: v for k, v in specs["iv"].items() if k != "sample"
    }
    # the new filters name panel variables: the result passes the registry check
    validate_specs(list(out.values()), CONTROLS)
    # a spec that has the filter already keeps it once: applying the option twice is harmless
    assert with_imputed_dependent(out, "drop") == out


def test_unknown_option_names_the_key():
    with pytest.raises(ConfigError) as exc:
        with_imputed_dependent(registry(), "remove")
    assert exc.value.key == "estimation.imputed_dependent"


def test_the_jobs_read_and_apply_the_flag():
    from nqp_resilience.estimation.bootstrap_shards import bootstrap_columns

    spec = with_imputed_dependent(registry(), "drop")["inn"]
    assert "imputed_INN" in spec_columns(spec, CONTROLS)
    assert "imputed_INN" in bootstrap_columns(spec, CONTROLS, "province")
    data = {"imputed_INN": np.array([0, 1, 0, 1], dtype="int64"), "INN": np.arange(4.0)}
    assert apply_sample(data, spec["sample"]).tolist() == [True, False, True, False]


def test_spec_sample_audit_counts_the_dropped_rows():
    from nqp_resilience.estimation.samples import spec_samples

    n = 6
    analysis_panel = grid().assign(
        Resil=np.linspace(0.1, 0.6, n),
        INN=np.linspace(1.0, 6.0, n),
        Mrd=[np.nan, 0.1, 0.2, np.nan, 0.3, 0.4],
        Nqp=np.linspace(0.2, 0.7, n),
        Relief=np.linspace(0.0, 1.0, n),
        GDP=np.linspace(9.0, 10.0, n),
        municipality=[1, 1, 1, 0, 0, 0],
        **{f: [0] * n for f in FLAGS},
    )
    analysis_panel["imputed_INN"] = [1, 0, 0, 1, 0, 0]
    analysis_panel["imputed_Mrd"] = [0, 1, 1, 0, 0, 0]
    city_panel = pd.DataFrame({"city_code": [A, B], "city_name": ["北京", "唐山"]})
    specs = with_imputed_dependent(registry(), "drop")
    summary, _, _ = spec_samples(analysis_panel, city_panel, specs, CONTROLS, {})
    n_sample = dict(zip(summary["spec"], summary["n_sample"], strict=True))
    n_complete = dict(zip(summary["spec"], summary["n_complete"], strict=True))
    assert n_sample == {"base": 6, "nomuni": 3, "inn": 4, "iv": 4, "gdp": 6}
    assert n_complete["iv"] == 2  # Mrd is missing in each city's first year


# --------------------------------------------------------------------------- (d) config


def test_config_default_is_keep_and_drop_is_accepted():
    from nqp_resilience.config import validate_config

    schema = ROOT / "schemas" / "config.schema.yaml"
    assert validate_config({}, schema)["estimation"]["imputed_dependent"] == "keep"
    cfg = validate_config({"estimation": {"imputed_dependent": "drop"}}, schema)
    assert cfg["estimation"] == {"singletons": "drop", "imputed_dependent": "drop", "batch_size": 1}
    with pytest.raises(ConfigError) as exc:
        validate_config({"estimation": {"imputed_dependent": "remove"}}, schema)
    assert exc.value.key == "estimation.imputed_dependent"


# --------------------------------------------------------------------------- (e) end to end


@pytest.mark.slow
def test_drop_option_removes_exactly_the_flagged_rows(completed_workflow, workflow_copy):
    target = "results/estimates/mech_innovation.json"
    kept = json.loads((completed_workflow / target).read_text(encoding="utf-8"))
    panel = pd.read_parquet(completed_workflow / "results" / "panel" / "analysis.parquet")
    flagged = int((panel["imputed_INN"] == 1).sum())
    assert flagged > 0, "the default data has interpolated invention or population cells"
    assert kept["sample"] == []
    # the target first: --config takes every argument after it
    snakemake(
        workflow_copy, target, "--cores", "2", "--config", "estimation={imputed_dependent: drop}"
    )
    dropped = json.loads((workflow_copy / target).read_text(encoding="utf-8"))
    assert dropped["sample"] == [{"column": "imputed_INN", "op": "==", "value": 0}]
    assert kept["nobs"] - dropped["nobs"] == flagged
    # the panel is the same file: the option changes the specs, not the data
    assert (workflow_copy / "results" / "panel" / "analysis.parquet").read_bytes() == (
        completed_workflow / "results" / "panel" / "analysis.parquet"
    ).read_bytes()
