"""Benchmark: propensity-score matching (psmatch2 emulation) at scale, as ratios to a reference.

A synthetic cross-section of ``--n`` units (default 1,000,000): five covariates, a logit
treatment (about 40 % treated) and an outcome. Timed, each once after a small warm-up run:

- ``psm`` nearest neighbour, radius (caliper 0.01) and kernel (Epanechnikov, bandwidth 0.06),
  with the scores given (``pscore=``) and with the logit fitted inside (``model="logit"``);
  ``balance=False`` (the pstest table is timed on its own in the last row);
- the reference: a statsmodels ``Logit`` fit of the same model plus a nearest-neighbour search
  of every treated unit among the sorted control scores with ``np.searchsorted``.

Each row prints its wall time and its ratio to the reference. Targets: nearest (logit fitted)
at most 1.5 times the reference; radius and kernel at most 10 s at N = 1,000,000.
``--old-n`` (default 40,000) also times the previous quadratic kernel loop (one unit at a time
against the whole control pool) next to the engine, on a problem of that size.

Usage: ``.venv/bin/python benchmarks/psm.py [--n 1000000] [--old-n 40000]``. Prints a table;
exits 0. Not part of the test suite (timings on shared machines are noisy).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from nqp_resilience.estimation import matching as P

COVARIATES = [f"x{k}" for k in range(5)]
TARGET_NEAREST = 1.5
TARGET_SECONDS = 10.0


def simulated(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    data = {c: rng.normal(size=n) for c in COVARIATES}
    xb = -0.4 + sum(
        b * data[c] for b, c in zip((0.5, -0.3, 0.2, 0.4, -0.1), COVARIATES, strict=True)
    )
    data["t"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-xb))).astype(float)
    data["y"] = 1.0 + 0.5 * data["t"] + data["x0"] + rng.normal(size=n)
    return data


def reference(data: dict) -> float:
    """statsmodels Logit + sorted searchsorted nearest neighbour (no ties, no caliper)."""
    import statsmodels.api as sm

    t = data["t"]
    X = sm.add_constant(np.column_stack([data[c] for c in COVARIATES]))
    ps = sm.Logit(t, X).fit(disp=0).predict(X)
    c = np.flatnonzero(t == 0)
    order = np.argsort(ps[c], kind="stable")
    pc, yc = ps[c][order], data["y"][c][order]
    pt = ps[t == 1]
    r = np.clip(np.searchsorted(pc, pt), 1, len(pc) - 1)
    match = np.where(pt - pc[r - 1] <= pc[r] - pt, r - 1, r)
    return float(np.mean(data["y"][t == 1] - yc[match]))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def old_kernel_loop(ps, t, kern, h):
    """The previous radius / kernel loop (quadratic): each treated unit against all controls."""
    treated, pool = np.flatnonzero(t == 1), np.flatnonzero(t == 0)
    wt = np.zeros(len(ps))
    for i in treated:
        k = P._kernel_weights(ps[pool] - ps[i], kern, h)
        total = np.nansum(k)
        ok = np.isfinite(k)
        if total == 0 or not ok.any():
            continue
        wt[pool[ok]] += k[ok] / total
    return wt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--old-n", type=int, default=40_000)
    args = ap.parse_args()

    data = simulated(args.n)
    fit, _ = P.fit_pscore(data["t"], np.column_stack([data[c] for c in COVARIATES]), COVARIATES)
    data["ps"] = fit
    warm = simulated(2_000, seed=1)
    reference(warm)
    for method in ("nearest", "radius", "kernel"):
        P.psm(warm, "t", COVARIATES, "y", method, balance=False)

    ref = min(timed(lambda: reference(data)) for _ in range(2))
    rows = [("reference: statsmodels Logit + searchsorted NN", ref, None)]
    runs = [
        ("nearest", {}, TARGET_NEAREST * ref),
        ("nearest", {"ties": True}, None),
        ("radius", {"caliper": 0.01}, TARGET_SECONDS),
        ("kernel", {"kernel": "epan"}, TARGET_SECONDS),
    ]
    for method, kw, target in runs:
        label = f"psm {method} {' '.join(f'{k}={v}' for k, v in kw.items())}".strip()
        sec = timed(
            lambda m=method, k=kw: P.psm(data, "t", None, "y", m, pscore="ps", balance=False, **k)
        )
        rows.append((label + ", pscore given", sec, None))
        sec = timed(lambda m=method, k=kw: P.psm(data, "t", COVARIATES, "y", m, balance=False, **k))
        rows.append((label + ", logit fitted", sec, target))
    m = P.match(data, "t", None, "kernel", outcome="y", pscore="ps")
    rows.append(
        ("pstest (balance table) after kernel", timed(lambda: P.pstest(data, COVARIATES, m)), None)
    )

    print(f"N = {args.n:,}  (treated {int(data['t'].sum()):,})")
    print(f"{'':58s} {'seconds':>9s} {'ratio':>7s}  target")
    for label, sec, target in rows:
        tgt = ""
        if target is not None:
            tgt = f"<= {target:.2f} s  {'met' if sec <= target else 'MISSED'}"
        print(f"{label:58s} {sec:9.2f} {sec / ref:7.2f}  {tgt}")

    if args.old_n:
        small = simulated(args.old_n, seed=2)
        X = np.column_stack([small[c] for c in COVARIATES])
        small["ps"] = P.fit_pscore(small["t"], X, COVARIATES)[0]
        print(f"\nN = {args.old_n:,}: previous quadratic loop against the engine (epan, h = 0.06)")
        old = timed(lambda: old_kernel_loop(small["ps"], small["t"], "epan", 0.06))
        new = timed(lambda: P.match(small, "t", None, "kernel", pscore="ps", common_support=False))
        print(f"{'previous loop':58s} {old:9.2f}")
        print(f"{'engine':58s} {new:9.2f}  ({old / new:.0f} times faster)")
        assert math.isfinite(old)


if __name__ == "__main__":
    main()
