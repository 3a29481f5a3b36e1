"""Benchmark: the wild cluster bootstrap against wildboottest and pyfixest, as ratios.

The baseline model on simulated data: 230 cities × 12 years (N = 2,760), city and year fixed
effects, the core regressor and 8 controls, CR1 clustered by city; WCR bootstrap of H0: β = 0
with B = 9,999 Rademacher draws (G = 230, so the draws are random, not enumerated).

1. Wall time of ``wild_cluster_bootstrap`` next to

   - ``wildboottest.wildboottest(model, B=..., cluster=..., param="x")`` on a statsmodels OLS of
     y on a constant, x, the controls and the city and year dummies (229 + 11; the LSDV form of
     the same model, so the bootstrap regressions are those of the fixed-effects model);
   - pyfixest's ``Feols.wildboottest(reps=..., param="x", cluster="city")`` after
     ``feols("y ~ x + controls | city + year", vcov={"CRV1": "city"})`` (pyfixest one-hot
     encodes the fixed effects and calls wildboottest's ``WildboottestCL``).

   Each package's defaults otherwise (bootstrap type "11" = WCR with CR1 scores, two-sided
   symmetric p-value). Ours is timed end to end (data frame in; the fixed-effects fit, the
   p-value and the bootstrap confidence set out); theirs is the bootstrap call only, on a model
   built and fitted beforehand. Each is called once to warm up (imports, compilation), then the
   three run in turn ``--repeat`` times, the order rotated each round; the medians (and the
   best rounds) are reported, with the load average of the machine before the timings.
2. Agreement. The t statistics, freed of each package's small-sample factor (reghdfe's K here,
   the LSDV count of all dummies there; the p-values do not depend on it), must be equal; the
   p-values, from independent draws, must agree within Monte Carlo error (|Δp| ≤ 3 SE of the
   difference of two independent proportions). On 12 cities all three enumerate the
   2^12 = 4,096 Rademacher vectors, so there the p-values must agree exactly, up to the two
   draws that tie with the sample t (weights all +1 or all −1): ours counts ties as at least as
   extreme, wildboottest compares strictly. A last row shows why the dummies are needed:
   wildboottest on two-way demeaned data is a different bootstrap (the year effects are not
   nested in the clusters) and gives another p-value.
3. Memory: B = 9,999 and B = ``--big-reps`` (99,999) in fresh subprocesses, each reporting its
   wall time, the peak of the memory traced during the call (tracemalloc) and the process's
   peak resident set size and its growth during the call. The draws are processed in blocks, so
   the memory grows by a few numbers per draw only, not by a G × B weight matrix.

Usage: ``.venv/bin/python benchmarks/bootstrap.py [--reps 9999] [--repeat 5] [--big-reps 99999]
[--skip-memory]``. wildboottest and pyfixest come with ``pip install -c constraints.txt -e
".[test,bench]"``. Prints a table; exits 0. Not part of the test suite (timings are noisy on
shared machines).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np

N_CITIES, N_YEARS, N_CONTROLS = 230, 12, 8
CONTROLS = [f"c{i}" for i in range(N_CONTROLS)]
TARGET = 15.0  # ours must be at least this many times faster than the faster of the two
INSTALL = 'pip install -c constraints.txt -e ".[test,bench]"'


def simulated(n_cities: int = N_CITIES, n_years: int = N_YEARS, seed: int = 0):
    """A balanced panel like the baseline: x correlated within city, city and year effects in
    both x and y, 8 controls, a small true coefficient (so that the p-value is not tiny)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    city = np.repeat(np.arange(n_cities), n_years)
    year = np.tile(np.arange(2010, 2010 + n_years), n_cities)
    n = city.size
    year_fx = rng.normal(size=n_years)[year - 2010]
    x = rng.normal(size=n) + rng.normal(size=n_cities)[city] + 0.5 * year_fx
    controls = rng.normal(size=(n, N_CONTROLS)) + 0.3 * x[:, None]
    y = (
        0.02 * x
        + controls @ np.linspace(0.01, 0.08, N_CONTROLS)
        + rng.normal(size=n_cities)[city]
        + year_fx
        + rng.normal(size=n) * (1.0 + 0.5 * np.abs(x))
    )
    df = pd.DataFrame(controls, columns=CONTROLS)
    df["city"], df["year"], df["x"], df["y"] = city, year, x, y
    return df


# --- the three implementations: each returns (t, bootstrap p, CR1 small-sample factor) ---------


def ours(df, reps: int, seed: int):
    from nqp_resilience import wild_cluster_bootstrap

    r = wild_cluster_bootstrap(
        df, "y", "x", CONTROLS, "city", "year", "city", reps, seed, weights="rademacher"
    )
    n, G, K = r.nobs, r.n_clusters, r.extra["df_k"]
    return r.t, r.extra["bootstrap_p"], G / (G - 1) * (n - 1) / (n - K)


