"""estimation.batch_size: several specs in one estimation job, the same estimate files."""

from __future__ import annotations

import pytest

from nqp_resilience.data.io import read_yaml
from nqp_resilience.estimation.specs import spec_batches

from conftest import ROOT


def registry(n_ols: int, n_iv: int = 0, n_describe: int = 1) -> dict[str, dict]:
    specs = {f"d{i}": {"estimator": "describe"} for i in range(n_describe)}
    specs |= {f"o{i}": {"estimator": "ols_fe"} for i in range(n_ols)}
    specs |= {f"v{i}": {"estimator": "iv_fe"} for i in range(n_iv)}
    return specs


def test_batch_size_one_keeps_one_job_per_spec():
    assert spec_batches(registry(10, 3), 1) == {}


@pytest.mark.parametrize("n_ols, size", [(10, 3), (10, 5), (10, 10), (10, 50), (1000, 50)])
def test_batches_cover_every_spec_of_an_estimator_once_in_order(n_ols, size):
    batches = spec_batches(registry(n_ols, 4), size)
    ols = [sid for name, ids in batches.items() if name.startswith("ols_fe_") for sid in ids]
    assert ols == [f"o{i}" for i in range(n_ols)]
    assert all(1 <= len(ids) <= size for ids in batches.values())
    assert all(name.isidentifier() for name in batches)
    # one estimator per batch, a single describe spec keeps its own job
    assert not any(name.startswith("describe") for name in batches)
    iv = [sid for name, ids in batches.items() if name.startswith("iv_fe_") for sid in ids]
    assert iv == ["v0", "v1", "v2", "v3"]
    assert len([n for n in batches if n.startswith("ols_fe_")]) == -(-n_ols // size)


def test_the_schema_default_is_one_job_per_spec():
    config = read_yaml(ROOT / "config.yaml")
    assert config["estimation"]["batch_size"] == 1


@pytest.mark.slow
def test_batched_jobs_write_the_same_estimate_files(workflow_copy):
    """The estimates of the default registry in batches of 3 are byte-identical to those of one
    job per spec, and only the batch rules ran."""
    from conftest import snakemake

    estimates = sorted((workflow_copy / "results" / "estimates").glob("*.json"))
    before = {p.name: p.read_bytes() for p in estimates}
    bench = workflow_copy / "results" / "benchmarks"
    one_spec_jobs = {
        p: p.stat().st_mtime_ns for r in ("ols_fe", "iv_fe") for p in (bench / r).iterdir()
    }
    for p in estimates:
        p.unlink()
    targets = [f"results/estimates/{name}" for name in before]
    snakemake(workflow_copy, *targets, "--cores", "2", "--config", "estimation={batch_size: 3}")
    after = {p.name: p.read_bytes() for p in (workflow_copy / "results" / "estimates").iterdir()}
    assert after == before
    batches = sorted(p.stem for p in (bench / "estimate_batch").glob("*.tsv"))
    assert "ols_fe_batch001" in batches and "iv_fe_batch001" in batches
    assert {p: p.stat().st_mtime_ns for p in one_spec_jobs} == one_spec_jobs  # none of them ran


@pytest.mark.slow
def test_a_registry_of_a_thousand_specs_builds_a_dag_of_batch_jobs(tmp_path):
    """1,000 specs in batches of 50: the dry run lists 20 estimation jobs, not 1,000, and the
    warning about specs no table shows stays short."""
    import yaml

    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    config = read_yaml(work / "config.yaml")
    base = next(s for s in config["specs"] if s["id"] == "baseline")
    extra = [
        {**base, "id": f"registry_{i:04d}", "table": 90, "column": f"r{i}"}
        for i in range(1000 - len(config["specs"]))
    ]
    (work / "registry.yaml").write_text(
        yaml.safe_dump({"specs": config["specs"] + extra}, allow_unicode=True), encoding="utf-8"
    )
    proc = snakemake(
        work,
        "-n",
        "--cores",
        "2",
        "--configfile",
        "config.yaml",
        "registry.yaml",
        "--config",
        "estimation={batch_size: 50}",
        "bootstrap={specs: [baseline, iv_internet]}",
    )
    stats = proc.stdout[proc.stdout.index("Job stats:") :].split("\n\n")[0]
    batch_jobs = [ln for ln in stats.splitlines() if ln.startswith("estimate_ols_fe_batch")]
    assert len(batch_jobs) == 20
    assert "\nols_fe " not in stats
    assert proc.stdout.count("warning:") <= 6
