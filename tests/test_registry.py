"""One registry each: the analysis variables, the raw sources, and a light workflow parse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nqp_resilience.data.io import read_yaml
from nqp_resilience.indices import registry as R

from conftest import ROOT

# --------------------------------------------------------------------------- analysis variables


def test_registry_names_are_unique_with_known_roles():
    names = [v.name for v in R.ANALYSIS_VARIABLES]
    assert len(names) == len(set(names))
    assert {v.role for v in R.ANALYSIS_VARIABLES} <= set(R.ROLES)
    assert all(v.description and v.unit for v in R.ANALYSIS_VARIABLES)
    with pytest.raises(ValueError, match="unknown role"):
        R.names("controls")


def test_everything_derives_from_the_registry():
    from nqp_resilience.estimation.specs import ANALYSIS_VARIABLES
    from nqp_resilience.indices import analysis, variables

    assert ANALYSIS_VARIABLES == R.spec_variables()
    assert "city_name" not in ANALYSIS_VARIABLES and "city_name" in R.panel_columns()
    assert analysis.IDS == list(R.IDENTIFIERS)
    assert tuple(variables.CONTROLS) == R.CONTROLS
    assert tuple(read_yaml(ROOT / "config.yaml")["control_variables"]) == R.CONTROLS
    options = {**read_yaml(ROOT / "config.yaml")}
    defs = analysis.definitions(options)
    assert [d.name for d in defs] == list(R.labelled_variables())
    assert {d.name: d.definition for d in defs}["GDP"] == R.BY_NAME["GDP"].description


def test_layer_scores_follow_the_indicator_system():
    criteria = [c["id"] for c in read_yaml(ROOT / "resources" / "indicators.yaml")["criteria"]]
    assert list(R.names("layer")) == [f"Nqp_{c}" for c in criteria]


@pytest.mark.parametrize("language", ["en", "zh"])
def test_label_files_cover_every_variable(language):
    labels = read_yaml(ROOT / "resources" / "labels" / f"labels_{language}.yaml")
    missing = [n for n in R.labelled_variables() if n not in labels["variables"]]
    assert missing == [], f"labels_{language}.yaml: variables without a label: {missing}"
    unknown = [n for n in labels["variables"] if n not in R.BY_NAME]
    assert unknown == [], f"labels_{language}.yaml labels variables the panel lacks: {unknown}"
    assert [n for n in R.DESC_VARIABLES if n not in labels["definitions"]] == []


@pytest.mark.slow
def test_analysis_panel_columns_match_the_registry(completed_workflow):
    import pyarrow.parquet as pq

    columns = pq.read_schema(completed_workflow / "results" / "panel" / "analysis.parquet").names
    assert tuple(columns) == R.panel_columns()
    codebook = (completed_workflow / "results" / "panel" / "analysis_codebook.md").read_text(
        encoding="utf-8"
    )
    rows = [
        line.split(" | ")[0].lstrip("| ")
        for line in codebook.splitlines()
        if line.startswith("| ") and not line.startswith("| name")
    ]
    assert tuple(rows) == R.labelled_variables()


# --------------------------------------------------------------------------- raw sources

NEW_SOURCE = """
  ports:
    description: container ports per city (time-invariant), a source added for the test
    file: static/ports.csv
    keys:
      city_code: {headers: ["城市代码"]}
      city_name: {headers: ["城市名称"]}
    variables:
      ports:
        headers: ["港口数(个)"]
        unit: 个
        factor: 1
        canonical_unit: count
        min: 0
        description: container ports
