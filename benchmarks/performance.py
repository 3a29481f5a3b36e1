"""Benchmark report: the project's performance targets as ratios to references timed in the same
run, written to ``docs/performance.md`` (``make bench``).

Measured, each against a reference taken in the same command:

1. **Workflow jobs** (a copy of the repository, default data, ``snakemake --cores 2``): every
   rule's median job time from Snakemake's benchmark files, against a bare
   ``python -c "import numpy, pyarrow"``; then the rules of the targets again *alone*
   (``--cores 1 --forcerun RULE --until RULE``), since jobs contend inside a 2-core run; the cold
   run (the median of three, each in a fresh copy) and a no-op rerun against
   ``snakemake --version``; the figure jobs alone once more without the font subsets that
   earlier runs kept; and two floors that no change to this project can go below: the no-op
   rerun of a Snakefile of as many trivial shell jobs, and a process that only imports what
   every figure job imports. The jobs run as in any local run:
   forked by the run's job server once it is up (``docs/job_server.md``), the first ones (and a
   run's only job) in their own process while it starts.
2. **Estimators at a million rows** (10,000 units x 100 periods, 5 controls, two-way fixed
   effects, CR1 by unit): ``twfe`` against pyfixest ``feols`` and ``iv_twfe`` against pyfixest
   IV, both warmed up, median of ``--repeats`` pairs run in turn; the coefficients must agree.
3. **Matching at a million rows** (``benchmarks/psm.py``'s data): ``psm`` nearest neighbour with
   the logit fitted, against a statsmodels ``Logit`` fit plus a sorted nearest-neighbour search;
   radius and kernel matching in seconds.
4. **County scale** (when the simulator has ``--units``): the whole workflow on 2,800 units x
   20 years against the default run, and the largest job's peak memory.

Usage: ``.venv/bin/python benchmarks/performance.py [--repeats 3] [--out docs/performance.md]
[--skip-county]``. Not part of the test suite (timings on shared machines are noisy): run it on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
FILES = ["Snakefile", "rules", "scripts", "config.yaml", "schemas", "resources", "profiles"]
FILES += ["envs", "report"]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")
SPEC_RULES = ("ols_fe", "iv_fe", "psm_fe")
COLD_RUNS = 3


def run(cmd, cwd=None, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        cmd,
        cwd=cwd,
        env=env or ENV,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def median_run(cmd, repeats, cwd=None, env=None) -> float:
    return statistics.median(run(cmd, cwd, env) for _ in range(repeats))


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        src = ROOT / name
        if src.exists():
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / name)
    return dest


def job_times(work: Path) -> dict[str, list[tuple[float, float]]]:
    """{rule: [(seconds, max RSS MB), ...]} from the benchmark files of a run."""
    out: dict[str, list[tuple[float, float]]] = {}
    for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
        with tsv.open() as fh:
            row = next(csv.DictReader(fh, delimiter="\t"))
        rss = float(row["max_rss"]) if row.get("max_rss") not in (None, "", "NA", "-") else 0.0
        out.setdefault(tsv.parent.name, []).append((float(row["s"]), rss))
    return out


def peak_rss(work: Path) -> float:
    """The largest peak RSS (MB) of any job of a run: the benchmark files for the jobs that ran
    in their own process, the job server's log (``.snakemake/nqp_resilience/job_server.*.log``)
    for the jobs it forked. A forked worker's peak counts the pages it shares with the server,
    so it overstates the job's own memory."""
    peaks = [r for v in job_times(work).values() for _, r in v]
    folder = work / ".snakemake" / "nqp_resilience"
    deadline = time.monotonic() + 2.0  # a server renames its log when it ends, just after its run
    while time.monotonic() < deadline and any(
        p.name.removeprefix("job_server.").isdigit() for p in folder.glob("job_server.*")
    ):
        time.sleep(0.02)
    for log in folder.glob("job_server.*.log"):
        for line in log.read_text().splitlines():
            field = line.split("\t")[-1]
            if field.startswith("peak RSS ") and field.endswith(" MB"):
                peaks.append(float(field[len("peak RSS ") : -3]))
    return max(peaks, default=0.0)


