"""Benchmark: specification jobs and the TWFE estimator, as ratios to references run here.

1. Median wall time of the per-spec jobs (Snakemake benchmark files of a full run on the
   default data) as a ratio to a bare ``python -c "import numpy, pyarrow"``.
2. The TWFE fit (city + year FE, CR1 by city) at 2,760, 56,000 and 1,000,000 rows as a ratio
   to pyfixest ``feols(..., vcov={"CRV1": "city"})`` on the same data (pyfixest warmed up first;
   median of repeats). Coefficients are checked to agree.

Usage: ``.venv/bin/python benchmarks/spec_jobs.py [--repeats 3] [--skip-workflow]``.
Not part of the test suite: timings on shared machines are noisy.
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

import numpy as np

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
SPEC_RULES = ("describe", "ols_fe", "iv_fe", "psm_fe")


def _median_cmd(cmd, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def spec_job_times() -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in FILES:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        subprocess.run(
            [SNAKEMAKE, "--cores", "2"],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        out: dict[str, list[float]] = {}
        for rule in SPEC_RULES:
            for tsv in (work / "results" / "benchmarks" / rule).glob("*.tsv"):
                with tsv.open() as fh:
                    out.setdefault(rule, []).append(
                        float(next(csv.DictReader(fh, delimiter="\t"))["s"])
                    )
        return out


def simulated(n_rows: int, n_t: int = 12, seed: int = 0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_ids = n_rows // n_t
    ids = np.repeat(np.arange(n_ids), n_t)
    t = np.tile(np.arange(n_t), n_ids)
    x = rng.normal(size=ids.size) + rng.normal(size=n_ids)[ids]
    controls = rng.normal(size=(ids.size, 8))
    y = (
        0.07 * x
        + controls @ np.linspace(0.01, 0.08, 8)
        + rng.normal(size=n_ids)[ids]
        + rng.normal(size=ids.size)
    )
    df = pd.DataFrame(controls, columns=[f"c{i}" for i in range(8)])
    df["city"], df["year"], df["x"], df["y"] = ids, t, x, y
    return df


def twfe_ratio(n_rows: int, repeats: int) -> tuple[float, float, float]:
    import pyfixest as pf

    from nqp_resilience.estimation.ols import twfe

    df = simulated(n_rows)
    controls = [f"c{i}" for i in range(8)]
    data = {c: df[c].to_numpy() for c in df.columns}
    fml = "y ~ x + " + " + ".join(controls) + " | city + year"
    pf.feols(fml, data=df.head(1000), vcov={"CRV1": "city"})  # warm-up (compilation, imports)
    twfe(data, "y", "x", controls, "city", "year", "city")
    ours, theirs = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = twfe(data, "y", "x", controls, "city", "year", "city")
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = pf.feols(fml, data=df, vcov={"CRV1": "city"})
        theirs.append(time.perf_counter() - t0)
    assert abs(r.coef - m.coef()["x"]) < 1e-8 * max(1.0, abs(r.coef))
    o, t = statistics.median(ours), statistics.median(theirs)
    return o, t, o / t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-workflow", action="store_true")
    args = ap.parse_args()
    if not args.skip_workflow:
        bare = _median_cmd([sys.executable, "-c", "import numpy, pyarrow"], max(args.repeats, 3))
        jobs = spec_job_times()
        allj = [x for v in jobs.values() for x in v]
        print(f"reference: python -c 'import numpy, pyarrow' = {bare:.3f} s")
        for rule, times in sorted(jobs.items()):
            med = statistics.median(times)
            print(
                f"spec jobs {rule:<8} n={len(times):>2}  median {med:.3f} s  ratio {med / bare:.2f}"
            )
        print(
            f"spec jobs all      n={len(allj):>2}  median {statistics.median(allj):.3f} s  "
            f"ratio {statistics.median(allj) / bare:.2f}"
        )
    for n in (2_760, 56_000, 1_000_000):
        o, t, ratio = twfe_ratio(n, args.repeats)
        print(f"twfe {n:>9,} rows: ours {o:.4f} s, pyfixest {t:.4f} s, ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
