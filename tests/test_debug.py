"""``nqp_resilience.debug.mock_snakemake``: a rule's ``snakemake`` object built from the real
workflow, so that its job runs in a Python session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nqp_resilience.debug import mock_snakemake, workflow_root
from nqp_resilience.errors import ConfigError

from conftest import copy_workflow


@pytest.fixture(scope="module")
def fresh_workflow(tmp_path_factory) -> Path:
    """A copy of the workflow that has not run (raw inputs only)."""
    return copy_workflow(tmp_path_factory.mktemp("debug_wf"))


def test_object_of_a_job_with_a_year_wildcard(fresh_workflow, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # any folder: the paths come back absolute
    smk = mock_snakemake("ingest_yearbook", fresh_workflow, year=2015)
    assert Path.cwd() == tmp_path  # the working directory is restored
    assert smk.rule == "ingest_yearbook"
    assert smk.wildcards.year == "2015"
    assert Path(smk.output[0]) == fresh_workflow / "results" / "interim" / "yearbook_2015.parquet"
    assert all(os.path.isabs(p) for p in [*smk.input, *smk.output, *smk.log])
    raw = [p for p in smk.input if p.endswith("city_yearbook_2015.csv")]
    assert raw and Path(raw[0]).is_file()
    # named inputs are absolute too, not only the list items
    named = dict(smk.input.items())
    assert named and all(os.path.isabs(str(v)) for v in named.values())
    assert list(smk.params.years) == [2010, 2021]
    assert smk.config["raw_dir"] == "resources/raw"
    assert smk.threads == 1 and "mem_mb" in smk.resources.keys()
    # the folders of the outputs and the log exist, as Snakemake creates them
    assert Path(smk.log[0]).parent.is_dir()
    assert Path(smk.output[0]).parent.is_dir()
    # reading a cold workflow folder in this process starts no job server
    from nqp_resilience import job_server

    assert job_server._early == [] and job_server.ENV_VAR not in os.environ
    assert smk.config["job_server"] is False


def test_config_overrides_reach_the_params(fresh_workflow):
    smk = mock_snakemake(
        "ols_fe", fresh_workflow, config={"estimation": {"singletons": "keep"}}, spec="baseline"
    )
    assert smk.params.singletons == "keep"
    assert smk.params.spec["id"] == "baseline"
    assert smk.config["estimation"]["singletons"] == "keep"
    assert mock_snakemake("ols_fe", fresh_workflow, spec="baseline").params.singletons == "drop"


@pytest.mark.parametrize(
    ("rule", "wildcards", "message"),
    [
        ("ols_f", {"spec": "baseline"}, "did you mean 'ols_fe'?"),
        ("ols_fe", {}, "this rule's wildcards: spec"),
        ("ols_fe", {"year": "2015"}, "wildcards given: year"),
        # iv_relief is an IV spec: the wildcard constraint of ols_fe does not allow it
        ("ols_fe", {"spec": "iv_relief"}, "do not match the rule's outputs"),
    ],
)
def test_wrong_rule_or_wildcards(fresh_workflow, rule, wildcards, message):
    with pytest.raises(ConfigError, match=message):
        mock_snakemake(rule, fresh_workflow, **wildcards)


def test_a_configuration_error_stops_with_the_workflow_message(fresh_workflow, capsys):
    with pytest.raises(ConfigError, match="stopped while it was read"):
        mock_snakemake(
            "ols_fe", fresh_workflow, config={"estimation": {"singletons": "kep"}}, spec="baseline"
        )
    assert "estimation.singletons" in capsys.readouterr().err


def test_workflow_root(tmp_path):
    (tmp_path / "Snakefile").write_text("")
    (tmp_path / "scripts").mkdir()
    assert workflow_root(tmp_path / "scripts") == tmp_path
    empty = tmp_path.parent / (tmp_path.name + "_empty")
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no Snakefile"):
        workflow_root(empty)


@pytest.mark.slow
def test_a_spec_job_rerun_in_process_gives_the_same_estimate(workflow_copy, tmp_path, monkeypatch):
    from nqp_resilience.estimation.jobs import estimate_spec_job

    estimate = workflow_copy / "results" / "estimates" / "baseline.json"
    written_by_snakemake = estimate.read_bytes()
    estimate.unlink()
    monkeypatch.chdir(tmp_path)
    estimate_spec_job(mock_snakemake("ols_fe", workflow_copy, spec="baseline"))
    assert estimate.read_bytes() == written_by_snakemake
