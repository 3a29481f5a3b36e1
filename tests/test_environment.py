"""The environment: pins agree between pyproject.toml and envs/workflow.yaml; cheap imports."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import yaml

from conftest import ROOT


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pins(requirements) -> dict[str, str]:
    pins = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^;\s]+)", req.strip())
        assert m, f"{req!r} is not pinned exactly (name==version)"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    project = _pyproject()["project"]
    runtime = _pins(project["dependencies"])
    for required in (
        "snakemake",
        "pandas",
        "pyarrow",
        "linearmodels",
        "statsmodels",
        "jinja2",
        "jieba",
        "openpyxl",
        "matplotlib",
    ):
        assert required in runtime, f"{required} missing from the runtime dependencies"
    assert runtime["snakemake"].startswith("9.")
    tests = _pins(project["optional-dependencies"]["test"])
    assert {"pytest", "pyfixest", "hypothesis"} <= set(tests)


def test_slurm_plugin_only_in_cluster_extra():
    project = _pyproject()["project"]
    assert not any("slurm" in d for d in project["dependencies"])
    assert not any("slurm" in d for d in project["optional-dependencies"]["test"])
    cluster = _pins(project["optional-dependencies"]["cluster"])
    assert "snakemake-executor-plugin-slurm" in cluster


def test_conda_env_matches_pyproject():
    env = yaml.safe_load((ROOT / "envs" / "workflow.yaml").read_text(encoding="utf-8"))
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and "=" in dep:
            name, version = dep.split("=", 1)
            conda[name.lower()] = version
    runtime = _pins(_pyproject()["project"]["dependencies"])
    assert {k: v for k, v in conda.items() if k != "python"} == runtime
    assert conda["python"] == "3.11"


def test_constraints_agree_with_pins():
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    locked = _pins([ln for ln in lines if ln.strip() and not ln.startswith("#")])
    project = _pyproject()["project"]
    for name, version in {
        **_pins(project["dependencies"]),
        **_pins(project["optional-dependencies"]["test"]),
    }.items():
        assert locked.get(name) == version, (
            f"constraints.txt has {name}=={locked.get(name)}, pyproject {version}"
        )


def test_importing_the_package_is_cheap():
    """Each Snakemake job is a new process: `import nqp_resilience` must not load heavy modules."""
    code = (
        "import sys, nqp_resilience, nqp_resilience.runner, nqp_resilience.data.raw_files,"
        " nqp_resilience.errors;"
        "heavy = [m for m in ('pandas', 'numpy', 'scipy', 'statsmodels', 'linearmodels',"
        " 'pyfixest', 'matplotlib', 'jieba', 'openpyxl', 'pyarrow', 'jsonschema')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing the package imported: {out}"


def test_ci_calls_make_test_and_results_are_ignored():
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    for entry in ("results/", "logs/", ".venv/", ".snakemake/"):
        assert entry in ignored