def rule_group(rule: str) -> str | None:
    if rule in SPEC_RULES:
        return "spec jobs (ols_fe, iv_fe, psm_fe)"
    if rule.startswith("ingest_"):
        return "ingest jobs"
    if rule.startswith("figures_"):
        return "figure jobs, per figure"
    if rule == "nqp_text":
        return "nqp_text job"
    return None


GROUP_TARGETS = {
    "spec jobs (ols_fe, iv_fe, psm_fe)": 1.5,
    "ingest jobs": 2.0,
    "figure jobs, per figure": 3.0,
    "nqp_text job": 3.0,
}


def per_output(work: Path, rule: str) -> int:
    """How many figures one job of ``rule`` draws: its time is divided by this."""
    figures = work / "results" / "figures"
    if rule == "figures_data":
        return 2
    if rule == "figures_pscore":
        return max(1, len(list(figures.glob("pscore_*.png"))))
    return 1


def workflow_rows(repeats: int) -> tuple[list[dict], dict]:
    bare = median_run([sys.executable, *BARE], max(repeats, 5))
    version = median_run([SNAKEMAKE, "--version"], max(repeats, 5))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_repo(Path(tmp))
        colds = [run([SNAKEMAKE, "--cores", "2"], cwd=work)]
        inside = job_times(work)
        for _ in range(COLD_RUNS - 1):  # one run varies by a second here: the median of three
            with tempfile.TemporaryDirectory() as again:
                colds.append(run([SNAKEMAKE, "--cores", "2"], cwd=copy_repo(Path(again))))
        cold = statistics.median(colds)
        n_jobs = count_jobs(work)
        noop, floor_noop, version_alongside = noop_rounds(work, n_jobs, max(repeats, 7))
        groups: dict[str, list[float]] = {}
        for rule, times in inside.items():
            g = rule_group(rule)
            if g:
                groups.setdefault(g, []).extend(t / per_output(work, rule) for t, _ in times)
        alone: dict[str, list[float]] = {}
        for rule in sorted(inside):
            g = rule_group(rule)
            if g is None:
                continue
            bench = work / "results" / "benchmarks" / rule
            shutil.rmtree(bench, ignore_errors=True)
            cmd = [SNAKEMAKE, "--cores", "1", "--forcerun", rule, "--until", rule]
            run(cmd, cwd=work)
            times = job_times(work).get(rule, [])
            alone.setdefault(g, []).extend(t / per_output(work, rule) for t, _ in times)
        # the figure jobs alone once more, without the font subsets the earlier runs kept
        # (docs/figures.md, "Font subsets"): what a figure whose text has new glyphs costs
        unkept: list[float] = []
        for rule in sorted(r for r in inside if r.startswith("figures_")):
            shutil.rmtree(work / ".snakemake" / "nqp_resilience" / "font_subsets", True)
            shutil.rmtree(work / "results" / "benchmarks" / rule, ignore_errors=True)
            run([SNAKEMAKE, "--cores", "1", "--forcerun", rule, "--until", rule], cwd=work)
            unkept.extend(t / per_output(work, rule) for t, _ in job_times(work).get(rule, []))
        default_peak = peak_rss(work)
    for g, target in GROUP_TARGETS.items():
        if g not in groups:
            continue
        med_in, med_alone = statistics.median(groups[g]), statistics.median(alone[g])
        rows.append(
            row(f"{g}, alone (--cores 1)", med_alone, bare, "bare python", target)
            | {"n": len(alone[g])}
        )
        rows.append(
            row(f"{g}, inside the 2-core cold run", med_in, bare, "bare python", None)
            | {"n": len(groups[g])}
        )
    if unkept:
        what = "figure jobs, per figure, alone, no font subsets kept"
        rows.append(row(what, statistics.median(unkept), bare, "bare python", None))
        rows[-1]["n"] = len(unkept)
    cold_what = f"full cold run (--cores 2), median of {len(colds)} in fresh copies"
    cold_what += f" ({min(colds):.2f}–{max(colds):.2f} s)"
    rows.append(row(cold_what, cold, version, "snakemake --version", 12.0))
    # the no-op and its floor against `snakemake --version` timed in turn with them: the machine's
    # speed drifts over the minutes between the first reference and these runs
    alongside = "snakemake --version, timed in turn"
    rows.append(row("no-op rerun", noop, version_alongside, alongside, 1.2))
    # the floors of the two targets that are missed: what Snakemake and matplotlib cost before
    # any line of this project runs
    what = f"floor: no-op rerun of a Snakefile of {n_jobs} trivial shell jobs (as many as the run)"
    rows.append(row(what, floor_noop, version_alongside, alongside, None))
    turns = [
        (run([sys.executable, "-c", FIGURE_IMPORTS]), run([sys.executable, *BARE]))
        for _ in range(max(repeats, 7))
    ]
    figure_floor, bare_alongside = (statistics.median(c) for c in zip(*turns, strict=True))
    what = "floor: a process that imports what every figure job imports (matplotlib's Figure, Agg"
    what += " and PDF backends, numpy, pyarrow), no figure drawn"
    rows.append(row(what, figure_floor, bare_alongside, "bare python, timed in turn", None))
    refs = {
        "bare python": bare,
        "snakemake --version": version,
        "default cold run": cold,
        "default peak": default_peak,
    }
    return rows, refs


