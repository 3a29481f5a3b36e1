"""Shared helpers: paths, and running the real Snakemake on a copy of the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the session fixture `slurm_cluster` (a real single-node SLURM), registered once for every module
from slurm import slurm_cluster_fixture  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = [
    "Snakefile",
    "rules",
    "scripts",
    "config.yaml",
    "schemas",
    "resources",
    "profiles",
    "envs",
    "report",
]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
CODEBOOK = ROOT / "resources" / "codebook.yaml"
ATTRIBUTES = ROOT / "resources" / "cities" / "city_attributes.csv"
ALIASES = ROOT / "resources" / "cities" / "city_name_aliases.csv"
RAW = ROOT / "resources" / "raw"
PARAMS = ROOT / "resources" / "simulation" / "params.yaml"


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (not results, logs or .snakemake) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, copy_function=shutil.copy2)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run the real ``snakemake`` in ``workdir``; return the process (stdout+stderr merged)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [SNAKEMAKE, *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}"
        )
    return proc


_JOB = re.compile(r"^\s*(?:local)?rule (\w+):\n(?P<body>(?:\s{4}.*\n?)*)", re.M)


def jobs_of(output: str) -> set[tuple[str, str]]:
    """The (rule, wildcards) pairs a Snakemake run or dry run lists."""
    jobs = set()
    for m in _JOB.finditer(output):
        wc = re.search(r"^\s+wildcards: (.*)$", m.group("body"), re.M)
        jobs.add((m.group(1), wc.group(1).strip() if wc else ""))
    return jobs


def dry_run_jobs(workdir: Path, *args: str) -> set[tuple[str, str]]:
    """Jobs a dry run would execute ("Nothing to be done" gives the empty set)."""
    return jobs_of(snakemake(workdir, "-n", *args).stdout)


@pytest.fixture(scope="session")
def completed_workflow(tmp_path_factory) -> Path:
    """A copy of the workflow after one full run on the default data (built once per session),
    every job in its own process (``job_server=false``), so that the benchmark files measure each
    job's own memory; tests/test_job_server.py runs it again with the job server and compares."""
    work = copy_workflow(tmp_path_factory.mktemp("workflow"))
    snakemake(work, "--cores", "2", "--config", "job_server=false")
    return work


@pytest.fixture
def workflow_copy(completed_workflow, tmp_path) -> Path:
    """A private copy of the completed run (results, metadata and mtimes preserved)."""
    dest = tmp_path / "wf"
    shutil.copytree(completed_workflow, dest, copy_function=shutil.copy2, symlinks=True)
    return dest


def write_estimate_fixture(path: Path, record: dict) -> str:
    """Write a trimmed fixture record as a complete ``results/estimates/{spec}.json``.

    The output jobs validate their inputs against ``schemas/estimate.schema.yaml``; the keys a
    fixture leaves out get neutral values (no CI, no clusters, empty provenance). Returns the path.
    """
    from nqp_resilience.estimation.record import EstimateRecord, write_estimate

    neutral = {"ci": [None, None], "nobs": 0, "cluster": "city", "vcov_type": "cluster"}
    given = {k: v for k, v in record.items() if not (v is None and k in neutral)}
    write_estimate(EstimateRecord(**{**neutral, **given}), path)
    return str(path)
