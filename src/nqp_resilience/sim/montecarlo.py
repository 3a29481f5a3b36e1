"""Monte Carlo study of the whole workflow (docs/monte_carlo.md).

One seed = simulate the raw extracts with that seed and one parameter set, then run the
workflow's own job functions (the ``*_job`` functions the rules' scripts call) in the rules'
order on those files, in one process, and keep every estimate record and bootstrap result.
The reduce step turns the seed files into ``results/monte_carlo/summary.csv``: per parameter
set and spec, the planted value, mean estimate, bias, bias / Monte-Carlo SE, RMSE, the spread
of the estimates against the mean reported SE, the coverage of the CR1 and wild-bootstrap
intervals and the rejection rate at 5 %.

The per-seed job arguments are built here from the same configuration keys the rules read;
``tests/test_montecarlo.py`` runs one seed through the rules and through :func:`run_seed` and
compares the estimate JSON byte for byte.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

from nqp_resilience.config import bootstrap_options, variable_options

log = logging.getLogger("nqp_resilience")

ATTRIBUTES = "resources/cities/city_attributes.csv"
ALIASES = "resources/cities/city_name_aliases.csv"
CODEBOOK_FILE = "resources/codebook.yaml"
INDICATORS = "resources/indicators.yaml"
KEYWORDS = "resources/nqp_keywords.txt"

#: the columns of results/monte_carlo/summary.csv
SUMMARY_COLUMNS = [
    "param_set",
    "spec",
    "estimator",
    "dependent",
    "planted",
    "seeds",
    "mean",
    "bias",
    "mc_se",
    "bias_mc_se",
    "rmse",
    "sd",
    "mean_se",
    "sd_over_se",
    "coverage_cr1",
    "coverage_cr1_mc_se",
    "coverage_wild",
    "rejection_5pct",
    "rejection_mc_se",
]


# ------------------------------------------------------------------------------- parameters
def _get(tree: dict, path: str):
    node = tree
    for key in path.split("."):
        node = node[key]
    return node


def _set(tree: dict, path: str, value) -> None:
    *head, last = path.split(".")
    node = tree
    for key in head:
        node = node[key]
    node[last] = value


def scaled_params(params: dict, planted: dict[str, str], scale: float) -> dict:
    """A copy of the simulator's parameters with every planted effect (the parameter paths of
    ``planted``, e.g. ``resil.beta``) multiplied by ``scale``."""
    import copy

    out = copy.deepcopy(params)
    for path in dict.fromkeys(p for p in planted.values() if p):
        _set(out, path, float(_get(params, path)) * float(scale))
    return out


def planted_values(params: dict, planted: dict[str, str | None]) -> dict[str, float | None]:
    """``{spec: planted value}``: the value at each spec's parameter path (None: nothing is
    planted for that spec, e.g. Nqp1, which no outcome responds to directly)."""
    return {spec: (float(_get(params, path)) if path else None) for spec, path in planted.items()}


def check_planted(planted: dict, params: dict, specs: dict, source: str) -> None:
    """Every spec of the study is in the registry and every planted path names a number of the
    parameter file (a :class:`~nqp_resilience.errors.ConfigError` otherwise)."""
    from nqp_resilience.errors import ConfigError

    for spec, path in planted.items():
        if spec not in specs:
            raise ConfigError(
                f"monte_carlo.planted.{spec}",
                f"is not a spec id of the registry; known: {', '.join(specs)}",
            )
        if path is None:
            continue
        try:
            value = _get(params, path)
        except (KeyError, TypeError):
            raise ConfigError(
                f"monte_carlo.planted.{spec}",
                f"{path!r} is not a parameter of {source}",
            ) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(
                f"monte_carlo.planted.{spec}", f"{path!r} in {source} is not a number: {value!r}"
            )


# ------------------------------------------------------------------------------- one seed
def _job(inputs: dict, outputs: dict, params: dict | None = None, wildcards: dict | None = None):
    """The arguments a ``*_job`` function reads from Snakemake's ``snakemake`` object."""
    return SimpleNamespace(
        input=SimpleNamespace(**inputs),
        output=SimpleNamespace(**outputs),
        params=SimpleNamespace(**(params or {})),
        wildcards=SimpleNamespace(**(wildcards or {})),
        log=[],
    )