BARE = ("-c", "import numpy, pyarrow")
FIGURE_IMPORTS = (
    "import numpy, pyarrow, matplotlib.figure, matplotlib.backends.backend_agg, "
    "matplotlib.backends.backend_pdf"
)


def count_jobs(work: Path) -> int:
    """The number of jobs of the whole default run (a forced dry run's job total)."""
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-F"], cwd=work, env=ENV, capture_output=True, text=True, check=True
    ).stdout
    totals = [line.split()[1] for line in out.splitlines() if line.startswith("total ")]
    return int(totals[0])


def noop_rounds(work: Path, n_jobs: int, rounds: int) -> tuple[float, float, float]:
    """Medians of ``rounds`` turns of: the no-op rerun in ``work``, Snakemake's own no-op floor
    (a Snakefile of ``n_jobs`` one-line shell jobs, run once before), ``snakemake --version``."""
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "Snakefile").write_text(
            "rule all:\n"
            f"    input: expand('out/{{i}}.txt', i=range({n_jobs - 1}))\n"
            "rule one:\n"
            "    output: 'out/{i}.txt'\n"
            "    shell: 'echo {wildcards.i} > {output}'\n"
        )
        run([SNAKEMAKE, "--cores", "2"], cwd=tmp)
        times = [
            (
                run([SNAKEMAKE, "--cores", "2"], cwd=work),
                run([SNAKEMAKE, "--cores", "2"], cwd=tmp),
                run([SNAKEMAKE, "--version"]),
            )
            for _ in range(rounds)
        ]
    noop, floor, version = (statistics.median(column) for column in zip(*times, strict=True))
    return noop, floor, version


def row(what, seconds, ref_seconds, ref_name, target) -> dict:
    ratio = seconds / ref_seconds
    met = None if target is None else ratio <= target
    return {
        "what": what,
        "seconds": seconds,
        "reference": ref_name,
        "ref_seconds": ref_seconds,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def panel(n_units=10_000, n_t=100, k=5, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_units), n_t)
    t = np.tile(np.arange(n_t), n_units)
    n = ids.size
    a = rng.normal(size=n_units)[ids]
    z = rng.normal(size=n) + a
    x = 0.5 * z + rng.normal(size=n) + a
    c = rng.normal(size=(n, k))
    y = 0.07 * x + c @ np.linspace(0.01, 0.05, k) + a + rng.normal(size=n_t)[t]
    y = y + rng.normal(size=n)
    df = pd.DataFrame(c, columns=[f"c{i}" for i in range(k)])
    df["unit"], df["t"], df["x"], df["z"], df["y"] = ids, t, x, z, y
    return df, [f"c{i}" for i in range(k)]


