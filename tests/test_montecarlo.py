"""The Monte Carlo study: planting on the measured scale, the study's configuration, the
summary statistics, the same results as the rules, and a small study through Snakemake."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from nqp_resilience.config import validate_config
from nqp_resilience.data.codebook import Codebook
from nqp_resilience.data.io import read_yaml
from nqp_resilience.errors import ConfigError
from nqp_resilience.indices.indicators import load_indicator_system
from nqp_resilience.sim import montecarlo as mcm
from nqp_resilience.sim.simulate import Simulation, read_attributes

from conftest import ATTRIBUTES, PARAMS, ROOT, copy_workflow, dry_run_jobs, snakemake

CONFIG = ROOT / "config.yaml"


def _config(**mc):
    config = read_yaml(CONFIG)
    config["monte_carlo"].update(mc)
    validate_config(config, ROOT / "schemas/config.schema.yaml", source="config")
    return config


def _simulation(seed, params=None):
    return Simulation(
        params or read_yaml(PARAMS),
        read_attributes(ATTRIBUTES),
        seed,
        Codebook(ROOT / "resources/codebook.yaml"),
        load_indicator_system(ROOT / "resources/indicators.yaml"),
    )


# --------------------------------------------------------------------------- planting
@pytest.mark.parametrize("seed", [3, 17, 20240601])
@pytest.mark.parametrize("scale", [0.0, 1.0, 2.0])
def test_structure_measures_are_planted_on_their_own_scale(seed, scale):
    """Rationalisation and advancement are nonlinear in employment: the simulator solves the
    structural slopes so that the fixed-effects regression (with the controls) of the measure,
    without its own noise, on the index gives the parameter, for any seed and size."""
    import pyfixest as pf

    from nqp_resilience.indices.variables import advancement, rationalization

    params = read_yaml(PARAMS)
    planted = read_yaml(CONFIG)["monte_carlo"]["planted"]
    params = mcm.scaled_params(params, planted, scale)
    sim = _simulation(seed, params)
    # rebuild the measures from the simulated employment with the noise switched off
    e = params["employment"]
    for name, measure, noise in (
        ("beta_rat", rationalization, "rat_noise_sd"),
        ("beta_adv", advancement, "adv_noise_sd"),
    ):
        quiet = copy.deepcopy(params)
        quiet["employment"][noise] = 0.0
        sim0 = _simulation(seed, quiet)
        s = sim0.in_sample
        v = sim0.values
        panel = pd.DataFrame(
            {k: v[k][s].ravel() for k in ("gdp_primary", "gdp_secondary", "gdp_tertiary")}
            | {
                f"employment_{k}": v[f"employment_{k}"][s].ravel()
                for k in ("primary", "secondary", "tertiary")
            }
        )
        m = np.zeros(sim0.q.shape)
        m[s] = np.asarray(measure(panel)).reshape(-1, sim0.T)
        df = _in_sample_frame(sim0, y=m)
        controls = "+".join(f"c{k}" for k in range(8))
        coef = pf.feols(f"y ~ q + {controls} | city + year", df).coef()["q"]
        assert coef == pytest.approx(e[name], abs=1e-6 + 1e-3 * abs(e[name])), (name, seed)
    assert set(sim.structural) == {"beta_une", "beta_rat", "beta_adv"}


def _in_sample_frame(sim, **columns):
    s = sim.in_sample
    codes = np.array([c["city_code"] for c in sim.cities])
    frame = {
        "city": np.repeat(codes[s], sim.T),
        "year": np.tile(sim.years, int(s.sum())),
        "q": sim.q[s].ravel(),
    }
    for k, c in enumerate(sim._controls()):
        frame[f"c{k}"] = c[s].ravel()
    for name, value in columns.items():
        frame[name] = np.broadcast_to(value, sim.q.shape)[s].ravel()
    return pd.DataFrame(frame)


def _with_city_trends(df):
    """``df`` with one column per city, city x (year − mean year), and those columns joined by
    "+" for a formula: city-specific linear trends as explicit regressors (one of them is
    collinear with the year effects; pyfixest drops it)."""
    trend = pd.get_dummies(df["city"], dtype=float).mul(df["year"] - df["year"].mean(), axis=0)
    trend.columns = [f"tr{c}" for c in trend.columns]
    return pd.concat([df, trend], axis=1), "+".join(trend.columns)


@pytest.mark.parametrize("seed", [5, 11, 20240601])
@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_resil_estimands_are_the_published_values_by_pyfixest(seed, scale):
    """Resil without noise, regressed as the paper's specs are (pyfixest, city and year fixed
    effects): the coefficient of Nqp with and without the controls, with the controls and
    city-specific linear trends, and of each interaction D x Nqp next to Nqp are the parameter
    file's values (Tables 3, 5 (5) and 7)."""
    import pyfixest as pf

    params = mcm.scaled_params(
        read_yaml(PARAMS), read_yaml(CONFIG)["monte_carlo"]["planted"], scale
    )
    sim = _simulation(seed, params)
    r = params["resil"]
    df = _in_sample_frame(
        sim, y=sim.resil_planted, **{f"{k}q": sim.dummies[k][:, None] * sim.q for k in r["het"]}
    )
    controls = "+".join(f"c{k}" for k in range(8))
    fit = pf.feols(f"y ~ q + {controls} | city + year", df)
    assert fit.coef()["q"] == pytest.approx(r["beta"], abs=1e-9)
    fit = pf.feols("y ~ q | city + year", df)
    assert fit.coef()["q"] == pytest.approx(r["beta_no_controls"], abs=1e-9)
    # Table 5 (5): city-specific linear trends as explicit city x year columns
    wide, trends = _with_city_trends(df)
    fit = pf.feols(f"y ~ q + {controls} + {trends} | city + year", wide)
    assert fit.coef()["q"] == pytest.approx(r["beta_city_trends"], abs=1e-9)
    for k, target in r["het"].items():
        fit = pf.feols(f"y ~ {k}q + q + {controls} | city + year", df)
        assert fit.coef()[f"{k}q"] == pytest.approx(target, abs=1e-9), k