def run_pipeline(config: dict, raw: Path, out: Path, specs: list[dict], bootstrap: list[str]):
    """Run the workflow's jobs from the raw folder ``raw`` to the estimates of ``specs`` (and
    the wild bootstrap of the ids in ``bootstrap``) under ``out``, laid out as the rules lay
    out ``results/``. Returns ``{spec: estimate JSON path}`` and ``{spec: bootstrap JSON path}``.
    """
    from nqp_resilience.data import jobs as data_jobs
    from nqp_resilience.data.raw_files import (
        raw_file_table,
        raw_source_path,
        raw_sources_by_grain,
        report_paths,
        yearbook_path,
    )
    from nqp_resilience.estimation import jobs as est_jobs
    from nqp_resilience.indices import jobs as index_jobs

    years = list(range(config["years"]["start"], config["years"]["end"] + 1))
    year_range = [years[0], years[-1]]
    files = raw_file_table(CODEBOOK_FILE)
    grains = raw_sources_by_grain(CODEBOOK_FILE)
    common = {"codebook": CODEBOOK_FILE, "attributes": ATTRIBUTES, "aliases": ALIASES}
    interim, checked = out / "interim", out / "checked"
    for y in years:
        data_jobs.ingest_yearbook_job(
            _job(
                {"raw": yearbook_path(raw, y), **common},
                {"table": str(interim / f"yearbook_{y}.parquet")},
                {"years": year_range},
                {"year": str(y)},
            )
        )
    for s in files:
        data_jobs.ingest_source_job(
            _job(
                {"raw": raw_source_path(raw, s, CODEBOOK_FILE), **common},
                {"table": str(interim / f"{s}.parquet")},
                {"years": year_range},
                {"source": s},
            )
        )
    include_central = config["nqp1"]["include_central"]
    data_jobs.ingest_reports_job(
        _job(
            {
                "reports": report_paths(raw, ATTRIBUTES, year_range, include_central),
                "attributes": ATTRIBUTES,
            },
            {"table": str(interim / "reports.parquet")},
            {"years": year_range},
        )
    )
    pl = config["plausibility"]
    checked_yb = [str(checked / f"yearbook_{y}.parquet") for y in years]
    checked_src = [str(checked / f"{s}.parquet") for s in files]
    data_jobs.plausibility_job(
        _job(
            {
                "yearbook": [str(interim / f"yearbook_{y}.parquet") for y in years],
                "sources": [str(interim / f"{s}.parquet") for s in files],
                "raw_yearbook": [yearbook_path(raw, y) for y in years],
                "raw_sources": [raw_source_path(raw, s, CODEBOOK_FILE) for s in files],
                "corrections": pl["corrections"],
                "codebook": CODEBOOK_FILE,
                "attributes": ATTRIBUTES,
            },
            {
                "yearbook": checked_yb,
                "sources": checked_src,
                "report": str(out / "audit/plausibility.md"),
                "table": str(out / "audit/plausibility.csv"),
            },
            {"action": pl["action"], "thresholds": pl["thresholds"]},
        )
    )
    panel = str(out / "panel/panel.parquet")
    data_jobs.build_panel_job(
        _job(
            {
                "yearbook": checked_yb,
                "city_year": [str(checked / f"{s}.parquet") for s in grains["city_year"]],
                "static": [str(checked / f"{s}.parquet") for s in grains["city"]],
                "national": [str(checked / f"{s}.parquet") for s in grains["year"]],
                "codebook": CODEBOOK_FILE,
                "attributes": ATTRIBUTES,
            },
            {
                "panel": panel,
                "audit": str(out / "audit/imputed_cells.parquet"),
                "sample_table": str(out / "audit/sample.csv"),
                "sample_log": str(out / "audit/sample.md"),
            },
            {
                "years": year_range,
                "sample": config["sample"],
                "edge": config["interpolation"]["edge"],
            },
        )
    )
    indices = out / "indices"
    index_jobs.nqp_index_job(
        _job(
            {"panel": panel, "indicators": INDICATORS},
            {
                "index": str(indices / "nqp.parquet"),
                "weights": str(indices / "nqp_weights.csv"),
            },
            {"entropy": config["entropy"]},
        )
    )
    index_jobs.nqp_text_job(
        _job(
            {"panel": panel, "reports": str(interim / "reports.parquet"), "keywords": KEYWORDS},
            {"table": str(indices / "nqp1.parquet")},
            {"include_central": include_central},
        )
    )
    options = variable_options(config)
    index_jobs.derived_variables_job(
        _job(
            {
                "panel": panel,
                "national": str(checked / "national.parquet"),
                "attributes": ATTRIBUTES,
                "audit": str(out / "audit/imputed_cells.parquet"),
            },
            {"table": str(indices / "variables.parquet")},
            {"options": options},
        )
    )
    analysis = str(out / "panel/analysis.parquet")
    index_jobs.analysis_panel_job(
        _job(
            {
                "panel": panel,
                "index": str(indices / "nqp.parquet"),
                "nqp1": str(indices / "nqp1.parquet"),
                "derived": str(indices / "variables.parquet"),
            },
            {"panel": analysis, "codebook": str(out / "panel/analysis_codebook.md")},
            {"options": dict(options, entropy=config["entropy"], nqp1=config["nqp1"])},
        )
    )
    estimates = {}
    for spec in specs:
        path = out / "estimates" / f"{spec['id']}.json"
        est_jobs.estimate_spec_job(
            _job(
                {"panel": analysis},
                {"estimate": str(path)},
                {
                    "spec": spec,
                    "control_variables": config["control_variables"],
                    "singletons": config["estimation"]["singletons"],
                },
                {"spec": spec["id"]},
            )
        )
        estimates[spec["id"]] = path
    boot = config["bootstrap"]
    draws, inference = bootstrap_options(config)
    results = {}
    by_id = {spec["id"]: spec for spec in specs}
    for sid in bootstrap:
        setup = {
            "spec": by_id[sid],
            "control_variables": config["control_variables"],
            "singletons": config["estimation"]["singletons"],
            "draws": draws,
        }
        # as the rules: one shard is drawn by the reduce job itself, with no shard file
        n_shards = int(boot["shards"])
        shards = [out / "bootstrap" / sid / f"shard_{k}.parquet" for k in range(n_shards)]
        for k, shard in enumerate(shards if n_shards > 1 else []):
            est_jobs.bootstrap_shard_job(
                _job(
                    {"panel": analysis},
                    {"shard": str(shard)},
                    {
                        **setup,
                        "shards": n_shards,
                        "completed": str(out / "bootstrap/.completed" / sid / shard.name),
                    },
                    {"spec": sid, "k": str(k)},
                )
            )
        result = out / "bootstrap" / f"{sid}.json"
        est_jobs.bootstrap_reduce_job(
            _job(
                {"shards": [str(p) for p in shards]}
                if n_shards > 1
                else {"shards": [], "panel": analysis},
                {"result": str(result)},
                {"inference": inference, **setup},
                {"spec": sid},
            )
        )
        results[sid] = result
    return estimates, results


