"""End-to-end workflow tests: the real Snakemake on a copy of the workflow (docs/design.md)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import PARAMS, copy_workflow, dry_run_jobs, jobs_of, snakemake

pytestmark = pytest.mark.slow

#: jobs downstream of the panel (every panel change reruns them)
CONFIG = yaml.safe_load((PARAMS.parents[2] / "config.yaml").read_text(encoding="utf-8"))
SPEC_IDS = [s["id"] for s in CONFIG["specs"]]
ESTIMATOR = {s["id"]: s["estimator"] for s in CONFIG["specs"]}
PSM_IDS = [s for s in SPEC_IDS if ESTIMATOR[s] == "psm_fe"]
HAVE_TEX = bool(shutil.which("pdflatex") and shutil.which("pdftoppm"))
#: the jobs that collect tables into one document (and compile it where TeX is installed)
DOCUMENT_JOBS = {("tables_document", "")} | ({("tables_pdf", "")} if HAVE_TEX else set())
TABLE_JOBS = (
    {("table_estimates", f"number={n}") for n in range(3, 8)}
    | {
        ("table_desc", ""),
        ("table_balance", ""),
        ("table_replication", ""),
        ("table_bootstrap", ""),
    }
    | DOCUMENT_JOBS
)
#: the wild bootstrap of every OLS and IV spec: its shards and the reduce job
BOOT_IDS = [s for s in SPEC_IDS if ESTIMATOR[s] in ("ols_fe", "iv_fe")]
SHARDS = CONFIG["bootstrap"]["shards"]


def bootstrap_jobs(*spec_ids: str) -> set[tuple[str, str]]:
    """The shard and reduce jobs of the bootstrap of these specs (with one shard, the reduce job
    draws itself: no shard job)."""
    shards = range(SHARDS) if SHARDS > 1 else ()
    return {("bootstrap_shard", f"spec={s}, k={k}") for s in spec_ids for k in shards} | {
        ("bootstrap_reduce", f"spec={s}") for s in spec_ids
    }


#: the figure jobs: coefficient plot, data figures, score figures
FIGURE_JOBS = {("figures_coefficients", ""), ("figures_data", ""), ("figures_pscore", "")}
SPEC_JOBS = {(ESTIMATOR[s], f"spec={s}") for s in SPEC_IDS} | {("replication_check", "")}
AFTER_INDEX = (
    {("analysis_panel", ""), ("desc_stats", ""), ("spec_samples", ""), ("all", "")}
    | SPEC_JOBS
    | TABLE_JOBS
    | FIGURE_JOBS
    | bootstrap_jobs(*BOOT_IDS)
)
AFTER_PANEL = {
    ("build_panel", ""),
    ("nqp_index", ""),
    ("nqp_text", ""),
    ("derived_variables", ""),
    ("table_indicators", ""),
} | AFTER_INDEX


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lint_reports_nothing(tmp_path):
    work = copy_workflow(tmp_path / "wf")
    out = snakemake(work, "--lint").stdout
    assert "Lints for" not in out, out
    assert "Congratulations" in out


def test_default_panel_shape_and_completeness(completed_workflow):
    panel = pd.read_parquet(completed_workflow / "results/panel/panel.parquet")
    n_cities = panel["city_code"].nunique()
    assert 220 <= n_cities <= 240
    assert sorted(panel["year"].unique()) == list(range(2010, 2022))
    assert len(panel) == n_cities * 12
    assert not panel.duplicated(["city_code", "year"]).any()
    assert panel.isna().sum().sum() == 0
    sample = pd.read_csv(completed_workflow / "results/audit/sample.csv", dtype={"city_code": str})
    assert set(sample.loc[sample["kept"], "city_code"]) == set(panel["city_code"])
    # cities changed in 2011 are gone (巢湖, 毕节, 铜仁, 合肥, 芜湖, 马鞍山)
    assert not {"341400", "520500", "520600", "340100", "340200", "340500"} & set(
        panel["city_code"]
    )
    # every dropped city is named in the sample log with its reason
    log = (completed_workflow / "results/audit/sample.md").read_text(encoding="utf-8")
    for _, row in sample[~sample["kept"]].iterrows():
        assert f"| {row['city_code']} | {row['city_name']} |" in log
        assert row["reason"]


def test_every_imputed_cell_is_in_the_audit(completed_workflow):
    """Independently rebuild the pre-interpolation cells from the interim files and compare."""
    res = completed_workflow / "results"
    panel = pd.read_parquet(res / "panel/panel.parquet")
    audit = pd.read_parquet(res / "audit/imputed_cells.parquet")

    def interim(name):  # the ingested table without its raw-line provenance column
        return pd.read_parquet(res / f"interim/{name}.parquet").drop(columns="source_line")

    raw = pd.concat([interim(f"yearbook_{y}") for y in range(2010, 2022)])
    for name in ("patents", "innovation"):
        raw = raw.merge(interim(name), on=["city_code", "year"], how="outer")
    raw = raw.set_index(["city_code", "year"])
    variables = [c for c in raw.columns]
    grid = panel.set_index(["city_code", "year"])[variables]
    before = raw.reindex(grid.index)
    missing = before.isna().stack()
    missing = set(missing[missing].index)
    audited = set(zip(audit["city_code"], audit["year"], audit["variable"], strict=True))
    assert missing == audited
    assert len(audited) > 500  # the default data does have gaps
    # audit values are the panel values; observed cells are untouched
    a = audit.set_index(["city_code", "year", "variable"])["value"]
    stacked = grid.stack()
    np.testing.assert_allclose(stacked.loc[a.index].to_numpy(), a.to_numpy(), rtol=1e-12)
    observed = before.stack().dropna()
    np.testing.assert_allclose(
        stacked.loc[observed.index].to_numpy(), observed.to_numpy(), rtol=1e-12
    )


def test_dry_run_after_full_run_has_nothing_to_do(workflow_copy):
    out = snakemake(workflow_copy, "-n").stdout
    assert "Nothing to be done" in out
    # every rule named local exists (Snakemake only warns about the others)
    assert "localrules directive specifies rules that are not present" not in out
    assert dry_run_jobs(workflow_copy) == set()


def _edit_csv_cell(path, data_row: int, column: int, value: str, encoding: str) -> str:
    """Set one cell of a raw CSV (data_row 0 = first row after the header); return the city code."""
    rows = list(csv.reader(io.StringIO(path.read_bytes().decode(encoding))))
    rows[data_row + 1][column] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return rows[data_row + 1][0]


def test_modifying_one_yearbook_year_reruns_only_that_year(workflow_copy):
    path = workflow_copy / "resources/raw/yearbook/city_yearbook_2015.csv"
    _edit_csv_cell(path, 2, 3, "7.77", "utf-8-sig")
    assert (
        dry_run_jobs(workflow_copy)
        == {("ingest_yearbook", "year=2015"), ("plausibility", "")} | AFTER_PANEL
    )


def test_modifying_the_xlsx_year_reruns_only_that_year(workflow_copy):
    from openpyxl import load_workbook

    path = workflow_copy / "resources/raw/yearbook/city_yearbook_2021.xlsx"
    wb = load_workbook(path)
    ws = wb.active
    ws.cell(row=5, column=4).value = 7.77
    wb.save(path)
    assert (
        dry_run_jobs(workflow_copy)
        == {("ingest_yearbook", "year=2021"), ("plausibility", "")} | AFTER_PANEL
    )


def test_config_change_reruns_the_panel_and_nothing_upstream(workflow_copy):
    jobs = dry_run_jobs(workflow_copy, "--config", "interpolation={edge: linear_extrapolate}")
    assert jobs == AFTER_PANEL


def test_failing_run_keeps_earlier_outputs_and_rerun_resumes(workflow_copy):
    res = workflow_copy / "results"
    panel = res / "panel/panel.parquet"
    other_year = res / "interim/yearbook_2017.parquet"
    before = {p: (_sha(p), p.stat().st_mtime_ns) for p in (panel, other_year)}
    path = workflow_copy / "resources/raw/yearbook/city_yearbook_2016.csv"
    original = path.read_bytes()
    code = _edit_csv_cell(path, 4, 7, "12a3", "utf-8")  # population cell of the fifth data row

    proc = snakemake(workflow_copy, "--cores", "2", check=False)
    assert proc.returncode != 0
    out = proc.stdout
    assert "city_yearbook_2016.csv" in out
    assert f"line 6 (city {code}" in out and "year 2016" in out
    assert "年末户籍人口(万人)" in out and "population" in out
    assert "non-numeric value '12a3'" in out
    assert "Traceback" not in out.split("non-numeric")[0][-2000:]
    for p, (sha, mtime) in before.items():
        assert p.exists(), f"{p} was removed by the failing run"
        assert (_sha(p), p.stat().st_mtime_ns) == (sha, mtime)

    path.write_bytes(
        original.replace(b"\n", b"\r\n", 1)
    )  # fixed (content differs from the original)
    proc = snakemake(workflow_copy, "--cores", "2")
    ran = jobs_of(proc.stdout)
    assert ran == {("ingest_yearbook", "year=2016"), ("plausibility", "")} | AFTER_PANEL
    assert panel.exists()


def test_bad_config_stops_before_any_rule(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--config", "sample={max_missing_shre: 0.1}", check=False)
    assert proc.returncode != 0
    assert "sample.max_missing_shre" in proc.stdout and "unknown key" in proc.stdout
    assert "did you mean 'max_missing_share'" in proc.stdout
    # the message alone: no traceback frames of the Snakefile or the package after it
    assert (
        "ConfigError: config (config.yaml and --config), key 'sample.max_missing_shre'"
        in proc.stdout
    )
    assert 'File "' not in proc.stdout and "in <module>" not in proc.stdout
    proc = snakemake(
        workflow_copy, "-n", "--config", "years={start: 2010, end: twenty}", check=False
    )
    assert proc.returncode != 0
    assert "years.end" in proc.stdout and "wrong type" in proc.stdout
    assert "rule " not in proc.stdout


def test_other_raw_dir_via_config_recovers_planted_effect(workflow_copy, tmp_path):
    """Simulate with another seed and other planted effects, run the whole workflow on that folder,
    and recover the baseline coefficient within 2 SEs."""
    params = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    params["resil"]["beta"] = params["resil"]["beta_no_controls"] = 0.15
    params["resil"]["het"] = {"Asset": 0.0, "GOVP": 0.0, "ADM": 0.0}
    alt_params = tmp_path / "params.yaml"
    alt_params.write_text(yaml.safe_dump(params, allow_unicode=True), encoding="utf-8")
    raw = tmp_path / "raw_seed7"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nqp_resilience.sim.simulate",
            "--seed",
            "7",
            "--params",
            str(alt_params),
            "--out",
            str(raw),
        ],
        cwd=workflow_copy,
        check=True,
    )
    out_dir = tmp_path / "results_seed7"
    snakemake(workflow_copy, "--cores", "2", "--config", f"raw_dir={raw}", f"results_dir={out_dir}")
    alt = pd.read_parquet(out_dir / "panel/panel.parquet")
    default = pd.read_parquet(workflow_copy / "results/panel/panel.parquet")
    assert 220 <= alt["city_code"].nunique() <= 240
    assert alt.isna().sum().sum() == 0
    assert set(alt["city_code"]) != set(default["city_code"])  # other sparse cities are dropped
    est = json.loads((out_dir / "estimates/baseline.json").read_text(encoding="utf-8"))
    assert abs(est["coef"] - 0.15) <= 2 * est["se"], est
    assert est["nobs"] == len(alt)
    # the default results were not touched
    assert dry_run_jobs(workflow_copy) == set()


# --------------------------------------------------------------------------- indices

PAPER_TABLE_2 = {"Resil": (0.230, 0.072), "Nqp": (0.235, 0.099)}
PAPER_CONTROL_MEANS = {
    "GDP": 9.533,
    "GOV": 0.156,
    "IND": 2.246,
    "INV": 0.639,
    "TEC": 0.032,
    "FIN": 0.833,
}


def test_table_2_moments_on_the_default_data(completed_workflow):
    desc = pd.read_csv(completed_workflow / "results/tables/desc_stats.csv").set_index("variable")
    assert list(desc.index) == [
        "Resil",
        "Nqp",
        "GDP",
        "GOV",
        "IND",
        "INV",
        "TRADE",
        "TEC",
        "FIN",
        "OPE",
    ]
    assert (desc["N"] == 2760).all()
    for name, (mean, sd) in PAPER_TABLE_2.items():
        assert abs(desc.loc[name, "mean"] - mean) <= 0.03, name
        assert abs(desc.loc[name, "sd"] - sd) <= 0.03, name
    for (
        name,
        mean,
    ) in PAPER_CONTROL_MEANS.items():  # OPE and TRADE: the paper's rows are inconsistent
        assert abs(desc.loc[name, "mean"] / mean - 1) <= 0.15, name


def test_analysis_panel_and_weights(completed_workflow):
    res = completed_workflow / "results"
    analysis = pd.read_parquet(res / "panel/analysis.parquet")
    assert len(analysis) == 2760
    expected = {
        "Resil",
        "Nqp",
        "Nqp1",
        "Une",
        "Mrd",
        "GDP",
        "GOV",
        "IND",
        "INV",
        "TRADE",
        "TEC",
        "FIN",
        "OPE",
        "Rat",
        "Adv",
        "Talent",
        "INN",
        "Relief",
        "Internet",
        "Asset",
        "GOVP",
        "ADM",
        "municipality",
    }
    assert expected <= set(analysis.columns)
    missing = analysis[sorted(expected)].isna().sum()
    assert missing.drop("Mrd").sum() == 0
    assert missing["Mrd"] == analysis["city_code"].nunique()  # no lag in the first year
    codebook = (res / "panel/analysis_codebook.md").read_text(encoding="utf-8")
    for name in expected:
        assert f"| {name} |" in codebook
    weights = pd.read_csv(res / "indices/nqp_weights.csv")
    measures = weights[weights.level == "measure"]
    assert len(measures) == 27 and abs(measures["weight"].sum() - 1) < 1e-9
    assert {"entropy", "divergence", "weight", "local_weight"} <= set(weights.columns)
    assert len(weights[weights.level == "criterion"]) == 3


def test_indices_are_byte_identical_across_runs(workflow_copy):
    res = workflow_copy / "results"
    files = [
        res / "tables/desc_stats.csv",
        res / "indices/nqp_weights.csv",
        res / "panel/analysis.parquet",
        res / "panel/analysis_codebook.md",
        res / "indices/nqp.parquet",
        res / "indices/nqp1.parquet",
    ]
    before = {p: _sha(p) for p in files}
    proc = snakemake(workflow_copy, "--cores", "2", "--forcerun", "build_panel")
    assert ("nqp_index", "") in jobs_of(proc.stdout)
    assert {p: _sha(p) for p in files} == before


def test_flipping_one_direction_reruns_the_index_and_nothing_upstream(workflow_copy):
    jobs = dry_run_jobs(workflow_copy, "--config", "entropy={directions: {energy_intensity: '-'}}")
    assert jobs == {("nqp_index", ""), ("table_indicators", "")} | AFTER_INDEX


def test_keyword_list_change_reruns_nqp_text_but_not_jieba_cache(workflow_copy):
    path = workflow_copy / "resources/nqp_keywords.txt"
    path.write_text(path.read_text(encoding="utf-8") + "数字中国\n", encoding="utf-8")
    assert dry_run_jobs(workflow_copy) == {("nqp_text", "")} | AFTER_INDEX


def test_rebuilt_jieba_cache_reruns_nothing_after_it(workflow_copy):
    assert dry_run_jobs(workflow_copy, "--forcerun", "jieba_cache") == {("jieba_cache", "")}


def test_time_invariant_instrument_with_city_fe_stops_early(workflow_copy):
    proc = snakemake(workflow_copy, "-n", "--config", "iv={relief: {interact: none}}", check=False)
    assert proc.returncode != 0
    out = proc.stdout
    assert (
        "iv.relief.interact" in out
        and "time-invariant" in out
        and "absorbed by the city dummies" in out
    )
    assert "'trend'" in out and "national:" in out
    assert "rule " not in out  # nothing was scheduled
    # without city fixed effects it is allowed
    jobs = dry_run_jobs(
        workflow_copy, "--config", "iv={relief: {interact: none}, fixed_effects: [year]}"
    )
    assert ("derived_variables", "") in jobs


# --------------------------------------------------------------------------- specifications

SPEC7_KEYS = {
    "spec",
    "dependent",
    "regressor",
    "coef",
    "se",
    "t",
    "p",
    "ci",
    "nobs",
    "n_clusters",
    "r2",
    "r2_within",
    "fixed_effects",
    "controls",
    "extra",
    "software",
    "inputs",
}


def test_every_spec_writes_its_estimate(completed_workflow):
    assert len(SPEC_IDS) == 20
    for sid in SPEC_IDS:
        record = json.loads(
            (completed_workflow / f"results/estimates/{sid}.json").read_text(encoding="utf-8")
        )
        assert record["spec"] == sid
        if sid == "desc_stats":
            assert record["statistics"]["Nqp"]["N"] == 2760
            continue
        assert SPEC7_KEYS <= set(record), sid
        assert record["se"] > 0 and 0 < record["n_clusters"] <= 230
        assert (
            record["n_clusters"] == 230
            or record["estimator"] == "psm_fe"
            or sid == "rob_drop_municipalities"
        )
    iv = json.loads(
        (completed_workflow / "results/estimates/iv_relief.json").read_text(encoding="utf-8")
    )
    assert {"first_stage_coef", "first_stage_se", "kp_lm", "kp_f"} <= set(iv["extra"])
    psm = json.loads(
        (completed_workflow / "results/estimates/psm_nn.json").read_text(encoding="utf-8")
    )
    assert {"att", "att_se", "matched_n", "balance"} <= set(psm["extra"])
    drop = json.loads(
        (completed_workflow / "results/estimates/rob_drop_municipalities.json").read_text(
            encoding="utf-8"
        )
    )
    assert drop["nobs"] < 2760


def test_replication_check_lists_every_published_number(completed_workflow):
    report = (completed_workflow / "results/tables/replication_check.md").read_text(
        encoding="utf-8"
    )
    published = yaml.safe_load((PARAMS.parents[1] / "published.yaml").read_text(encoding="utf-8"))
    for sid in published["specs"]:
        assert f"`{sid}`" in report
    for key in published["inconsistencies"]:
        assert key in report
    # every published coefficient is reproduced within 2 of our SEs on the default data, or the
    # row is touched by one of the paper's own inconsistencies (and says so)
    rows = []
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 9 and cells[2].startswith("`") and cells[7]:
            rows.append(cells)
    assert len(rows) >= 25
    for cells in rows:
        assert cells[7] in ("yes", "**no**") or (cells[7] == "no (flagged)" and cells[8]), cells
    # the default data is one draw of a process that plants the published coefficients, so
    # about 95 % of the 18 core coefficients are within 2 SEs (docs/monte_carlo.md measures
    # the recovery over many draws); rob_nqp1 has no planted effect
    core = [c for c in rows if c[3] not in ("constant", "first stage") and c[2] != "`rob_nqp1`"]
    core = [c for c in core if "main effect" not in c[3]]
    assert len(core) == 18, [c[2] for c in core]
    assert sum(c[7] == "yes" for c in core) >= 15, [(c[2], c[6]) for c in core]


def test_adding_a_spec_adds_exactly_one_job(workflow_copy):
    config = yaml.safe_load((workflow_copy / "config.yaml").read_text(encoding="utf-8"))
    config["specs"].append(
        {
            "id": "extra_spec",
            "table": 9,
            "column": "(1)",
            "estimator": "ols_fe",
            "dependent": "Resil",
            "regressor": "Nqp",
            "controls": ["GDP"],
        }
    )
    (workflow_copy / "extra.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    jobs = dry_run_jobs(workflow_copy, "--configfile", "extra.yaml")
    # one new estimation job and its bootstrap; the coefficient plot, the bootstrap table (and
    # the document that collects it) and the spec-sample audit cover every spec, so they are
    # redone (the audit takes about a second)
    assert (
        jobs
        == {
            ("ols_fe", "spec=extra_spec"),
            ("figures_coefficients", ""),
            ("table_bootstrap", ""),
            ("spec_samples", ""),
            ("all", ""),
        }
        | bootstrap_jobs("extra_spec")
        | DOCUMENT_JOBS
    )


def test_editing_one_spec_reruns_only_that_job(workflow_copy):
    config = yaml.safe_load((workflow_copy / "config.yaml").read_text(encoding="utf-8"))
    spec = next(s for s in config["specs"] if s["id"] == "baseline")
    spec["controls"] = ["GDP", "GOV"]
    (workflow_copy / "edited.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    jobs = dry_run_jobs(workflow_copy, "--configfile", "edited.yaml")
    assert jobs == (
        {
            ("ols_fe", "spec=baseline"),
            ("replication_check", ""),
            ("table_estimates", "number=3"),
            ("table_replication", ""),
            ("figures_coefficients", ""),
            ("table_bootstrap", ""),
            ("spec_samples", ""),
            ("all", ""),
        }
        | bootstrap_jobs("baseline")
        | DOCUMENT_JOBS
    )


def test_spec_with_unknown_variable_stops_early(workflow_copy):
    config = yaml.safe_load((workflow_copy / "config.yaml").read_text(encoding="utf-8"))
    next(s for s in config["specs"] if s["id"] == "baseline")["regressor"] = "Nqpp"
    (workflow_copy / "bad.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    proc = snakemake(workflow_copy, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "unknown variable 'Nqpp'" in proc.stdout and "did you mean 'Nqp'" in proc.stdout


# ----------------------------------------------------------------------- tables, figures, report


def test_tables_and_figures_are_built(completed_workflow):
    res = completed_workflow / "results"
    for name in (
        "table1",
        "table2",
        "table3",
        "table4",
        "table5",
        "table6",
        "table7",
        "psm_balance",
        "replication",
        "tables",
    ):
        text = (res / f"tables/{name}.tex").read_text(encoding="utf-8")
        assert "\\toprule" in text or name == "tables"
    document = (res / "tables/tables.tex").read_text(encoding="utf-8")
    for name in ("table1", "table3", "table7", "psm_balance", "replication"):
        assert f"\\input{{{name}.tex}}" in document
    if HAVE_TEX:
        assert (res / "tables/tables.pdf").read_bytes().startswith(b"%PDF")
        assert (res / "tables/table3.png").stat().st_size > 1000
    for fig in [
        "coefficients",
        "trends_by_region",
        "entropy_weights",
        *[f"pscore_{s}" for s in PSM_IDS],
    ]:
        assert (res / f"figures/{fig}.pdf").read_bytes().startswith(b"%PDF")
        assert (res / f"figures/{fig}.png").read_bytes().startswith(b"\x89PNG")


def test_tex_and_figures_are_byte_identical_across_runs(workflow_copy):
    res = workflow_copy / "results"
    files = sorted(res.glob("tables/*.tex")) + sorted(res.glob("figures/*"))
    before = {p: _sha(p) for p in files}
    snakemake(
        workflow_copy,
        "--cores",
        "2",
        "--forcerun",
        "table_estimates",
        "table_indicators",
        "table_desc",
        "table_balance",
        "table_replication",
        "tables_document",
        "figures_coefficients",
        "figures_data",
        "figures_pscore",
    )
    changed = [p.name for p in files if _sha(p) != before[p]]
    assert changed == []


def test_editing_one_template_reruns_one_table(workflow_copy):
    template = workflow_copy / "resources/templates/table5.tex.j2"
    template.write_text(
        template.read_text(encoding="utf-8") + "\n((= edited =))\n", encoding="utf-8"
    )
    assert (
        dry_run_jobs(workflow_copy)
        == {("table_estimates", "number=5"), ("all", "")} | DOCUMENT_JOBS
    )


def test_report_contains_every_table_and_figure(workflow_copy):
    snakemake(workflow_copy, "--report", "results/report.html")
    html = (workflow_copy / "results/report.html").read_text(encoding="utf-8", errors="replace")
    for name in (
        "table1.tex",
        "table2.tex",
        "table3.tex",
        "table4.tex",
        "table5.tex",
        "table6.tex",
        "table7.tex",
        "psm_balance.tex",
        "replication.tex",
        "coefficients.png",
        "trends_by_region.png",
        "entropy_weights.png",
        *[f"pscore_{s}.png" for s in PSM_IDS],
    ):
        assert name in html, name
    # one job draws every figure: each score figure's caption still names its own spec
    for s in PSM_IDS:
        assert html.count(f"spec <cite>{s}</cite>") == 1, s
    if HAVE_TEX:
        assert "tables.pdf" in html


def _figure_outputs(dry_run: str) -> set[str]:
    """The output files of the score figures' job in a dry run's listing."""
    rule = r"^\s*(?:local)?rule figures_pscore:\n(?:\s{4}.*\n)*?\s+output: (.*)$"
    m = re.search(rule, dry_run, re.M)
    assert m, "no figures job in the dry run"
    return {f.rsplit("/", 1)[-1] for f in m.group(1).split(", ")}


def test_a_psm_spec_added_or_removed_adds_or_removes_its_figure(workflow_copy):
    """psm_radius removed and a new PSM spec added: the figures job's outputs follow the
    registry, and the run draws the new spec's score figure with its own caption."""
    path = workflow_copy / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    nn = next(s for s in config["specs"] if s["id"] == "psm_nn")
    added = dict(nn, id="psm_nn_caliper", psm={"method": "nearest", "caliper": 0.01})
    config["specs"] = [s for s in config["specs"] if s["id"] != "psm_radius"] + [added]
    config["monte_carlo"]["planted"].pop("psm_radius", None)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    out = snakemake(workflow_copy, "-n", "--forcerun", "figures_pscore").stdout
    ids = [s for s in PSM_IDS if s != "psm_radius"] + ["psm_nn_caliper"]
    assert {f for f in _figure_outputs(out) if "pscore" in f} == {
        f"pscore_{s}.{ext}" for s in ids for ext in ("pdf", "png", "rst")
    }
    snakemake(workflow_copy, "--cores", "2", "results/figures/pscore_psm_nn_caliper.png")
    res = workflow_copy / "results"
    assert (res / "figures/pscore_psm_nn_caliper.pdf").read_bytes().startswith(b"%PDF")
    caption = (res / "report/pscore_psm_nn_caliper.rst").read_text(encoding="utf-8")
    assert "spec `psm_nn_caliper`" in caption and "nearest-neighbour matching" in caption