@pytest.mark.parametrize("seed", [5, 11, 20240601])
def test_unmodelled_slope_differences_barely_move_the_baseline_se(seed):
    """The baseline (q and the controls) does not model Table 7's slope differences, so the CR1
    SE counts them as residual variation. With the interactions planted on D x q, the
    regressor of Table 7, the structural differences are of the published size and add less
    than 5 % to the baseline's SE at the published effects (pyfixest, CR1 by city). Planted on
    D x (q - year mean), they had to be three to four times larger and added 6-9 % on these
    seeds (12 % on others), and the interval over-covered (docs/simulation.md)."""
    import pyfixest as pf

    sim = _simulation(seed)
    noise = sim.resil - sim.resil_planted
    df = _in_sample_frame(sim, planted=sim.resil_planted, noise=noise)
    controls = "+".join(f"c{k}" for k in range(8))
    se = {
        y: pf.feols(f"{y} ~ q + {controls} | city + year", df, vcov={"CRV1": "city"}).se()["q"]
        for y in ("planted", "noise")
    }
    # the two parts' scores add up (cross terms average out): SE^2 = SE_noise^2 + SE_planted^2
    assert math.sqrt(1 + (se["planted"] / se["noise"]) ** 2) < 1.05


def test_direct_check_is_table3_by_pyfixest():
    """The direct check over many seeds (Tables 3 and 5 (5) on the simulator's arrays, no
    pipeline) gives pyfixest's coefficient and CR1 SE on the same arrays (relative 1e-8), and
    its summary counts the seeds whose interval holds the planted value."""
    import pyfixest as pf

    params = read_yaml(PARAMS)
    rows = mcm.direct_resil(params, [7], root=ROOT)
    sim = _simulation(7, params)
    df = _in_sample_frame(sim, y=sim.resil)
    df, trends = _with_city_trends(df)
    controls = "+".join(f"c{k}" for k in range(8))
    rhs = (f"q + {controls}", "q", f"q + {controls} + {trends}")
    assert [r["spec"] for r in rows] == ["baseline", "baseline_nocontrols", "rob_city_trends"]
    for row, formula in zip(rows, rhs, strict=True):
        fit = pf.feols(f"y ~ {formula} | city + year", df, vcov={"CRV1": "city"})
        assert row["coef"] == pytest.approx(fit.coef()["q"], rel=1e-8)
        if row["spec"] != "rob_city_trends":
            assert row["se"] == pytest.approx(fit.se()["q"], rel=1e-8)
            continue
        # the trends' intercepts and slopes are nested in the city clusters, so (as reghdfe)
        # the workflow counts K = 1 + 8 + T; the explicit columns here would be counted: compare
        # with pyfixest's sandwich without its (N - 1)/(N - K) factor
        raw = pf.feols(
            f"y ~ {formula} | city + year",
            df,
            vcov={"CRV1": "city"},
            ssc=pf.ssc(adj=False, cluster_adj=True),
        )
        n, k = len(df), 1 + 8 + sim.T
        assert row["se"] == pytest.approx(raw.se()["q"] * math.sqrt((n - 1) / (n - k)), rel=1e-8)
    planted = {
        "baseline": rows[0]["ci_high"] + 1.0,
        "baseline_nocontrols": rows[1]["coef"],
        "rob_city_trends": rows[2]["ci_low"] - 1e-6,
    }
    out = {r["spec"]: r for r in mcm.direct_summary(rows, planted)}
    assert out["baseline"]["coverage_cr1"] == 0.0
    assert out["baseline_nocontrols"]["coverage_cr1"] == 1.0
    assert out["rob_city_trends"]["coverage_cr1"] == 0.0