def study_specs(mc: dict, registry: dict) -> list[str]:
    """The spec ids of the study: ``monte_carlo.specs`` (``all``: every regression spec of the
    registry), in registry order."""
    from nqp_resilience.errors import ConfigError

    wanted = mc["specs"]
    if wanted == "all":
        return [sid for sid, spec in registry.items() if spec["estimator"] != "describe"]
    for sid in wanted:
        if sid not in registry or registry[sid]["estimator"] == "describe":
            raise ConfigError(
                "monte_carlo.specs", f"{sid!r} is not a regression spec of the registry"
            )
    return [sid for sid in registry if sid in wanted]


#: the configuration keys a seed of the study depends on
SEED_KEYS = (
    "years",
    "sample",
    "interpolation",
    "plausibility",
    "entropy",
    "resil",
    "mrd",
    "mechanisms",
    "iv",
    "nqp1",
    "heterogeneity",
    "control_variables",
    "estimation",
    "bootstrap",
    "monte_carlo",
)


def monte_carlo_config(config: dict) -> dict:
    """The part of the (validated) workflow configuration a seed job depends on, with only the
    study's specs; checks the study's specs, planted paths and parameter files first
    (:class:`~nqp_resilience.errors.ConfigError` naming the key)."""
    from nqp_resilience.data.io import read_yaml
    from nqp_resilience.errors import ConfigError
    from nqp_resilience.estimation.specs import (
        bootstrap_spec_ids,
        validate_specs,
        with_imputed_dependent,
    )

    mc = config["monte_carlo"]
    registry = with_imputed_dependent(
        validate_specs(config["specs"], config["control_variables"]),
        config["estimation"]["imputed_dependent"],
    )
    ids = study_specs(mc, registry)
    for sid in mc["planted"]:  # entries of specs outside monte_carlo.specs are not used
        if sid not in registry:
            raise ConfigError(
                f"monte_carlo.planted.{sid}",
                "is not a spec id of the registry; known: " + ", ".join(registry),
            )
    boot = (mc.get("bootstrap") or {}).get("specs") or []
    if boot:
        missing = [s for s in bootstrap_spec_ids(boot, registry) if s not in ids]
        if missing and boot != "all-ols-and-iv":
            raise ConfigError(
                "monte_carlo.bootstrap.specs", f"{missing} are not specs of the study"
            )
    for name, pset in mc["params"].items():
        path = Path(pset["file"])
        if not path.is_file():
            raise ConfigError(
                f"monte_carlo.params.{name}.file",
                f"{path} does not exist",
                hint="a simulator parameter file such as resources/simulation/params.yaml",
            )
        check_planted(mc["planted"], read_yaml(path), registry, str(path))
    out = {k: config[k] for k in SEED_KEYS}
    out["specs"] = [registry[s] for s in ids]
    return out


