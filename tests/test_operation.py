"""Operating the workflow: command-line overrides, where logs go, what a failing job writes.

The override tests run the real ``snakemake -n`` on a copy of the workflow (a dry run reads the
Snakefile, so the configuration is merged and validated exactly as in a real run). To see the
configuration Snakemake ends up with, the copy's Snakefile gets one extra line printing it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT, copy_workflow, snakemake


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """A copy of the workflow whose Snakefile prints the validated config as one JSON line."""
    work = copy_workflow(tmp_path_factory.mktemp("operation"))
    with open(work / "Snakefile", "a", encoding="utf-8") as fh:
        fh.write(
            '\nimport json as _json\nprint("CONFIG=" + _json.dumps(config), file=sys.stderr)\n'
        )
    # a non-default value in config.yaml, to see whether an override of the section keeps it
    cfg = (work / "config.yaml").read_text(encoding="utf-8")
    (work / "config.yaml").write_text(
        cfg.replace("stars: [0.1, 0.05, 0.01]", "stars: [0.2, 0.1, 0.05]"), encoding="utf-8"
    )
    return work


def _config_of(output: str) -> dict:
    line = next(ln for ln in output.splitlines() if ln.startswith("CONFIG="))
    return json.loads(line[len("CONFIG=") :])


# ------------------------------------------------------------------------------ --config


def test_nested_override_has_the_schema_type_and_keeps_the_rest_of_the_section(workflow):
    proc = snakemake(workflow, "-n", "--config", "tables={decimals: 4}", "years={start: 2011}")
    cfg = _config_of(proc.stdout)
    assert cfg["tables"]["decimals"] == 4  # an int, not the string '4' Snakemake hands over
    assert cfg["tables"]["stars"] == [0.2, 0.1, 0.05]  # config.yaml's value, not the default
    assert cfg["tables"]["language"] == "en"
    assert cfg["years"] == {"end": 2021, "start": 2011}


def test_nested_list_and_number_overrides(workflow):
    proc = snakemake(
        workflow,
        "-n",
        "--config",
        "tables={stars: [0.3, 0.2, 0.1]}",
        "entropy={eps: 1e-3}",
        "iv={internet: {lag: 2}}",
        "control_variables=[GDP, GOV]",
    )
    cfg = _config_of(proc.stdout)
    assert cfg["tables"]["stars"] == [0.3, 0.2, 0.1]
    assert cfg["entropy"]["eps"] == 0.001 and cfg["entropy"]["variant"] == "shift"
    assert cfg["iv"]["internet"]["lag"] == 2 and cfg["iv"]["relief"]["interact"] == "trend"
    assert cfg["control_variables"] == ["GDP", "GOV"]


def test_configfile_with_dotted_keys(workflow, tmp_path):
    mine = tmp_path / "my.yaml"
    mine.write_text(
        "tables.decimals: 5\nresults_dir: results_mine\nsample:\n  max_missing_share: 0.3\n",
        encoding="utf-8",
    )
    cfg = _config_of(snakemake(workflow, "-n", "--configfile", str(mine)).stdout)
    assert cfg["tables"]["decimals"] == 5 and cfg["tables"]["stars"] == [0.2, 0.1, 0.05]
    assert cfg["results_dir"] == "results_mine"
    assert cfg["sample"]["max_missing_share"] == 0.3 and cfg["sample"]["drop_changed_2011"] is True


@pytest.mark.parametrize(
    "override, key, words",
    [
        ("tables={decimals: four}", "tables.decimals", "wrong type"),
        ("tables={decimals: 9}", "tables.decimals", "greater than the maximum"),
        ("tables={decimalz: 4}", "tables.decimalz", "did you mean 'decimals'"),
        ("results_dir=2024", "results_dir", """--config 'results_dir="2024"'"""),
    ],
)
def test_bad_override_is_a_config_error_naming_the_key(workflow, override, key, words):
    proc = snakemake(workflow, "-n", "--config", override, check=False)
    assert proc.returncode != 0
    assert "ConfigError" in proc.stdout and f"key '{key}'" in proc.stdout, proc.stdout[-2000:]
    assert words in proc.stdout


def test_snakemake_rejects_a_dot_in_a_config_key_before_reading_the_workflow(workflow):
    """The README points to the mapping form and to --configfile because of this."""
    proc = snakemake(workflow, "-n", "--config", "tables.decimals=4", check=False)
    assert proc.returncode != 0
    assert "Config entry must start with a valid identifier" in proc.stdout
    assert "CONFIG=" not in proc.stdout  # the Snakefile was never read


def test_readme_override_examples_work(workflow):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"--config '([a-z_]+=\{[^']+\})'", readme)
    assert len(examples) >= 2
    for example in examples:
        snakemake(workflow, "-n", "--config", example)


# ------------------------------------------------------------------------------ logs


def test_every_log_is_under_results_dir(workflow):
    out = snakemake(workflow, "-n", "--config", "results_dir=results_b").stdout
    logs = re.findall(r"^\s+log: (.+)$", out, re.M)
    assert len(logs) > 20
    for entry in logs:
        for path in entry.split(", "):
            rule = path.split("/")[2]
            assert re.fullmatch(rf"results_b/logs/{rule}/[\w.-]+\.log", path), path


def test_every_rule_logs_under_results():
    """Each rule file declares its log as {RESULTS}/logs/{rule}/..."""
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text(encoding="utf-8")
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)*)", text, re.M):
            m = re.search(r"^\s+log:\n\s+(.+)$", body, re.M)
            assert m, f"{smk.name}: rule {rule} has no log"
            assert m.group(1).startswith(f'f"{{RESULTS}}/logs/{rule}/'), (
                f"{smk.name}: {rule}: {m.group(1)}"
            )


# ------------------------------------------------------------------------------ a failing job

_JOB = """
import logging, sys
from types import SimpleNamespace
from nqp_resilience.errors import DataError
from nqp_resilience.runner import run