@pytest.mark.parametrize("seed", [4, 20240601])
def test_expected_unemployment_rate_has_the_published_slope(seed):
    """Une is bounded: its expected value (over the noise) regressed on Nqp with the fixed
    effects and controls (pyfixest) has the planted slope, although cells reach the bound."""
    import pyfixest as pf

    sim = _simulation(seed)
    df = _in_sample_frame(sim, y=sim.une_expected)
    controls = "+".join(f"c{k}" for k in range(8))
    fit = pf.feols(f"y ~ q + {controls} | city + year", df)
    beta = sim.p["unemployment"]["beta"]
    assert fit.coef()["q"] == pytest.approx(beta, abs=1e-6 + 1e-3 * abs(beta))


def test_expected_clipped_normal_by_simulation():
    from nqp_resilience.sim.simulate import _expected_clipped

    rng = np.random.default_rng(1)
    mu = np.array([0.001, 0.004, 0.01, 0.033, 0.115])
    draws = np.clip(mu[:, None] + 0.01 * rng.standard_normal((5, 400_000)), 0.004, 0.12)
    expected = _expected_clipped(mu, 0.01, 0.004, 0.12)
    assert np.allclose(expected, draws.mean(axis=1), atol=4 * 0.01 / np.sqrt(400_000))
    assert np.array_equal(_expected_clipped(mu, 0.0, 0.004, 0.12), np.clip(mu, 0.004, 0.12))


@pytest.mark.parametrize("seed", [2, 9, 20240601])
def test_bounded_outcomes_are_rarely_clipped(seed):
    """Une is planted on two-way-demeaned q, so its bounds bend few cells (the attenuation of
    the earlier within-city planting came from 7-8 % clipped cells)."""
    doubled = mcm.scaled_params(read_yaml(PARAMS), read_yaml(CONFIG)["monte_carlo"]["planted"], 2)
    for params in (read_yaml(PARAMS), doubled):
        sim = _simulation(seed, params)
        assert sim.clipped["Une"] < 0.03, sim.clipped
        assert sim.clipped["INN"] < 0.01 and sim.clipped["Talent"] < 0.01, sim.clipped


def test_no_controls_gap_needs_gdp_moving_with_nqp():
    params = read_yaml(PARAMS)
    params["ratios"]["log_gdp_per_capita"]["within_load"] = 0.0
    with pytest.raises(ValueError, match="within_load"):
        _simulation(1, params)


# --------------------------------------------------------------------------- configuration
def test_scaled_params_scale_each_planted_path_once():
    params = read_yaml(PARAMS)
    planted = {"a": "resil.beta", "b": "resil.beta", "c": "resil.het.ADM", "d": None}
    out = mcm.scaled_params(params, planted, 2.0)
    assert out["resil"]["beta"] == 2 * params["resil"]["beta"]
    assert out["resil"]["het"]["ADM"] == 2 * params["resil"]["het"]["ADM"]
    assert out["resil"]["het"]["Asset"] == params["resil"]["het"]["Asset"]
    assert params["resil"]["beta"] == 0.068  # the input is not modified
    assert mcm.planted_values(out, planted) == {
        "a": 0.136,
        "b": 0.136,
        "c": 0.064,
        "d": None,
    }


