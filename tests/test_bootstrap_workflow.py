"""The bootstrap stage of the workflow on the default data: one result per OLS and IV spec,
the same bytes for any shard count, equal to the API call, rerun scope and config errors."""

from __future__ import annotations

import json

import pytest

from nqp_resilience import wild_cluster_bootstrap, wild_restricted_efficient_bootstrap
from nqp_resilience.data.io import read_yaml
from nqp_resilience.estimation.specs import SpecModel

from conftest import dry_run_jobs, snakemake

pytestmark = pytest.mark.slow

# an OLS spec, an IV spec, a spec with city trends and one with an interaction and a subsample
SHARD_SPECS = ["baseline", "iv_relief", "rob_city_trends", "het_adm"]


def _specs(root) -> dict:
    return {s["id"]: s for s in read_yaml(root / "config.yaml")["specs"]}


def test_every_ols_and_iv_spec_has_a_bootstrap(completed_workflow):
    specs = _specs(completed_workflow)
    shards = read_yaml(completed_workflow / "config.yaml")["bootstrap"]["shards"]
    boot = completed_workflow / "results" / "bootstrap"
    for sid, spec in specs.items():
        path = boot / f"{sid}.json"
        if spec["estimator"] not in ("ols_fe", "iv_fe"):
            assert not path.exists(), sid
            continue
        record = json.loads(path.read_text())
        estimate = json.loads(
            (completed_workflow / "results" / "estimates" / f"{sid}.json").read_text()
        )
        for key in ("regressor", "coef", "se", "t", "p", "ci", "nobs", "n_clusters"):
            assert record[key] == estimate[key], (sid, key)
        assert record["method"] == ("wre" if spec["estimator"] == "iv_fe" else "wcr")
        assert (record["reps"], record["weights"], record["stream"]) == (9999, "rademacher", sid)
        lo, hi = record["bootstrap_ci"]
        assert lo < record["coef"] < hi and 0 <= record["bootstrap_p"] <= 1
        # one shard: the reduce job draws in memory and writes no shard file
        assert len(list((boot / sid).glob("shard_*.parquet"))) == (shards if shards > 1 else 0)


def _targets(specs=SHARD_SPECS) -> list[str]:
    return [f"results/bootstrap/{s}.json" for s in specs]


def test_shard_count_does_not_change_the_bytes(workflow_copy, tmp_path):
    boot = workflow_copy / "results" / "bootstrap"
    default = {s: (boot / f"{s}.json").read_bytes() for s in SHARD_SPECS}
    for shards in (2, 3, 8):
        snakemake(
            workflow_copy,
            "--cores",
            "2",
            *_targets(),
            "--config",
            f"bootstrap={{shards: {shards}}}",
        )
        for s in SHARD_SPECS:
            assert (boot / f"{s}.json").read_bytes() == default[s], (s, shards)
            assert (boot / s / f"shard_{shards - 1}.parquet").exists()


def test_workflow_result_equals_the_api_call(completed_workflow):
    import pandas as pd

    config = read_yaml(completed_workflow / "config.yaml")
    boot = config["bootstrap"]
    panel = pd.read_parquet(completed_workflow / "results" / "panel" / "analysis.parquet")
    data = {c: panel[c].to_numpy() for c in panel.columns}
    specs = _specs(completed_workflow)
    for sid in ("baseline", "iv_internet", "het_adm"):
        spec = specs[sid]
        m = SpecModel(spec, data, config["control_variables"])
        kw = dict(reps=boot["reps"], seed=boot["seed"], stream=sid)
        if spec["estimator"] == "iv_fe":
            res = wild_restricted_efficient_bootstrap(
                m.data, spec["dependent"], m.x, spec["instrument"], m.controls, **kw
            )
        else:
            res = wild_cluster_bootstrap(m.data, spec["dependent"], m.regressors, m.controls, **kw)
        record = json.loads(
            (completed_workflow / "results" / "bootstrap" / f"{sid}.json").read_text()
        )
        assert record["bootstrap_p"] == res.extra["bootstrap_p"], sid
        assert record["bootstrap_ci"] == list(res.extra["bootstrap_ci"]), sid


def test_changing_reps_reruns_only_bootstrap_jobs(workflow_copy):
    upstream = {"ols_fe", "iv_fe", "psm_fe", "describe", "analysis_panel", "build_panel"}
    # one shard (the default): one job per spec, which draws and reduces
    rules = {rule for rule, _ in dry_run_jobs(workflow_copy, "--config", "bootstrap={reps: 4999}")}
    assert "bootstrap_reduce" in rules and not rules & upstream
    assert rules <= {"bootstrap_reduce"} | SHOWS_BOOTSTRAP
    # several shards: the shard jobs draw, the reduce job combines
    setting = "bootstrap={reps: 4999, shards: 3}"
    rules = {rule for rule, _ in dry_run_jobs(workflow_copy, "--config", setting)}
    assert {"bootstrap_shard", "bootstrap_reduce"} <= rules and not rules & upstream
    assert rules <= {"bootstrap_shard", "bootstrap_reduce"} | SHOWS_BOOTSTRAP
    level = {rule for rule, _ in dry_run_jobs(workflow_copy, "--config", "bootstrap={level: 0.9}")}
    assert level & {"bootstrap_reduce"} and not level & upstream


# the rules that show bootstrap results (and the document that collects the tables)
SHOWS_BOOTSTRAP = {
    "table_bootstrap",
    "figures_coefficients",
    "tables_document",
    "tables_pdf",
    "all",
}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("bootstrap={reps: 50}", "bootstrap.reps"),
        ("bootstrap={weights: gaussian}", "rademacher"),
        ("bootstrap={specs: [baseline, psm_nn]}", "Abadie and Imbens"),
    ],
)
def test_bad_bootstrap_config_stops_before_any_rule(workflow_copy, setting, message):
    proc = snakemake(workflow_copy, "-n", "--config", setting, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout and "Traceback" not in proc.stdout