@pytest.mark.skipif(
    not HAVE_TEX,
    reason="the README map includes tables.pdf, which needs pdflatex and pdftoppm "
    "(CI installs them)",
)
def test_readme_output_map_is_current(completed_workflow):
    from nqp_resilience.outputs.provenance import END, START, current_summary, markdown, output_map

    block = markdown(output_map(current_summary(completed_workflow)))
    readme = (PARAMS.parents[2] / "README.md").read_text(encoding="utf-8")
    assert START in readme and END in readme
    assert block in readme, (
        "README output map is stale: run python -m nqp_resilience.outputs.provenance README.md"
    )


#: declared resources against the measured ones (results/benchmarks/) on the default data:
#: memory at least MEM_MARGIN times the peak resident set, run time at least TIME_MARGIN times the
#: wall time (a cluster is slower to start a job, and a retry doubles both)
MEM_MARGIN, TIME_MARGIN = 3.0, 20.0


def test_declared_resources_cover_the_measured_ones_with_a_margin(workflow_copy):
    out = snakemake(workflow_copy, "-n", "-F").stdout
    declared = {}
    for m in re.finditer(r"^rule (\w+):\n(?P<body>(?:\s{4}.*\n?)*)", out, re.M):
        body = m.group("body")
        bench = re.search(r"^\s+benchmark: (\S+)$", body, re.M)
        res = re.search(r"^\s+resources: (.*)$", body, re.M)
        if bench and res:
            values = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
            declared[bench.group(1)] = (
                m.group(1),
                float(values["mem_mb"]),
                float(values["runtime"]),
            )
    # every job of the run but the target rule `all` declares both
    total = int(re.search(r"^total\s+(\d+)$", out, re.M).group(1))
    assert len(declared) == total - 1 > 50, (len(declared), total)
    for path, (rule, mem_mb, runtime) in declared.items():
        rows = list(csv.DictReader((workflow_copy / path).open(), delimiter="\t"))
        rss, wall = float(rows[-1]["max_rss"]), float(rows[-1]["s"])
        assert mem_mb >= MEM_MARGIN * rss, (rule, path, mem_mb, rss)
        assert runtime * 60 >= TIME_MARGIN * wall, (rule, path, runtime, wall)