def job(smk):
    logging.getLogger("fontTools.subset").info("subsetted font: 12 glyphs")
    logging.getLogger("matplotlib").info("matplotlib chatter")
    logging.getLogger("nqp_resilience.test").info("progress of our own")
    if sys.argv[2] == "bug":
        {}["no such key"]
    if sys.argv[2] == "user":
        raise DataError(
            "raw/x.csv", "a cell is not a number", row="line 3", column="gdp", hint="fix the cell"
        )

run(job, SimpleNamespace(log=[sys.argv[1]]))
"""


def _run_job(tmp_path, kind):
    script = tmp_path / "job.py"
    script.write_text(_JOB, encoding="utf-8")
    log = tmp_path / "logs" / "job.log"
    proc = subprocess.run(
        [sys.executable, str(script), str(log), kind], capture_output=True, text=True
    )
    return proc, log.read_text(encoding="utf-8")


def test_a_bug_writes_its_traceback_to_the_job_log_and_stderr(tmp_path):
    proc, log = _run_job(tmp_path, "bug")
    assert proc.returncode == 1
    for text in (log, proc.stderr):
        assert "Traceback (most recent call last)" in text
        assert "KeyError: 'no such key'" in text
        assert "job.py" in text  # the frame of the failing line


def test_a_user_error_prints_message_and_hint_only(tmp_path):
    proc, log = _run_job(tmp_path, "user")
    assert proc.returncode == 1
    for text in (log, proc.stderr):
        assert "DataError: file raw/x.csv, row line 3, column gdp:" in text
        assert "hint:     fix the cell" in text
        assert "Traceback" not in text


def test_third_party_info_stays_out_of_the_log(tmp_path):
    proc, log = _run_job(tmp_path, "ok")
    assert proc.returncode == 0
    assert "progress of our own" in log and "progress of our own" in proc.stderr
    assert "subsetted font" not in log + proc.stderr
    assert "matplotlib chatter" not in log + proc.stderr


_SNAKEMAKE_JOB = """
import atexit, logging, pathlib, sys
from snakemake.iocontainers import Snakemake
from nqp_resilience.runner import run

smk = object.__new__(Snakemake)  # what Snakemake's script preamble injects
smk.log = [sys.argv[1]]
atexit.register(lambda: pathlib.Path(sys.argv[2]).write_text("teardown ran"))

def job(smk):
    logging.getLogger("nqp_resilience.test").info("progress of our own")
    print("buffered on stdout", end="")
    pathlib.Path(sys.argv[3]).write_text("output")

run(job, smk)
print("after the job")
"""


def test_a_snakemake_job_ends_without_the_interpreter_teardown(tmp_path):
    """In a Snakemake script job, run() flushes the log and the streams and ends the process:
    the interpreter's teardown (atexit handlers, module clean-up) is skipped."""
    script, log = tmp_path / "job.py", tmp_path / "logs" / "job.log"
    teardown, output = tmp_path / "teardown", tmp_path / "out.txt"
    script.write_text(_SNAKEMAKE_JOB, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(log), str(teardown), str(output)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "buffered on stdout"
    assert "progress of our own" in log.read_text(encoding="utf-8")
    assert output.read_text() == "output" and not teardown.exists()


def test_makefile_install_shows_progress():
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    install = [ln for ln in text.splitlines() if "pip install" in ln and "-e " in ln]
    assert install and all("--quiet" not in ln and " -q" not in ln for ln in install)


# -------------------------------------------------------------------------- specs no table shows


def test_a_spec_no_table_shows_is_warned_about_at_parse_time(workflow, tmp_path):
    import yaml

    specs = yaml.safe_load((workflow / "config.yaml").read_text(encoding="utf-8"))["specs"]
    specs.append(
        {
            "id": "rob_extra",
            "table": 8,
            "column": "(6)",
            "estimator": "ols_fe",
            "dependent": "Resil",
            "regressor": "Nqp",
            "controls": True,
        }
    )
    mine = tmp_path / "extra.yaml"
    mine.write_text(yaml.safe_dump({"specs": specs}), encoding="utf-8")
    out = snakemake(workflow, "-n", "--configfile", str(mine)).stdout
    warnings = [ln for ln in out.splitlines() if ln.startswith("warning: spec")]
    assert len(warnings) == 1, warnings
    assert "'rob_extra' has table: 8" in warnings[0] and "table8.tex.j2" in warnings[0]
    assert "results/estimates/rob_extra.json" in warnings[0]
    assert "warning: spec" not in snakemake(workflow, "-n").stdout  # the shipped registry: none