def test_the_default_study_plants_the_published_values():
    """Planted = published: every planted parameter of the default file is the published
    coefficient of its spec (no per-seed tuning)."""
    published = read_yaml(ROOT / "resources/published.yaml")["specs"]
    planted = read_yaml(CONFIG)["monte_carlo"]["planted"]
    values = mcm.planted_values(read_yaml(PARAMS), planted)
    same_spec = {
        "baseline",
        "baseline_nocontrols",
        "rob_une",
        "rob_mrd",
        "mech_rationalization",
        "mech_advancement",
        "mech_talent",
        "mech_innovation",
        "het_asset",
        "het_govp",
        "het_adm",
        "rob_city_trends",
    }
    for sid in same_spec:
        assert values[sid] == published[sid]["coef"]["value"], sid
    # the other Resil specs estimate the same slope as the baseline
    for sid, path in planted.items():
        if sid not in same_spec and path:
            assert path == "resil.beta", sid


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"planted": {"nope": "resil.beta"}}, "monte_carlo.planted.nope"),
        ({"planted": {"baseline": "resil.nope"}}, "monte_carlo.planted.baseline"),
        ({"planted": {"baseline": "resil.het"}}, "monte_carlo.planted.baseline"),
        ({"specs": ["baseline", "desc_stats"]}, "monte_carlo.specs"),
        ({"params": {"x": {"file": "missing.yaml"}}}, "monte_carlo.params.x.file"),
    ],
)
def test_bad_study_settings_name_the_key(change, key):
    config = read_yaml(CONFIG)
    mc = config["monte_carlo"]
    if "planted" in change:
        mc["planted"] = dict(mc["planted"], **change["planted"])
    elif "specs" in change:
        mc["specs"] = change["specs"]
        mc["planted"] = {"baseline": "resil.beta"}
    else:
        mc["params"] = change["params"]
    validate_config(config, ROOT / "schemas/config.schema.yaml", source="config")
    with pytest.raises(ConfigError) as err:
        mcm.monte_carlo_config(config)
    assert key in str(err.value)


def test_schema_rejects_unknown_study_keys():
    from nqp_resilience.errors import ProjectError

    config = read_yaml(CONFIG)
    config["monte_carlo"]["sedes"] = 3
    with pytest.raises(ProjectError, match="sedes"):
        validate_config(config, ROOT / "schemas/config.schema.yaml", source="config")


# --------------------------------------------------------------------------- summary
def _rows(coefs, ses, planted, spec="s", pset="p", wild=None):
    rows = []
    for k, (b, se) in enumerate(zip(coefs, ses, strict=True)):
        rows.append(
            {
                "param_set": pset,
                "seed": k,
                "spec": spec,
                "estimator": "ols_fe",
                "dependent": "Resil",
                "planted": planted,
                "coef": b,
                "se": se,
                "p": 2 * (1 - _phi(abs(b / se))),
                "ci_low": b - 1.96 * se,
                "ci_high": b + 1.96 * se,
                "wild_low": wild[k][0] if wild else None,
                "wild_high": wild[k][1] if wild else None,
                "wild_p": None,
            }
        )
    return rows