def estimator_rows(repeats: int) -> list[dict]:
    import pyfixest as pf

    from nqp_resilience.estimation.iv import iv_twfe
    from nqp_resilience.estimation.ols import twfe

    df, ctr = panel()
    data = {c: df[c].to_numpy() for c in df.columns}
    ols_f = "y ~ x + " + " + ".join(ctr) + " | unit + t"
    iv_f = "y ~ " + " + ".join(ctr) + " | unit + t | x ~ z"
    small = df.head(5_000)
    pf.feols(ols_f, data=small, vcov={"CRV1": "unit"})
    pf.feols(iv_f, data=small, vcov={"CRV1": "unit"})
    twfe(data, "y", "x", ctr, "unit", "t", "unit")
    iv_twfe(data, "y", "x", "z", ctr, "unit", "t", "unit")
    rows = []
    for label, ours, theirs in (
        (
            "twfe, 1,000,000 rows (10,000 x 100, 5 controls)",
            lambda: twfe(data, "y", "x", ctr, "unit", "t", "unit"),
            lambda: pf.feols(ols_f, data=df, vcov={"CRV1": "unit"}),
        ),
        (
            "iv_twfe, 1,000,000 rows (10,000 x 100, 5 controls)",
            lambda: iv_twfe(data, "y", "x", "z", ctr, "unit", "t", "unit"),
            lambda: pf.feols(iv_f, data=df, vcov={"CRV1": "unit"}),
        ),
    ):
        a, b = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            r = ours()
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            m = theirs()
            b.append(time.perf_counter() - t0)
        assert abs(r.coef - m.coef()["x"]) <= 1e-8 * max(1.0, abs(r.coef)), label
        ta, tb = statistics.median(a), statistics.median(b)
        # at least twice as fast as pyfixest: ours / pyfixest <= 0.5
        rows.append(row(label, ta, tb, "pyfixest", 0.5))
    return rows


def psm_rows() -> list[dict]:
    import psm as bench_psm

    from nqp_resilience.estimation import matching as P

    data = bench_psm.simulated(1_000_000)
    warm = bench_psm.simulated(2_000, seed=1)
    bench_psm.reference(warm)
    for method in ("nearest", "radius", "kernel"):
        P.psm(warm, "t", bench_psm.COVARIATES, "y", method, balance=False)
    ref = min(bench_psm.timed(lambda: bench_psm.reference(data)) for _ in range(2))
    near = min(
        bench_psm.timed(
            lambda: P.psm(data, "t", bench_psm.COVARIATES, "y", "nearest", balance=False)
        )
        for _ in range(2)
    )
    rows = [
        row(
            "psm nearest (logit fitted), 1,000,000 rows",
            near,
            ref,
            "statsmodels Logit + sorted search",
            1.5,
        )
    ]
    for method, kw in (("radius", {"caliper": 0.01}), ("kernel", {"kernel": "epan"})):
        sec = bench_psm.timed(
            lambda m=method, k=kw: P.psm(
                data, "t", bench_psm.COVARIATES, "y", m, balance=False, **k
            )
        )
        rows.append(row(f"psm {method} (logit fitted), 1,000,000 rows", sec, 1.0, "1 second", 10.0))
    return rows


