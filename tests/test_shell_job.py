"""Job functions run as shell commands (nqp_resilience.shell_job): the object they receive has
what Snakemake would give them, and the process behaves as a script job's (log, errors, exit)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nqp_resilience.shell_job import Files, job_object, job_payload

ROOT = Path(__file__).resolve().parents[1]

JOBS = """
import logging
from pathlib import Path
from nqp_resilience.errors import DataError

def write(smk):
    logging.getLogger("nqp_resilience.test").info("spec %s", smk.params.spec["id"])
    Path(smk.output.result).write_text(
        f"{smk.input.panel} {smk.input[1]} {smk.output.more} {smk.wildcards.spec} {smk.threads}"
    )

def refuse(smk):
    raise DataError(smk.input.panel, "a cell is not a number", row="line 3", hint="fix it")
"""


class _Named(list):
    """Snakemake's Namedlist as the param function sees it: a list with named entries."""

    def __init__(self, items, names):
        super().__init__(items)
        self._n = names

    def items(self):
        return iter(self._n.items())


def _payload(tmp_path, spec_id="baseline"):
    wildcards = _Named([spec_id], {"spec": spec_id})
    inputs = _Named(["panel.parquet", "codebook.yaml"], {"panel": "panel.parquet"})
    out = [str(tmp_path / "result.txt"), str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    outputs = _Named(out, {"result": out[0], "more": out[1:]})
    params = {"spec": {"id": spec_id, "controls": True, "weights": None}, "levels": (1, 2)}
    return job_payload(wildcards, inputs, outputs, 1, params)


def test_the_job_object_has_snakemakes_attributes(tmp_path):
    smk = job_object(str(tmp_path / "job.log"), _payload(tmp_path))
    assert smk.input == ["panel.parquet", "codebook.yaml"] and smk.input.panel == "panel.parquet"
    assert smk.output.more == [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert len(smk.output) == 3 and smk.output[0] == smk.output.result
    assert smk.params.spec == {"id": "baseline", "controls": True, "weights": None}
    assert smk.params.levels == [1, 2]  # JSON: a tuple comes back as a list
    assert smk.wildcards.spec == "baseline" and smk.threads == 1
    assert list(smk.log) == [str(tmp_path / "job.log")]
    assert list(job_object("", _payload(tmp_path)).log) == []
    assert not hasattr(smk.input, "missing") and isinstance(Files(), list)


def _run(tmp_path, function, payload):
    (tmp_path / "demo_jobs.py").write_text(JOBS, encoding="utf-8")
    log = tmp_path / "logs" / "job.log"
    proc = subprocess.run(
        [sys.executable, "-m", "nqp_resilience.shell_job", function, str(log), payload],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    return proc, log.read_text(encoding="utf-8") if log.exists() else ""


def test_a_shell_job_runs_its_function_and_logs(tmp_path):
    proc, log = _run(tmp_path, "demo_jobs:write", _payload(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "spec baseline" in log and "spec baseline" in proc.stderr
    more = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    text = (tmp_path / "result.txt").read_text()
    assert text == f"panel.parquet codebook.yaml {more} baseline 1"


def test_a_user_error_in_a_shell_job_is_a_message_and_exit_status_1(tmp_path):
    proc, log = _run(tmp_path, "demo_jobs:refuse", _payload(tmp_path))
    assert proc.returncode == 1
    for text in (log, proc.stderr):
        assert "DataError: file panel.parquet, row line 3:" in text and "fix it" in text
        assert "Traceback" not in text


def test_the_payload_is_json_text(tmp_path):
    data = json.loads(_payload(tmp_path))
    assert set(data) == {"input", "output", "wildcards", "threads", "params"}
    assert data["wildcards"] == {"spec": "baseline"}


def test_the_jobs_python_is_named_in_the_environment_not_in_the_command():
    from nqp_resilience.shell_job import PYTHON_VARIABLE, set_shell_job_python

    env = {}
    set_shell_job_python(False, env)
    assert env == {PYTHON_VARIABLE: sys.executable}
    set_shell_job_python(True, env)  # --use-conda: `python` of the activated environment
    assert env == {}
    rules = (ROOT / "rules" / "common.smk").read_text(encoding="utf-8")
    assert '"${{{{NQP_PYTHON:-python}}}}"' in rules and "sys.executable" not in rules
