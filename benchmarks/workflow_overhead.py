"""Benchmark: what a workflow job costs, as ratios to a bare Python process.

Runs the whole workflow on a copy of the repository (default data), then reports

- the median wall time per job (from Snakemake's benchmark files) as a ratio to a bare
  ``python -c "import numpy, pyarrow"`` measured in the same command;
- the full cold run and a no-op rerun as ratios to ``snakemake --version``.

Usage: ``.venv/bin/python benchmarks/workflow_overhead.py [--repeats 5]``. Prints a table;
exits 0. Not part of the test suite (timings are noisy on shared machines).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [
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


def timed(cmd, cwd=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def median_time(cmd, repeats, cwd=None) -> float:
    return statistics.median(timed(cmd, cwd) for _ in range(repeats))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bare = median_time([sys.executable, "-c", "import numpy, pyarrow"], args.repeats)
    version = median_time([SNAKEMAKE, "--version"], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        cold = timed([SNAKEMAKE, "--cores", "2"], cwd=work)
        noop = median_time([SNAKEMAKE, "--cores", "2"], args.repeats, cwd=work)
        per_rule: dict[str, list[float]] = {}
        for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
            with tsv.open() as fh:
                row = next(csv.DictReader(fh, delimiter="\t"))
            per_rule.setdefault(tsv.parent.name, []).append(float(row["s"]))
    print(
        f"reference: python -c 'import numpy, pyarrow' = {bare:.3f} s; "
        f"snakemake --version = {version:.3f} s"
    )
    print(f"{'measure':<34}{'seconds':>10}{'ratio':>10}  reference")
    for rule, times in sorted(per_rule.items()):
        med = statistics.median(times)
        print(
            f"{'job ' + rule + f' (n={len(times)})':<34}"
            f"{med:>10.3f}{med / bare:>10.2f}  bare python"
        )
    print(f"{'full cold run':<34}{cold:>10.3f}{cold / version:>10.2f}  snakemake --version")
    print(f"{'no-op rerun':<34}{noop:>10.3f}{noop / version:>10.2f}  snakemake --version")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