def county_rows(refs: dict) -> list[dict]:
    """The workflow on a simulated county-scale panel (2,800 units x 20 years)."""
    sim = [sys.executable, "-m", "nqp_resilience.sim.simulate"]
    probe = subprocess.run(sim + ["--help"], capture_output=True, text=True, env=ENV)
    if "--units" not in probe.stdout:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        work = copy_repo(Path(tmp) / "wf")
        raw = Path(tmp) / "raw"
        params = str(ROOT / "resources" / "simulation" / "params.yaml")
        run(
            sim
            + ["--seed", "20240601", "--params", params, "--out", str(raw)]
            + ["--units", "2800", "--years", "2002-2021"]
        )
        cfg = ["--config", f"raw_dir={raw}", f"city_attributes={raw}/units/city_attributes.csv"]
        cfg += ["years={start: 2002, end: 2021}", "plausibility=warn"]
        wall = run([SNAKEMAKE, "--cores", "2", *cfg], cwd=work)
        peak = peak_rss(work)
    return [
        row(
            "county panel run (2,800 x 20 = 56,000 rows)",
            wall,
            refs["default cold run"],
            "default cold run",
            3.0,
        )
        | {"note": f"largest job peak RSS {peak:.0f} MB (target <= 2,048 MB)"}
    ]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kb / 1024**2:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown memory"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}"


def versions() -> str:
    names = ["numpy", "pandas", "pyarrow", "scipy", "statsmodels", "pyfixest", "snakemake"]
    parts = [f"Python {platform.python_version()}"]
    for name in names:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def fmt(r: dict) -> str:
    if r["target"] is None:
        target, met = "", ""
    else:
        target = f"≤ {r['target']:g}×"
        met = "met" if r["met"] else "**missed**"
    n = f" (n = {r['n']})" if "n" in r else ""
    note = f"; {r['note']}" if r.get("note") else ""
    return (
        f"| {r['what']}{n}{note} | {r['seconds']:.3f} | {r['reference']} "
        f"({r['ref_seconds']:.3f} s) | {r['ratio']:.2f}× | {target} | {met} |"
    )


def write(rows: list[dict], out: Path, command: str) -> None:
    lines = [
        "# Performance",
        "",
        "Every figure is a ratio to a reference timed in the same run on the same machine, so",
        "that a slower or busier machine moves both. Written by `make bench`",
        f"(`{command}`); rerun it on an otherwise idle machine before quoting a figure.",
        "",
        f"- Measured: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()}",
        f"- Versions: {versions()}",
        "- Jobs run with `OPENBLAS_NUM_THREADS=1` (two jobs on two cores are faster that way).",
        "- Load average at the end (1, 5, 15 min): "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (above about 0.5 the machine was busy with other work: the ratios are inflated)",
        "",
        "| measure | seconds | reference | ratio | target | |",
        "|---|---:|---|---:|---|---|",
        *[fmt(r) for r in rows],
        "",
        "How each figure is taken: see the docstring of `benchmarks/performance.py`. A ratio",
        "of at most 0.5 to pyfixest is at least twice as fast. Below 100,000 rows the",
        "estimators keep their reference arithmetic, so the default outputs never change; from",
        "there up they take the large-sample path described in `docs/estimators.md`.",
        "",
    ]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument("--skip-county", action="store_true")
    args = ap.parse_args()
    rows, refs = workflow_rows(args.repeats)
    print(*(fmt(r) for r in rows), sep="\n", flush=True)
    # at least 7 pairs: a pyfixest fit takes 0.6-1.4 s from one call to the next on a shared
    # 2-core machine, so 3 pairs leave the median ratio about 0.05 either way
    more = estimator_rows(max(args.repeats, 7)) + psm_rows()
    print(*(fmt(r) for r in more), sep="\n", flush=True)
    rows += more
    if not args.skip_county:
        county = county_rows(refs)
        print(*(fmt(r) for r in county), sep="\n", flush=True)
        rows += county
    flags = [a for a in sys.argv[1:] if a not in ("--out", str(args.out))]
    write(rows, args.out, " ".join(["python benchmarks/performance.py", *flags]))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