"""


def codebook_with_new_source(folder) -> None:
    """Append one source to a copy of the codebook in ``folder/resources``, and its raw file
    (copied from relief.csv with the header renamed) to ``folder/resources/raw``."""
    text = (ROOT / "resources" / "codebook.yaml").read_text(encoding="utf-8")
    (folder / "resources").mkdir(parents=True, exist_ok=True)
    (folder / "resources" / "codebook.yaml").write_text(
        text.rstrip("\n") + "\n" + NEW_SOURCE, encoding="utf-8"
    )
    relief = (ROOT / "resources" / "raw" / "static" / "relief.csv").read_text(encoding="utf-8")
    raw = folder / "resources" / "raw" / "static"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "ports.csv").write_text(relief.replace("地形起伏度(米)", "港口数(个)"), encoding="utf-8")


def test_raw_files_come_from_the_codebook(tmp_path):
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.data.raw_files import raw_file_table, raw_sources_by_grain

    shipped = raw_file_table(ROOT / "resources" / "codebook.yaml")
    assert shipped == {
        "patents": "cnrds/patents.csv",
        "innovation": "cnrds/innovation.csv",
        "national": "ceic/national.csv",
        "relief": "static/relief.csv",
        "telephones_1984": "static/telephones_1984.csv",
    }
    assert raw_sources_by_grain(ROOT / "resources" / "codebook.yaml") == {
        "city_year": ["patents", "innovation"],
        "city": ["relief", "telephones_1984"],
        "year": ["national"],
    }
    codebook_with_new_source(tmp_path)
    copy = tmp_path / "resources" / "codebook.yaml"
    assert raw_file_table(copy) == {**shipped, "ports": "static/ports.csv"}
    assert raw_sources_by_grain(copy)["city"] == ["relief", "telephones_1984", "ports"]
    assert Codebook(copy)["ports"].file == "static/ports.csv"


def test_a_source_without_a_file_names_the_source(tmp_path):
    from nqp_resilience.data.codebook import Codebook
    from nqp_resilience.errors import DataError

    path = tmp_path / "codebook.yaml"
    path.write_text(
        "sources:" + NEW_SOURCE.replace("    file: static/ports.csv\n", ""), encoding="utf-8"
    )
    with pytest.raises(DataError, match="source 'ports' has no 'file'") as info:
        Codebook(path)
    assert info.value.file == str(path)


@pytest.mark.slow
def test_a_new_source_in_the_codebook_becomes_an_ingest_job(tmp_path):
    """One codebook entry (and the file) is all a new source needs: the workflow ingests it,
    checks it and passes it to the panel job."""
    from conftest import copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    codebook_with_new_source(work)
    out = snakemake(work, "-n", "--cores", "1", "-p").stdout
    assert "rule ingest_source:" in out and "wildcards: source=ports" in out
    panel_job = out[out.index("rule build_panel:") :].split("\n\n")[0]
    assert "results/checked/ports.parquet" in panel_job
    check_job = out[out.index("rule plausibility:") :].split("\n\n")[0]
    assert "resources/raw/static/ports.csv" in check_job


# --------------------------------------------------------------------------- light parse time

HEAVY = (
    "numpy",
    "pandas",
    "scipy",
    "jinja2",
    "matplotlib",
    "pyarrow",
    "statsmodels",
    "linearmodels",
)


def test_modules_the_workflow_imports_while_parsed_are_light():
    """rules/common.smk (plain Python: the shared definitions) run as Snakemake runs it when it
    reads the workflow, in a fresh interpreter, leaves the heavy libraries unimported."""
    text = (ROOT / "rules" / "common.smk").read_text(encoding="utf-8")
    assert "from nqp_resilience" in text
    code = "\n".join(
        [
            "import sys, yaml",
            "config = yaml.safe_load(open('config.yaml', encoding='utf-8'))",
            "source = open('rules/common.smk', encoding='utf-8').read()",
            "namespace = {'config': config, '__name__': 'common'}",
            "exec(compile(source, 'rules/common.smk', 'exec'), namespace)",
            "assert namespace['SPECS'] and namespace['RAW_FILES']",
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"reading the workflow imports {proc.stdout.strip()}"


@pytest.mark.slow
def test_params_are_compared_without_pandas_and_a_changed_param_still_reruns(tmp_path):
    """A no-op run leaves pandas unimported in the Snakemake process (its params check would
    cost half a second), and a changed param is still a reason to rerun the job."""
    from conftest import SNAKEMAKE, copy_workflow, snakemake

    work = copy_workflow(tmp_path / "wf")
    report = "results/audit/plausibility.md"
    snakemake(work, report, "--cores", "2")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", SNAKEMAKE, report, "--cores", "1"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "pandas" not in imported and "snakemake.persistence" in imported
    dry = snakemake(
        work, report, "-n", "--cores", "1", "--config", "plausibility={action: warn}"
    ).stdout
    assert "rule plausibility:" in dry and "Params have changed" in dry