def study_config(config: dict) -> dict:
    """The workflow configuration a Monte Carlo seed runs with: the workflow's own, with the
    bootstrap options of ``monte_carlo.bootstrap`` (draws and shards) over ``bootstrap``."""
    mc = config["monte_carlo"]
    out = dict(config)
    out["bootstrap"] = {**config["bootstrap"], **(mc.get("bootstrap") or {})}
    out["bootstrap"].pop("specs", None)
    out["plausibility"] = dict(config["plausibility"], action=mc.get("plausibility", "warn"))
    return out


def run_seed(
    config: dict,
    param_set: str,
    seed: int,
    work: Path,
    *,
    keep: bool = False,
) -> dict:
    """One seed of the study (``config``: from :func:`monte_carlo_config`): simulate, run the
    pipeline, and return the seed record
    ``{param_set, seed, planted, clipped, estimates: {spec: record}, bootstrap: {spec: record}}``.

    The simulation and the pipeline's files live under ``work`` and are removed afterwards
    unless ``keep``.
    """
    from nqp_resilience.data.io import read_yaml, write_text
    from nqp_resilience.estimation.specs import bootstrap_spec_ids
    from nqp_resilience.sim.simulate import simulate

    mc = config["monte_carlo"]
    pset = mc["params"][param_set]
    specs = config["specs"]  # validated by monte_carlo_config, in the study's order
    registry = {spec["id"]: spec for spec in specs}
    ids = list(registry)
    planted = {sid: mc["planted"].get(sid) for sid in ids}
    boot_spec = (mc.get("bootstrap") or {}).get("specs", [])
    boot_ids = [s for s in bootstrap_spec_ids(boot_spec, registry) if s in ids] if boot_spec else []
    base = read_yaml(pset["file"])
    params = scaled_params(base, planted, pset.get("effects", 1.0))
    work = Path(work)
    if work.exists():
        shutil.rmtree(work)
    params_file = work / "params.yaml"
    import yaml

    write_text(params_file, yaml.safe_dump(params, allow_unicode=True, sort_keys=False))
    raw = work / "raw"
    sim = simulate(seed, params_file, raw, return_simulation=True)
    estimates, boot = run_pipeline(study_config(config), raw, work / "results", specs, boot_ids)
    import pandas as pd

    results = work / "results"
    kept = set(pd.read_parquet(results / "panel/panel.parquet", columns=["city_code"])["city_code"])
    expected = {c["city_code"] for c, keep in zip(sim.cities, sim.in_sample, strict=True) if keep}
    findings = pd.read_csv(results / "audit/plausibility.csv")
    record = {
        "param_set": param_set,
        # the pipeline's sample against the simulator's expected sample (on which the effects
        # are planted), and the plausibility findings the run went on with
        "sample": {
            "cities": len(kept),
            "expected": len(expected),
            "not_expected": sorted(kept - expected),
            "missing": sorted(expected - kept),
        },
        "plausibility_findings": int(len(findings)),
        # the structural slopes the simulator solved from the planted values (docs/simulation.md)
        "structural": {
            **sim.structural,
            **{f"resil_h_{k}": v for k, v in sim.het_structural.items()},
            "resil_trend_loading": sim.trend_loading,
            "resil_gdp_loading": sim.gdp_loading,
        },
        "seed": int(seed),
        "specs": ids,
        "planted": planted_values(params, planted),
        "clipped": sim.clipped,
        "estimates": {s: json.loads(p.read_text(encoding="utf-8")) for s, p in estimates.items()},
        "bootstrap": {s: json.loads(p.read_text(encoding="utf-8")) for s, p in boot.items()},
    }
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return record


