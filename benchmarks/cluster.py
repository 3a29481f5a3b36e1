"""Benchmark: the bootstrap stage on a one-node SLURM cluster, grouped and one job per shard,
against the same stage run locally; reported as ratios to the local run.

Starts a private single-node SLURM (cluster/start_slurm.sh; needs root, the Debian packages
slurmctld slurmd slurm-client munge, and `make cluster-env`), copies the workflow into a
temporary folder, builds the analysis panel locally once, then times, in turn:

1. local:       snakemake --cores N --until bootstrap_reduce
2. grouped:     the same through SLURM with profiles/slurm + profiles/slurm-noacct (16 shards per
                SLURM job)
3. per shard:   the same through SLURM with grouping switched off (one SLURM job per shard)

each after deleting results/bootstrap, and prints wall times, ratios to the local run, the
number of SLURM submissions and the overhead per SLURM job ((per shard − local) / jobs).

    .venv/bin/python benchmarks/cluster.py --reps 99999 --shards 4 --specs baseline iv_relief
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=99_999)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--specs", nargs="+", default=["baseline", "iv_relief", "rob_city_trends"])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--bound", type=int, default=3600, help="seconds allowed for one run")
    args = ap.parse_args()
    if not CLUSTER.exists():
        sys.exit("run `make cluster-env` first (the SLURM executor plugin lives in .venv-cluster)")
    config = [
        "--config",
        f"bootstrap={{reps: {args.reps}, shards: {args.shards}, specs: [{', '.join(args.specs)}]}}",
    ]
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
            run([str(LOCAL), *cores, "--until", "analysis_panel"], work, env, args.bound)
            slurm = [str(CLUSTER), "--profile", "profiles/slurm", "--profile"]
            slurm += ["profiles/slurm-noacct", *cores, "--jobs", "8"]
            slurm += ["--slurm-init-seconds-before-status-checks", "2"]
            variants = {
                "local": [str(LOCAL), *cores],
                "SLURM, grouped": slurm,
                # a --groups value replaces the profile's: no rule of the stage is grouped
                "SLURM, one job per shard": [*slurm, "--groups", "all=none"],
            }
            rows = []
            for name, cmd in variants.items():
                shutil.rmtree(work / "results" / "bootstrap", ignore_errors=True)
                wall, out = run([*cmd, "--until", "bootstrap_reduce", *config], work, env, 9999)
                rows.append((name, wall, len(SUBMITTED.findall(out))))
        finally:
            subprocess.run(["timeout", "120", str(ROOT / "cluster" / "stop_slurm.sh"), str(state)])
    local = rows[0][1]
    n_jobs = len(args.specs) * (args.shards + 1)
    print(f"\nbootstrap stage: {len(args.specs)} specs x {args.shards} shards + reduce")
    print(f"({n_jobs} jobs), B = {args.reps:,}, on a one-node SLURM with {args.cores} CPUs\n")
    print("| run | wall s | ratio to local | SLURM submissions |")
    print("|---|---:|---:|---:|")
    for name, wall, subs in rows:
        print(f"| {name} | {wall:.1f} | {wall / local:.2f} | {subs} |")
    per_shard = rows[2]
    if per_shard[2]:
        print(f"\noverhead per SLURM job: {(per_shard[1] - local) / per_shard[2]:.1f} s")


if __name__ == "__main__":
    main()