def wildboottest_setup(df):
    """statsmodels OLS of y on a constant, x, the controls and the city and year dummies."""
    import pandas as pd
    import statsmodels.api as sm

    dummies = pd.get_dummies(
        df[["city", "year"]].astype(str), drop_first=True, dtype=float
    ).set_index(df.index)
    X = sm.add_constant(pd.concat([df[["x", *CONTROLS]], dummies], axis=1))
    return sm.OLS(df["y"], X), df["city"].to_numpy()


def wildboottest_run(setup, reps: int, seed: int):
    from wildboottest.wildboottest import wildboottest

    model, cluster = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "2^G < the number of boot iterations" (enumeration)
        out = wildboottest(model, B=reps, cluster=cluster, param="x", seed=seed, show=False)
    n, k = model.exog.shape
    G = len(np.unique(cluster))
    return (
        float(out["statistic"].iloc[0]),
        float(out["p-value"].iloc[0]),
        G / (G - 1) * (n - 1) / (n - k),
    )


def pyfixest_setup(df):
    import pyfixest as pf

    fml = "y ~ x + " + " + ".join(CONTROLS) + " | city + year"
    return pf.feols(fml, data=df, vcov={"CRV1": "city"})


def pyfixest_run(fit, reps: int, seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fit.wildboottest(reps=reps, param="x", cluster="city", seed=seed)
    return float(out["t value"]), float(out["Pr(>|t|)"]), float(out["ssc"])


def available() -> dict[str, str | None]:
    """Package versions, or None where not installed."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("wildboottest", "pyfixest"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    if out["wildboottest"] is None:
        out["pyfixest"] = None  # its wildboottest() needs the wildboottest package
    return out


# --- 1 and 2: timings and agreement ------------------------------------------------------------


def compare(df, reps: int, repeat: int, seed: int, versions) -> dict:
    runners = {"nqp_resilience": lambda: ours(df, reps, seed)}
    if versions["wildboottest"]:
        wb = wildboottest_setup(df)
        runners["wildboottest"] = lambda: wildboottest_run(wb, reps, seed + 1)
    if versions["pyfixest"]:
        fit = pyfixest_setup(df)
        runners["pyfixest"] = lambda: pyfixest_run(fit, reps, seed + 2)
    results = {name: run() for name, run in runners.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - t0)
    return {
        name: {
            "seconds": statistics.median(times[name]),
            "best": min(times[name]),
            "result": results[name],
        }
        for name in runners
    }


def mc_agreement(p1: float, p2: float, reps: int) -> tuple[float, float]:
    """|p1 − p2| and the standard error of the difference of two independent bootstrap
    p-values with B draws each (pooled proportion; at least one draw's worth)."""
    p = min(max((p1 + p2) / 2.0, 1.0 / reps), 1.0 - 1.0 / reps)
    return abs(p1 - p2), math.sqrt(2.0 * p * (1.0 - p) / reps)


def demeaned_setup(df):
    """The tempting shortcut, *not* the same bootstrap: wildboottest on two-way demeaned data
    without dummies (x − x̄_city − x̄_year + x̄, exact in a balanced panel). The coefficient and
    CR1 variance are those of the model, but the bootstrap errors ë∘v are not orthogonal to the
    year effects (not nested in the clusters), which the dummies would absorb on every draw."""
    import statsmodels.api as sm

    cols = ["y", "x", *CONTROLS]
    v = df[cols]
    dm = (
        v
        - v.groupby(df["city"]).transform("mean")
        - v.groupby(df["year"]).transform("mean")
        + v.mean()
    )
    return sm.OLS(dm["y"], dm[["x", *CONTROLS]]), df["city"].to_numpy()


def enumeration_check(versions, seed: int) -> list[str]:
    """12 cities: every implementation enumerates the 4,096 Rademacher vectors."""
    df = simulated(n_cities=12, seed=seed)
    reps, n_draws = 9999, 2**12
    rows = [("nqp_resilience", ours(df, reps, seed))]
    if versions["wildboottest"]:
        rows.append(("wildboottest", wildboottest_run(wildboottest_setup(df), reps, seed)))
    if versions["pyfixest"]:
        rows.append(("pyfixest", pyfixest_run(pyfixest_setup(df), reps, seed)))
    p0, t0 = rows[0][1][1], rows[0][1][0] * math.sqrt(rows[0][1][2])
    lines = []
    for name, (t, p, q) in rows:
        ties = round((p0 - p) * n_draws)
        exact = name == "nqp_resilience" or (
            abs((p0 - p) * n_draws - ties) < 1e-9 and 0 <= ties <= 2
        )
        same_t = abs(t * math.sqrt(q) - t0) <= 1e-8 * max(1.0, abs(t0))
        lines.append(
            f"| {name} | {t * math.sqrt(q):+.6f} | {p:.6f} | {(p0 - p) * n_draws:+.1f} | "
            f"{'yes' if exact and same_t else 'NO'} |"
        )
    if versions["wildboottest"]:
        _, p, _ = wildboottest_run(demeaned_setup(df), reps, seed)
        lines.append(
            f"| wildboottest, demeaned data (not the same bootstrap) | — | {p:.6f} | "
            f"{(p0 - p) * n_draws:+.1f} | not expected |"
        )
    return lines


# --- 3: memory, in fresh processes ------------------------------------------------------------


def peak_rss() -> int:
    """Peak resident set size of this process in bytes: VmHWM of /proc/self/status where there
    is one (ru_maxrss survives exec, so a child forked from a large parent would report the
    parent's size), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def memory_child(reps: int, seed: int) -> None:
    import tracemalloc

    df = simulated(seed=seed)
    ours(df, 999, seed)  # imports and first-call costs outside the measurement
    rss_before = peak_rss()
    t0 = time.perf_counter()
    ours(df, reps, seed)
    seconds = time.perf_counter() - t0
    rss = peak_rss()
    tracemalloc.start()  # after the RSS reading: tracemalloc's own records cost memory
    ours(df, reps, seed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {"reps": reps, "seconds": seconds, "peak": peak, "rss": rss, "rss_before": rss_before}
    print(json.dumps(out))


def memory(reps_list: list[int], seed: int) -> list[dict]:
    out = []
    for reps in reps_list:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(reps), "--seed", str(seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=9999, help="bootstrap draws B (default 9999)")
    ap.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    ap.add_argument("--big-reps", type=int, default=99_999, help="B of the memory run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.seed)
        return 0

    versions = available()
    for name, v in versions.items():
        if v is None:
            print(f"{name} is not available: skipped (install it with {INSTALL})")
    df = simulated(seed=args.seed)
    load = os.getloadavg()[0]
    res = compare(df, args.reps, args.repeat, args.seed, versions)
    mine = res["nqp_resilience"]
    t_ours, p_ours, q_ours = mine["result"]
    print(
        f"WCR wild cluster bootstrap, Rademacher, B = {args.reps:,}, G = {N_CITIES}, "
        f"N = {len(df):,}, city + year FE, x + {N_CONTROLS} controls; "
        f"median of {args.repeat} rounds (order rotated)"
    )
    print(
        f"{os.cpu_count()} CPUs; 1-minute load average before the timings {load:.2f} (well "
        "above 0: other work shared the machine, and the times are not comparable)"
    )
    print()
    print(
        "| implementation | version | median s | best s | ours/theirs | speed-up | t·√q | boot. p |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, r in res.items():
        t, p, q = r["result"]
        ratio = mine["seconds"] / r["seconds"]
        ver = versions.get(name) or "this project"
        print(
            f"| {name} | {ver} | {r['seconds']:.3f} | {r['best']:.3f} | {ratio:.3f} | "
            f"{1 / ratio:.1f}× | {t * math.sqrt(q):+.6f} | {p:.4f} |"
        )
    print()
    print(
        f"t·√q: the t statistic without each package's CR1 small-sample factor q (ours "
        f"q = {q_ours:.5f}, reghdfe's K; wildboottest and pyfixest count every dummy)."
    )
    others = {k: v for k, v in res.items() if k != "nqp_resilience"}
    for name, r in others.items():
        t, p, q = r["result"]
        dt = abs(t * math.sqrt(q) - t_ours * math.sqrt(q_ours))
        dp, se = mc_agreement(p_ours, p, args.reps)
        verdict = "agree" if dp <= 3 * se else "DISAGREE"
        print(
            f"{name}: |Δ(t·√q)| = {dt:.2e}; |Δp| = {dp:.4f}, MC SE of the difference "
            f"{se:.4f} ({dp / se:.2f} SE): {verdict} within Monte Carlo error"
        )
    if others:
        fastest = min(others, key=lambda k: others[k]["seconds"])
        speedup = others[fastest]["seconds"] / mine["seconds"]
        met = "met" if speedup >= TARGET else "NOT met"
        print(
            f"target: ours ≥ {TARGET:.0f}× faster than the faster of the two ({fastest}): "
            f"{speedup:.1f}× — {met}"
        )
    print()
    print("Exact check on 12 cities (2^12 = 4,096 draws enumerated by all; Δ·4096 = draws that")
    print("count in ours and not in theirs, at most the 2 ties ±1):")
    print()
    print("| implementation | t·√q | boot. p | Δ·4096 | exact |")
    print("|---|---:|---:|---:|---|")
    for line in enumeration_check(versions, args.seed):
        print(line)
    if not args.skip_memory:
        print()
        print("Memory of ours, each B in a fresh process after a warm-up call: the peak traced")
        print("during one call (tracemalloc), the process's peak RSS and its growth during the")
        print("call, and for scale the dense G × B weight matrix that the block-wise draws avoid:")
        print()
        print(
            "| B | seconds | traced peak MiB | peak RSS MiB | RSS growth MiB | G × B float64 MiB |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for m in memory([args.reps, args.big_reps], args.seed):
            print(
                f"| {m['reps']:,} | {m['seconds']:.3f} | {m['peak'] / 2**20:.1f} | "
                f"{m['rss'] / 2**20:.0f} | {(m['rss'] - m['rss_before']) / 2**20:.1f} | "
                f"{N_CITIES * m['reps'] * 8 / 2**20:.0f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
