"""Benchmark: the workflow on a one-node SLURM cluster, grouped and one job per SLURM submission,
against the same work run locally; reported as ratios to the local run.

Starts a private single-node SLURM (cluster/start_slurm.sh; needs root, the Debian packages
slurmctld slurmd slurm-client munge, and `make cluster-env`), copies the workflow into a
temporary folder and times, in rounds (local, grouped, ungrouped, local, ...):

1. local:     snakemake --cores N
2. grouped:   the same through SLURM with profiles/slurm + profiles/slurm-noacct (the profile's
              groups: 16 shards or 20 specs per SLURM job)
3. ungrouped: the same through SLURM with grouping switched off (one SLURM job per job)

``--stage bootstrap`` (default) builds the analysis panel locally once and times the bootstrap
stage (``--until bootstrap_reduce``) after deleting results/bootstrap; ``--stage all`` times the
whole workflow from an empty results folder. Prints wall times, the ratio to the local run of
the same round, the jobs Snakemake ran, the SLURM submissions and the overhead per SLURM job
((ungrouped - local) / submissions).

    .venv/bin/python benchmarks/cluster.py --reps 99999 --shards 4 --rounds 2
    .venv/bin/python benchmarks/cluster.py --stage all --rounds 1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".venv" / "bin" / "snakemake"
CLUSTER = ROOT / ".venv-cluster" / "bin" / "snakemake"
FILES = ["Snakefile", "rules", "scripts", "config.yaml", "schemas", "resources", "profiles"]
FILES += ["envs", "report"]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def run(cmd: list[str], cwd: Path, env: dict, bound: int) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["timeout", "-s", "INT", "-k", "20", str(bound), *cmd],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}")
    return wall, proc.stdout


def job_count(output: str) -> int:
    """The total of Snakemake's "Job stats" table (the jobs the run had to do)."""
    match = re.search(r"^total\s+(\d+)$", output, re.M)
    return int(match.group(1)) if match else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=["bootstrap", "all"], default="bootstrap")
    ap.add_argument("--reps", type=int, default=99_999)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument(
        "--specs", nargs="*", default=None, help="bootstrap specs (default: the config's)"
    )
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the three runs")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--bound", type=int, default=3600, help="seconds allowed for one run")
    args = ap.parse_args()
    if not CLUSTER.exists():
        sys.exit("run `make cluster-env` first (the SLURM executor plugin lives in .venv-cluster)")
    boot = f"reps: {args.reps}, shards: {args.shards}"
    if args.specs is not None:
        boot += f", specs: [{', '.join(args.specs)}]"
    config = ["--config", f"bootstrap={{{boot}}}"]
    until = ["--until", "bootstrap_reduce"] if args.stage == "bootstrap" else []
    with tempfile.TemporaryDirectory(prefix="nqp-cluster-bench-") as tmp:
        state, work = Path(tmp) / "slurm", Path(tmp) / "wf"
        work.mkdir()
        for name in FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        start = subprocess.run(
            ["timeout", "90", str(ROOT / "cluster" / "start_slurm.sh"), str(state)],
            capture_output=True,
            text=True,
        )
        if start.returncode != 0:
            sys.exit(f"cluster/start_slurm.sh failed:\n{start.stdout}\n{start.stderr}")
        fields = dict(kv.split("=", 1) for kv in start.stdout.strip().splitlines()[-1].split())
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env.update(
            SLURM_CONF=fields["conf"],
            NQP_SLURM_PARTITION=fields["partition"],
            OPENBLAS_NUM_THREADS="1",
        )
        try:
            cores = ["--cores", str(args.cores)]
            if args.stage == "bootstrap":
                run([str(LOCAL), *cores, "--until", "analysis_panel"], work, env, args.bound)
            slurm = [str(CLUSTER), "--profile", "profiles/slurm", "--profile"]
            slurm += ["profiles/slurm-noacct", *cores, "--jobs", "8"]
            slurm += ["--slurm-init-seconds-before-status-checks", "2"]
            variants = {
                "local": [str(LOCAL), *cores],
                "SLURM, grouped": slurm,
                # a --groups value replaces the profile's: no rule is grouped
                "SLURM, one job per submission": [*slurm, "--groups", "all=none"],
            }
            rows = []
            for _ in range(args.rounds):
                for name, cmd in variants.items():
                    shutil.rmtree(
                        work / "results" / ("bootstrap" if until else ""), ignore_errors=True
                    )
                    wall, out = run([*cmd, *until, *config], work, env, args.bound)
                    rows.append((name, wall, job_count(out), len(SUBMITTED.findall(out))))
        finally:
            subprocess.run(["timeout", "120", str(ROOT / "cluster" / "stop_slurm.sh"), str(state)])
    what = "bootstrap stage" if until else "whole workflow"
    print(f"\n{what}: bootstrap {boot}, on a one-node SLURM with {args.cores} CPUs\n")
    print("| run | wall s | ratio to local | jobs | SLURM submissions |")
    print("|---|---:|---:|---:|---:|")
    n = len(variants)
    for i, (name, wall, jobs, subs) in enumerate(rows):
        local = rows[i - i % n][1]
        print(f"| {name} | {wall:.1f} | {wall / local:.2f} | {jobs} | {subs} |")
    for r in range(0, len(rows), n):
        local, per_job = rows[r], rows[r + n - 1]
        if per_job[3]:
            print(f"overhead per SLURM job: {(per_job[1] - local[1]) / per_job[3]:.1f} s")


if __name__ == "__main__":
    main()