def _phi(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_summary_statistics_by_hand():
    coefs = [0.1, 0.2, 0.3, 0.4]
    ses = [0.05, 0.05, 0.1, 0.1]
    wild = [(0.0, 0.15), (0.1, 0.3), (0.26, 0.5), (0.3, 0.5)]
    out = mcm.summarise(_rows(coefs, ses, 0.25, wild=wild)).iloc[0]
    sd = np.std(coefs, ddof=1)
    assert out["mean"] == pytest.approx(0.25)
    assert out["bias"] == pytest.approx(0.0, abs=1e-15)
    assert out["sd"] == pytest.approx(sd)
    assert out["mc_se"] == pytest.approx(sd / 2)
    assert out["rmse"] == pytest.approx(math.sqrt(np.mean((np.array(coefs) - 0.25) ** 2)))
    assert out["mean_se"] == pytest.approx(0.075)
    assert out["sd_over_se"] == pytest.approx(sd / 0.075)
    # 0.25 in [0.1 ± 0.098]? no; [0.2 ± 0.098] yes; [0.3 ± 0.196] yes; [0.4 ± 0.196] yes
    assert out["coverage_cr1"] == pytest.approx(0.75)
    assert out["coverage_wild"] == pytest.approx(0.25)  # only [0.1, 0.3] holds 0.25
    # p < 0.05: t = 2, 4, 3, 4 -> all four
    assert out["rejection_5pct"] == 1.0
    assert out["seeds"] == 4
    assert list(mcm.summarise(_rows(coefs, ses, 0.25)).columns) == mcm.SUMMARY_COLUMNS


def test_summary_without_a_planted_value_judges_nothing():
    out = mcm.summarise(_rows([0.1, -0.1, 0.05], [0.1, 0.1, 0.1], None)).iloc[0]
    assert math.isnan(out["bias"]) and math.isnan(out["coverage_cr1"])
    assert out["rejection_5pct"] == 0.0 and out["seeds"] == 3


def test_size_of_a_calibrated_test_is_five_percent():
    """Normal estimates with their true SE: rejection at 5 % and coverage come out at 0.05 and
    0.95 within Monte-Carlo error (a check of the summary's arithmetic on many draws)."""
    rng = np.random.default_rng(0)
    n = 20000
    coefs = rng.normal(0.0, 0.01, n)
    out = mcm.summarise(_rows(coefs, [0.01] * n, 0.0)).iloc[0]
    assert abs(out["rejection_5pct"] - 0.05) < 3 * out["rejection_mc_se"]
    assert abs(out["coverage_cr1"] - 0.95) < 3 * out["coverage_cr1_mc_se"]
    assert abs(out["bias_mc_se"]) < 3


# --------------------------------------------------------------------------- the same results
@pytest.mark.slow
def test_one_seed_gives_the_rules_estimates_byte_for_byte(completed_workflow, tmp_path):
    """The default data is seed 20240601 of the default parameter file: the Monte Carlo path
    on that seed writes the same estimate JSON, byte for byte, as the rules did."""
    config = read_yaml(completed_workflow / "config.yaml")
    validate_config(config, ROOT / "schemas/config.schema.yaml", source="config")
    study = mcm.monte_carlo_config(config)
    record = mcm.run_seed(study, "default", 20240601, tmp_path / "seed", keep=True)
    written = sorted((tmp_path / "seed/results/estimates").glob("*.json"))
    assert len(written) == len(record["specs"]) == 19
    for path in written:
        rule_file = completed_workflow / "results/estimates" / path.name
        assert path.read_bytes() == rule_file.read_bytes(), path.name
    raw = sorted(p.relative_to(tmp_path / "seed/raw") for p in (tmp_path / "seed/raw").rglob("*"))
    for rel in raw:
        if rel.name != "SIMULATED.md" and (ROOT / "resources/raw" / rel).is_file():
            assert (tmp_path / "seed/raw" / rel).read_bytes() == (
                ROOT / "resources/raw" / rel
            ).read_bytes(), rel


@pytest.mark.slow
def test_small_study_through_snakemake_resumes(tmp_path):
    """Five seeds of one parameter set through `snakemake monte_carlo`: one job per seed, the
    summary has one row per spec, the baseline is recovered, and after an interruption (one
    seed's record and the summary missing) the rerun does that seed and the summary only."""
    work = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((work / "config.yaml").read_text(encoding="utf-8"))
    config["monte_carlo"]["seeds"] = {"first": 101, "count": 5}
    config["monte_carlo"]["params"] = {"default": config["monte_carlo"]["params"]["default"]}
    config["monte_carlo"]["bootstrap"]["specs"] = ["baseline"]
    (work / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    proc = snakemake(work, "--cores", "2", "monte_carlo", timeout=1800)
    assert proc.stdout.count("rule monte_carlo_seed:") == 5
    out = work / "results/monte_carlo"
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == mcm.SUMMARY_COLUMNS
    assert len(summary) == 19 and (summary["seeds"] == 5).all()
    assert (out / "summary.png").stat().st_size > 0
    row = summary.set_index("spec").loc["baseline"]
    assert row["planted"] == 0.068
    assert abs(row["bias_mc_se"]) < 3 + 1e-9 or abs(row["bias"]) < 2 * row["mean_se"]
    assert not math.isnan(row["coverage_wild"])
    seeds = pd.read_csv(out / "seeds.csv")
    assert sorted(seeds["seed"].unique()) == [101, 102, 103, 104, 105]
    assert not list(out.glob("default/.work_seed_*"))  # the seed's files are removed
    before = (out / "default/seed_102.json").read_bytes()
    # an interrupted run: one seed's record and the summary were not written yet
    (out / "default/seed_104.json").unlink()
    (out / "summary.csv").unlink()
    assert dry_run_jobs(work, "monte_carlo") == {
        ("monte_carlo_seed", "param_set=default, seed=104"),
        ("monte_carlo_summary", ""),
        ("monte_carlo", ""),
    }
    snakemake(work, "--cores", "2", "monte_carlo", timeout=900)
    assert (out / "default/seed_102.json").read_bytes() == before
    again = json.loads((out / "default/seed_104.json").read_text(encoding="utf-8"))
    assert again["seed"] == 104 and again["planted"]["baseline"] == 0.068
