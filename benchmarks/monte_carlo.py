"""Benchmark: how the Monte Carlo stage scales with the number of seeds.

On a copy of the repository it measures, in one command:

- **DAG construction**: ``snakemake -n monte_carlo`` with 10, 100 and 1,000 seeds per parameter
  set (the default config has three sets, so 30, 300 and 3,000 seed jobs), as ratios to
  ``snakemake -n`` of the default target (the paper's workflow, about 150 jobs) and to
  ``snakemake --version``;
- **per-job overhead**: the wall time of ``--seeds`` seed jobs run by Snakemake with one core,
  against the same seeds run in one Python process by the function the job calls
  (``nqp_resilience.sim.montecarlo.run_seed``); the difference per seed is what a job costs
  beyond its work (interpreter start, imports, Snakemake's bookkeeping).

Usage: ``.venv/bin/python benchmarks/monte_carlo.py [--seeds 2] [--counts 10 100 1000]``.
Prints a table; exits 0. Not part of the test suite (timings are noisy on shared machines).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["Snakefile", "rules", "scripts", "config.yaml", "schemas", "resources", "profiles", "envs"]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def timed(cmd, cwd) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def jobs_in(dry_run: str) -> int:
    for line in dry_run.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    return -1


def in_process(work: Path, seeds: list[int]) -> float:
    code = f"""
import logging, time
from pathlib import Path
from nqp_resilience.config import validate_config
from nqp_resilience.data.io import read_yaml
from nqp_resilience.sim.montecarlo import monte_carlo_config, run_seed
logging.disable(logging.CRITICAL)
config = read_yaml("config.yaml")
validate_config(config, "schemas/config.schema.yaml", source="config")
study = monte_carlo_config(config)
t = time.perf_counter()
for seed in {seeds!r}:
    run_seed(study, "default", seed, Path("inproc") / str(seed))
print(time.perf_counter() - t)
"""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=work, check=True, capture_output=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2, help="seeds for the per-job overhead")
    ap.add_argument("--counts", type=int, nargs="+", default=[10, 100, 1000])
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        version, _ = timed([SNAKEMAKE, "--version"], work)
        base, out = timed([SNAKEMAKE, "-n", "--quiet", "rules"], work)
        print(f"snakemake --version: {version:.2f} s; dry run of the paper's workflow {base:.2f} s")
        print(
            "| seeds per set | jobs (seeds × sets + 2) | dry run (s) | / paper dry run "
            "| / --version |"
        )
        print("|---:|---:|---:|---:|---:|")
        for n in args.counts:
            cfg = f"monte_carlo={{seeds: {{count: {n}}}}}"
            wall, out = timed([SNAKEMAKE, "-n", "monte_carlo", "--config", cfg], work)
            jobs = jobs_in(out)
            print(f"| {n} | {jobs} | {wall:.2f} | {wall / base:.2f} | {wall / version:.2f} |")
        seeds = list(range(1, args.seeds + 1))
        cfg = f"monte_carlo={{seeds: {{first: 1, count: {args.seeds}}}}}"
        targets = [f"results/monte_carlo/default/seed_{s}.json" for s in seeds]
        wall_jobs, _ = timed([SNAKEMAKE, "--cores", "1", *targets, "--config", cfg], work)
        wall_proc = in_process(work, seeds)
        per = (wall_jobs - wall_proc) / len(seeds)
        print(
            f"\n{len(seeds)} seeds, one core: Snakemake jobs {wall_jobs:.1f} s, one process "
            f"{wall_proc:.1f} s (ratio {wall_jobs / wall_proc:.2f}); overhead {per:.2f} s per "
            f"seed job, {per / (wall_proc / len(seeds)):.1%} of a seed's work"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