def monte_carlo_seed_job(smk) -> None:
    """Rule ``monte_carlo_seed``: one seed of one parameter set ->
    ``results/monte_carlo/{param_set}/seed_{seed}.json``."""
    from nqp_resilience.data.io import write_text

    config = dict(smk.params.config)
    seed, pset = int(smk.wildcards.seed), str(smk.wildcards.param_set)
    out = Path(smk.output.record)
    work = out.parent / f".work_seed_{seed}"
    record = run_seed(config, pset, seed, work)
    write_text(out, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    est = record["estimates"]
    log.info(
        "%s seed %d: %d specs estimated, %d bootstrapped",
        pset,
        seed,
        len(est),
        len(record["bootstrap"]),
    )


# ------------------------------------------------------------------------------- reduce
def seed_rows(record: dict):
    """One row per spec of one seed record: estimate, SE, CR1 and bootstrap intervals, p."""
    rows = []
    for sid in record["specs"]:
        est = record["estimates"][sid]
        boot = record["bootstrap"].get(sid) or {}
        ci = est.get("ci") or [None, None]
        wild = boot.get("bootstrap_ci") or [None, None]
        rows.append(
            {
                "param_set": record["param_set"],
                "seed": record["seed"],
                "spec": sid,
                "estimator": est["estimator"],
                "dependent": est.get("dependent"),
                "planted": record["planted"].get(sid),
                "coef": est.get("coef"),
                "se": est.get("se"),
                "p": est.get("p"),
                "ci_low": ci[0],
                "ci_high": ci[1],
                "wild_low": wild[0],
                "wild_high": wild[1],
                "wild_p": boot.get("bootstrap_p"),
            }
        )
    return rows


def summarise(rows) -> pd.DataFrame:  # noqa: F821
    """The summary table from the per-seed rows (see :data:`SUMMARY_COLUMNS`)."""
    import numpy as np
    import pandas as pd

    df = pd.DataFrame(rows)
    out = []
    for (pset, sid), g in df.groupby(["param_set", "spec"], sort=False):
        g = g[g["coef"].notna()]
        n = len(g)
        coef = g["coef"].to_numpy(float)
        planted = g["planted"].iloc[0] if n else None
        sd = float(coef.std(ddof=1)) if n > 1 else float("nan")
        mc_se = sd / np.sqrt(n) if n > 1 else float("nan")
        row = {
            "param_set": pset,
            "spec": sid,
            "estimator": g["estimator"].iloc[0] if n else None,
            "dependent": g["dependent"].iloc[0] if n else None,
            "planted": planted,
            "seeds": n,
            "mean": float(coef.mean()) if n else float("nan"),
            "sd": sd,
            "mc_se": mc_se,
            "mean_se": float(g["se"].mean()) if n else float("nan"),
            "rejection_5pct": float((g["p"] < 0.05).mean()) if n else float("nan"),
        }
        row["sd_over_se"] = row["sd"] / row["mean_se"] if row["mean_se"] else float("nan")
        row["rejection_mc_se"] = (
            float(np.sqrt(row["rejection_5pct"] * (1 - row["rejection_5pct"]) / n))
            if n
            else float("nan")
        )
        if planted is None or pd.isna(planted):
            row.update(bias=np.nan, bias_mc_se=np.nan, rmse=np.nan, coverage_cr1=np.nan)
            row.update(coverage_cr1_mc_se=np.nan, coverage_wild=np.nan)
        else:
            planted = float(planted)
            row["bias"] = row["mean"] - planted
            row["bias_mc_se"] = row["bias"] / mc_se if mc_se else float("nan")
            row["rmse"] = float(np.sqrt(np.mean((coef - planted) ** 2)))
            cover = (g["ci_low"] <= planted) & (planted <= g["ci_high"])
            row["coverage_cr1"] = float(cover.mean())
            row["coverage_cr1_mc_se"] = float(
                np.sqrt(row["coverage_cr1"] * (1 - row["coverage_cr1"]) / n)
            )
            wild = g[g["wild_low"].notna()]
            row["coverage_wild"] = (
                float(((wild["wild_low"] <= planted) & (planted <= wild["wild_high"])).mean())
                if len(wild)
                else np.nan
            )
        out.append(row)
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def summary_markdown(summary, commands: str = "") -> str:
    """The summary as a Markdown table (rounded), with the column legend."""
    import math

    def f(v, d=4):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        return f"{v:.{d}f}"

    lines = [
        "| set | spec | planted | seeds | mean | bias | bias/MC-SE | RMSE | sd | mean SE | "
        "CR1 cover | wild cover | reject 5 % |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.to_dict("records"):
        lines.append(
            f"| {r['param_set']} | `{r['spec']}` | {f(r['planted'], 3)} | {r['seeds']} | "
            f"{f(r['mean'])} | {f(r['bias'])} | {f(r['bias_mc_se'], 2)} | {f(r['rmse'])} | "
            f"{f(r['sd'])} | {f(r['mean_se'])} | {f(r['coverage_cr1'], 2)} | "
            f"{f(r['coverage_wild'], 2)} | {f(r['rejection_5pct'], 2)} |"
        )
    return "\n".join(lines) + "\n"


def draws_markdown(records) -> str:
    """Per parameter set: the seeds, the seeds whose run listed plausibility findings, and the
    seeds whose sample differs from the simulator's expected sample."""
    lines = [
        "| set | seeds | with plausibility findings | sample differs from the expected one |",
        "|---|---:|---:|---:|",
    ]
    by_set: dict[str, list] = {}
    for r in records:
        by_set.setdefault(r["param_set"], []).append(r)
    for pset, recs in by_set.items():
        findings = sum(1 for r in recs if r["plausibility_findings"])
        differs = sum(1 for r in recs if r["sample"]["not_expected"] or r["sample"]["missing"])
        lines.append(f"| {pset} | {len(recs)} | {findings} | {differs} |")
    return "\n".join(lines) + "\n"


def summary_figure(summary, pdf_path, png_path) -> None:
    """Two panels per spec (rows) and parameter set (markers): the bias in Monte-Carlo SEs,
    with the ±3 band of the acceptance rule, and the CR1 coverage with the [0.90, 0.98] band."""
    import numpy as np

    from nqp_resilience.outputs.figures import _new_figure, _save, _style

    sets = list(dict.fromkeys(summary["param_set"]))
    specs = list(dict.fromkeys(summary["spec"]))
    markers = ["o", "s", "^", "D", "v"]
    with _style():
        fig = _new_figure(0.9 + 0.16 * len(specs))
        ax_bias, ax_cov = fig.subplots(1, 2, sharey=True)
        y = {sid: len(specs) - 1 - i for i, sid in enumerate(specs)}
        ax_bias.axvspan(-3, 3, color="0.92", lw=0)
        ax_bias.axvline(0, color="0.4", lw=0.6)
        ax_cov.axvspan(0.90, 0.98, color="0.92", lw=0)
        ax_cov.axvline(0.95, color="0.4", lw=0.6)
        for k, pset in enumerate(sets):
            rows = summary[summary["param_set"] == pset]
            off = (k - (len(sets) - 1) / 2) * 0.2
            ys = np.array([y[s] for s in rows["spec"]]) + off
            m = markers[k % len(markers)]
            ax_bias.plot(rows["bias_mc_se"], ys, m, ms=3, label=pset)
            ax_cov.plot(rows["coverage_cr1"], ys, m, ms=3, label=pset)
        ax_bias.set_yticks(range(len(specs)), list(reversed(specs)))
        # two-line labels: the panels are narrow, one-line labels ran into each other
        ax_bias.set_xlabel("bias /\nMonte-Carlo SE")
        ax_cov.set_xlabel("coverage of the\n95 % CR1 interval")
        ax_cov.set_xlim(0.7, 1.01)  # a coverage of 1 stays visible
        # the coverage panel's left end (below 0.8) is empty in any usable study
        ax_cov.legend(loc="lower left", fontsize=6)
        _save(fig, pdf_path, png_path)


def monte_carlo_summary_job(smk) -> None:
    """Rule ``monte_carlo_summary``: every seed record -> summary.csv, summary.md, the figure
    and the per-seed rows (seeds.csv)."""
    import pandas as pd

    from nqp_resilience.data.io import write_csv, write_text

    rows, draws = [], []
    for path in smk.input.records:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        rows.extend(seed_rows(record))
        draws.append(record)
    seeds = pd.DataFrame(rows)
    summary = summarise(rows)
    write_csv(seeds, smk.output.seeds, float_format="%.10g")
    write_csv(summary, smk.output.summary, float_format="%.6g")
    write_text(smk.output.report, draws_markdown(draws) + "\n" + summary_markdown(summary))
    summary_figure(summary, smk.output.pdf, smk.output.png)
    log.info(
        "Monte Carlo: %d seed records, %d rows in %s",
        len(smk.input.records),
        len(summary),
        smk.output.summary,
    )


# ------------------------------------------------------------------ direct check, many seeds
def direct_resil(params: dict, seeds, *, root=".") -> list[dict]:
    """Table 3's two regressions (Resil on Nqp with city and year fixed effects, with and
    without the eight controls, CR1 by city) and Table 5 (5) (with the controls and
    city-specific linear trends) computed with the workflow's estimator directly on
    the simulator's arrays: its expected sample, its index q and Resil with its noise, without
    the raw files and the pipeline. About 0.5 s a seed, so thousands of seeds show whether a
    coverage seen over the study's 100 seeds is the DGP's or those seeds' draw of the noise.
    Returns one row per seed and spec in the layout of :func:`seed_rows` (no bootstrap; the CR1
    interval as the estimate records give it)."""
    import numpy as np

    from nqp_resilience.data.cities import read_attributes
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.estimation.ols import twfe
    from nqp_resilience.indices.indicators import load_indicator_system
    from nqp_resilience.sim.simulate import Simulation

    root = Path(root)
    attributes = read_attributes(root / ATTRIBUTES)
    codebook = Codebook(root / CODEBOOK_FILE)
    indicators = load_indicator_system(root / INDICATORS)
    rows = []
    for seed in seeds:
        sim = Simulation(params, attributes, int(seed), codebook, indicators)
        s = sim.in_sample
        data = {
            "city_code": np.repeat(np.flatnonzero(s), sim.T),
            "year": np.tile(sim.years, int(s.sum())),
            "Resil": sim.resil[s].ravel(),
            "Nqp": sim.q[s].ravel(),
        }
        controls = sim._controls()
        names = [f"control_{k}" for k in range(len(controls))]
        for name, values in zip(names, controls, strict=True):
            data[name] = values[s].ravel()
        specs = {
            "baseline": (names, None),
            "baseline_nocontrols": (None, None),
            "rob_city_trends": (names, "city_code"),
        }
        estimates = {}
        for spec, (regressors, trends) in specs.items():
            fit = twfe(data, "Resil", "Nqp", regressors, trends=trends)
            estimates[spec] = {
                "estimator": "ols_fe",
                "dependent": "Resil",
                "coef": fit.coef,
                "se": fit.se,
                "p": fit.p,
                "ci": list(fit.ci),
            }
        # the study's own row layout: a seed record without planted values or bootstrap
        record = {"param_set": "direct", "seed": int(seed), "specs": list(specs), "planted": {}}
        rows += seed_rows(record | {"estimates": estimates, "bootstrap": {}})
    return rows


def direct_summary(rows: list[dict], planted: dict) -> list[dict]:
    """Per spec of :func:`direct_resil`: the study's summary (:func:`summarise`) of its rows,
    judged against ``planted`` ({spec: value})."""
    return summarise([dict(r, planted=planted[r["spec"]]) for r in rows]).to_dict("records")


def main(argv=None) -> int:
    """``python -m nqp_resilience.sim.montecarlo --seeds 101-1000 --effects 1``: the direct
    check of Tables 3 and 5 (5) over many seeds (:func:`direct_resil`), printed as a table."""
    import argparse

    from nqp_resilience.data.io import read_yaml

    ap = argparse.ArgumentParser(
        prog="python -m nqp_resilience.sim.montecarlo",
        description="Tables 3 and 5 (5) on the simulator's arrays over many seeds",
    )
    ap.add_argument("--params", default="resources/simulation/params.yaml")
    ap.add_argument("--effects", type=float, default=1.0, help="factor on every planted effect")
    ap.add_argument("--seeds", default="101-1000", help="first-last (inclusive)")
    args = ap.parse_args(argv)
    first, last = (int(v) for v in args.seeds.split("-"))
    planted = read_yaml("config.yaml")["monte_carlo"]["planted"]
    params = scaled_params(read_yaml(args.params), planted, args.effects)
    values = planted_values(params, planted)
    rows = direct_resil(params, range(first, last + 1))
    print("| spec | planted | seeds | mean | sd | mean SE | CR1 cover |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in direct_summary(rows, values):
        print(
            f"| `{r['spec']}` | {r['planted']:.3f} | {r['seeds']} | {r['mean']:.4f} | "
            f"{r['sd']:.4f} | {r['mean_se']:.4f} | {r['coverage_cr1']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
