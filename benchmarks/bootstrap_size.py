"""Size of the wild cluster bootstrap with 12 unequal clusters: a Monte Carlo (not a test).

Design (fixed before any run; nothing here is tuned to the results)
------------------------------------------------------------------
- Cluster sizes of MacKinnon and Webb (2017, "Wild bootstrap inference for wildly different
  cluster sizes", Journal of Applied Econometrics 32(2)): G = 12 clusters, N = 360 observations
  (30 per cluster on average), N_g = ⌊N·exp(γg/G) / Σ_j exp(γj/G)⌋ for g = 1..G−1 and N_G the
  rest, γ = 2: sizes 10, 12, 14, 16, 19, 23, 27, 32, 38, 45, 54, 70.
- Data of the heteroskedastic design of Cameron, Gelbach and Miller (2008, "Bootstrap-based
  improvements for inference with clustered errors", Review of Economics and Statistics 90(3)):
  y_ig = β0 + β1·x_ig + u_ig with x_ig = z_g + z_ig, u_ig = ε_g + ε_ig, z_g, z_ig, ε_g ~ N(0, 1)
  and ε_ig ~ N(0, 9·x_ig²); β0 = 1 and β1 = 0, and H0: β1 = 0 is true. The regressor and the
  error are both correlated within clusters and the error variance grows with x², the case in
  which CR1 t tests over-reject with few clusters.
- Model: OLS of y on a constant and x, CR1 clustered by g. ``wild_cluster_bootstrap`` is called
  without fixed effects (``entity=None, time=None``) and the constant as a control (a column of
  ones); a single-level fixed effect in its place gives the same numbers.
- Tests at 5 %: CR1 (t with G − 1 = 11 df, the ``p`` of the result); WCR with Rademacher weights
  and reps = 9,999, so that all 2^12 = 4,096 weight vectors are enumerated (deterministic given
  the data); WCR with Webb's six-point weights, 9,999 random draws (6^12 > reps).
- 400 replications per master seed; replication r of master seed s draws its data from
  ``numpy.random.default_rng([s, r])`` and uses bootstrap seed r. Monte Carlo standard errors
  √(p(1 − p)/R).

Usage: ``.venv/bin/python benchmarks/bootstrap_size.py [--replications 400] [--seeds 1 2 3]
[--gamma 2]``. Prints a table and the runtime; exits 0 (the acceptance line reports whether the
WCR rejection rate lies in [0.03, 0.07]).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

ALPHA = 0.05
ACCEPT = (0.03, 0.07)


def cluster_sizes(n: int, G: int, gamma: float) -> np.ndarray:
    """MacKinnon and Webb (2017): N_g = ⌊N exp(γg/G) / Σ_j exp(γj/G)⌋, the last the rest."""
    w = np.exp(gamma * np.arange(1, G + 1) / G)
    sizes = np.floor(n * w / w.sum()).astype(int)
    sizes[-1] = n - sizes[:-1].sum()
    return sizes


def simulate(sizes: np.ndarray, rng: np.random.Generator):
    """Cameron, Gelbach and Miller (2008), heteroskedastic design, with β1 = 0."""
    import pandas as pd

    G = len(sizes)
    g = np.repeat(np.arange(G), sizes)
    x = rng.normal(size=G)[g] + rng.normal(size=g.size)
    u = rng.normal(size=G)[g] + 3.0 * np.abs(x) * rng.normal(size=g.size)
    y = 1.0 + 0.0 * x + u
    return pd.DataFrame({"y": y, "x": x, "const": 1.0, "g": g})


def one_seed(master: int, replications: int, sizes: np.ndarray, reps: int) -> dict:
    from nqp_resilience import wild_cluster_bootstrap

    reject = {"cr1": 0, "wcr_rademacher": 0, "wcr_webb": 0}
    enumerated = True
    t0 = time.perf_counter()
    for r in range(replications):
        df = simulate(sizes, np.random.default_rng([master, r]))
        common = dict(
            controls=["const"], entity=None, time=None, cluster="g", reps=reps, seed=r, null=0.0
        )
        rad = wild_cluster_bootstrap(df, "y", "x", weights="rademacher", **common)
        webb = wild_cluster_bootstrap(df, "y", "x", weights="webb", **common)
        enumerated &= bool(rad.extra["enumerated"]) and rad.extra["reps"] == 2 ** len(sizes)
        reject["cr1"] += rad.p < ALPHA
        reject["wcr_rademacher"] += rad.extra["bootstrap_p"] < ALPHA
        reject["wcr_webb"] += webb.extra["bootstrap_p"] < ALPHA
    seconds = time.perf_counter() - t0
    return {
        "seed": master,
        "rates": {k: v / replications for k, v in reject.items()},
        "counts": reject,
        "seconds": seconds,
        "enumerated": enumerated,
    }


def cell(rate: float, n: int) -> str:
    return f"{rate:.4f} ({math.sqrt(rate * (1.0 - rate) / n):.4f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replications", type=int, default=400)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--clusters", type=int, default=12)
    ap.add_argument("--n", type=int, default=360, help="observations in all (default 360)")
    ap.add_argument("--gamma", type=float, default=2.0, help="inequality of the cluster sizes")
    ap.add_argument("--reps", type=int, default=9999, help="bootstrap draws (default 9999)")
    args = ap.parse_args()
    sizes = cluster_sizes(args.n, args.clusters, args.gamma)
    R = args.replications
    print(
        f"G = {args.clusters} clusters, N = {args.n}, sizes (γ = {args.gamma:g}): "
        f"{', '.join(map(str, sizes))}; {R} replications per master seed; H0 true; 5 % tests"
    )
    print()
    print("| master seed | CR1, t(G−1) | WCR Rademacher | WCR Webb | seconds |")
    print("|---:|---:|---:|---:|---:|")
    rows = [one_seed(s, R, sizes, args.reps) for s in args.seeds]
    for row in rows:
        r = row["rates"]
        print(
            f"| {row['seed']} | {cell(r['cr1'], R)} | {cell(r['wcr_rademacher'], R)} | "
            f"{cell(r['wcr_webb'], R)} | {row['seconds']:.1f} |"
        )
    total = R * len(rows)
    pooled = {k: sum(row["counts"][k] for row in rows) / total for k in rows[0]["counts"]}
    print(
        f"| pooled ({total}) | {cell(pooled['cr1'], total)} | "
        f"{cell(pooled['wcr_rademacher'], total)} | {cell(pooled['wcr_webb'], total)} | "
        f"{sum(row['seconds'] for row in rows):.1f} |"
    )
    print()
    print("Rejection rates at 5 % with Monte Carlo standard errors in parentheses.")
    rademacher = (
        f"enumerated (2^{args.clusters} = {2**args.clusters:,} draws)"
        if all(row["enumerated"] for row in rows)
        else "random draws"
    )
    print(f"WCR Rademacher: {rademacher}; WCR Webb: {args.reps:,} random draws.")
    per_call = sum(row["seconds"] for row in rows) / (2 * total)
    print(f"runtime: {per_call * 1000:.1f} ms per bootstrap call (each gives CR1 as well)")
    lo, hi = ACCEPT
    inside = [lo <= row["rates"]["wcr_rademacher"] <= hi for row in rows]
    print(
        f"acceptance: WCR Rademacher rejection rate in [{lo}, {hi}] for "
        f"{sum(inside)} of {len(rows)} master seeds"
        + ("" if all(inside) else " — NOT met for seed(s) ")
        + ", ".join(str(row["seed"]) for row, ok in zip(rows, inside, strict=True) if not ok)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
