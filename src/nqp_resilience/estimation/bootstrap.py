"""Wild cluster bootstrap of the core coefficient of the fixed-effects model of
:func:`~nqp_resilience.estimation.ols.twfe`, as Stata's ``boottest`` after ``reghdfe``.

Built on the public functions of :mod:`nqp_resilience.estimation.core` only: the sample, the
singleton rule, the within transformation (fixed effects, extra fixed effects and group trends),
the collinearity rule, G, K and the CR1 factor are those of ``twfe``, so ``coef``, ``se``,
``t``, ``p`` and ``ci`` equal ``twfe``'s.

Method (Roodman, MacKinnon, Nielsen and Webb 2019, "Fast and wild", Stata Journal 19(1))
--------------------------------------------------------------------------------------
Let M project off the fixed effects and the controls (Frisch–Waugh–Lovell), ẍ = Mx, ÿ = My,
D = ẍ'ẍ. The restricted residuals under H0: β = β0 are ë(β0) = ÿ − β0·ẍ (linear in β0; the
unrestricted ones are ë(β̂)). A bootstrap sample y* = fit + ë∘v (v_g one weight per bootstrap
cluster g) gives, with S(β0)[h, g] = Σ_{i∈h} ẍ_i [M(ë(β0)∘1_g)]_i (h: the model's clusters,
g: the bootstrap clusters), a = 1'S and c_h = Σ_{i∈h} ẍ_i²,

    β* − β0 = a'v / D,      score*_h = (S v)_h − c_h (β* − β0),
    V*(β) = q/D² Σ_h score*_h²  (q: the CR1 factor of ``twfe``).

S is linear in β0 (S = S_y − β0 S_x, computed once by demeaning ÿ∘1_g and ẍ∘1_g, or on large
samples in the closed low-rank form of :mod:`~nqp_resilience.estimation.cross_sums`), so each
draw reduces to five numbers (n0, n1, AA, AB, BB) with β* − β0 = n0 − β0 n1 and
Σ_h score*_h² = AA − 2β0 AB + β0² BB: the p-value at any β0 is O(B) and the confidence set is
found by exact root finding (:func:`scipy.optimize.brentq`) over the same draws. The M(·∘1_g)
term matters: the year effects are not nested in the clusters, so ë∘v is not orthogonal to
them; the closed form equals the regression rerun on every draw (tests/test_bootstrap.py).
The five numbers do not depend on the variant: WCU evaluates them at β0 = β̂.

Three steps, so that the draws can be split across jobs
-------------------------------------------------------
1. :func:`wild_problem` sets the problem up (the model, S_y, S_x, ...): a :class:`WildProblem`.
2. :meth:`WildProblem.stats` computes the per-draw statistics of a range of blocks of draws.
3. :func:`bootstrap_inference` turns the statistics of all B draws and the problem's scalars
   (:attr:`WildProblem.scalars`, JSON-safe) into the p-value and the confidence set.

:func:`wild_cluster_bootstrap` runs the three in one process; the workflow runs step 2 in
shard jobs and step 3 in a reduce job, with the same functions, so the result is the same bytes.

Draws
-----
Draws come in blocks of ``BLOCK`` = 1024: draw j is row j mod 1024 of the block
``numpy.random.default_rng([seed, key, j // 1024])`` (a 1024 × G matrix; key: a 64-bit hash of
``stream``, omitted when there is no stream), and the statistics are always computed one whole
block at a time, so that neither the values nor the rounding depend on how the blocks are
grouped into jobs. Rademacher weights with 2^G ≤ reps (Webb: 6^G ≤ reps) are enumerated
instead (boottest's rule): all 2^G (6^G) weight vectors, each once, in the order of draw index
j = Σ_g digit_g·base^g, and the result is deterministic (``enumerated=True``). Mammen and
normal weights are never enumerated.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from nqp_resilience.errors import EstimationError
from nqp_resilience.estimation.core import (
    SINGLETON_OPTIONS,
    Singletons,
    check_columns,
    check_option,
    cluster_sums,
    codes,
    demean,
    dof,
    id_column,
    prepare,
    sandwich,
    select_regressors,
    small_sample,
    t_dist,
    wls,
    wresid,
)
from nqp_resilience.estimation.cross_sums import cross_sums, low_rank_applies, ols_block_stats
from nqp_resilience.estimation.results import EstimationResult

__all__ = [
    "BLOCK",
    "PROJECTION_BLOCK",
    "cluster_blocks",
    "BootWeights",
    "BootVariant",
    "PType",
    "WEIGHT_OPTIONS",
    "VARIANT_OPTIONS",
    "P_TYPE_OPTIONS",
    "TIE_TOL",
    "WildProblem",
    "bootstrap_inference",
    "shard_blocks",
    "wild_cluster_bootstrap",
    "wild_problem",
]

#: Weight distributions of the bootstrap.
BootWeights = Literal["rademacher", "webb", "mammen", "normal"]
#: Restricted (null imposed) or unrestricted wild cluster bootstrap.
BootVariant = Literal["wcr", "wcu"]
#: Symmetric (|t*| ≥ |t|) or equal-tailed p-value.
PType = Literal["symmetric", "equal-tailed"]
WEIGHT_OPTIONS: tuple[str, ...] = get_args(BootWeights)
VARIANT_OPTIONS: tuple[str, ...] = get_args(BootVariant)
P_TYPE_OPTIONS: tuple[str, ...] = get_args(PType)

#: Draws per block of the random number streams (block b: ``default_rng([seed, key, b])``).
BLOCK = 1024
#: Relative tolerance of the comparisons t* ≥ t: the draw that reproduces the sample (all
#: weights 1 under WCR) ties with t exactly in exact arithmetic and counts as ≥.
TIE_TOL = 1e-10
#: Per-draw statistics of the OLS bootstrap (see the module docstring).
OLS_STATS = ("n0", "n1", "AA", "AB", "BB")

_SOURCE = "wild_cluster_bootstrap"
_WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])


def stream_key(stream: str | None) -> list[int]:
    """The key words of a named random stream: [] for None, else a 64-bit hash of the name
    (stable across processes and machines, unlike ``hash``)."""
    if stream is None:
        return []
    return [int.from_bytes(hashlib.sha256(str(stream).encode()).digest()[:8], "little")]


def _draws(
    kind: str, seed: int, start: int, stop: int, G: int, enumerate_: bool, key=()
) -> np.ndarray:
    """(G, stop − start) weights of the draws start..stop−1."""
    idx = np.arange(start, stop, dtype=np.int64)
    if enumerate_:
        base = 2 if kind == "rademacher" else 6
        digits = (idx[None, :] // (base ** np.arange(G, dtype=np.int64))[:, None]) % base
        return (2.0 * digits - 1.0) if base == 2 else _WEBB[digits]
    out = np.empty((G, stop - start))
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        rng = np.random.default_rng([seed, *key, b])
        lo, hi = max(start, b * BLOCK), min(stop, (b + 1) * BLOCK)
        if kind == "rademacher":
            signs = _rademacher_bits(rng, G)[:, lo - b * BLOCK : hi - b * BLOCK]
            target = out[:, lo - start : hi - start]
            np.multiply(signs, 2.0, out=target)
            target -= 1.0
            continue
        if kind == "webb":
            block = _WEBB[rng.integers(0, 6, size=(BLOCK, G))]
        elif kind == "mammen":
            s5 = math.sqrt(5.0)
            low = rng.random(size=(BLOCK, G)) < (s5 + 1) / (2 * s5)
            block = np.where(low, -(s5 - 1) / 2, (s5 + 1) / 2)
        else:
            block = rng.standard_normal(size=(BLOCK, G))
        out[:, lo - start : hi - start] = block[lo - b * BLOCK : hi - b * BLOCK].T
    return out


def _rademacher_bits(rng, G: int) -> np.ndarray:
    """(G, BLOCK) view of the 0/1 values of ``rng.integers(0, 2, size=(BLOCK, G))``, transposed,
    read straight from the bit generator: the same numbers three to four times faster.

    ``integers`` draws an int64 in [0, 2) from one 32-bit output u as (2·u) >> 32 (Lemire's
    method; range 2 never rejects), that is the top bit of u, and the 32-bit outputs are the
    low then the high half of each 64-bit output of the generator. A test compares this with
    ``integers`` over many seeds and sizes, so a numpy that draws otherwise is caught."""
    n = BLOCK * G
    halves = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)
    if sys.byteorder == "big":
        halves = halves.reshape(-1, 2)[:, ::-1].ravel()  # the low half first on any machine
    return (halves[:n] >> 31).astype(np.uint8).reshape(BLOCK, G).T


def _p_value(tstar: np.ndarray, t: float, p_type: str) -> float:
    """Share of the draws at least as extreme as t (ties within ``TIE_TOL`` count)."""
    tol = TIE_TOL * max(1.0, abs(t))
    if p_type == "symmetric":
        return float(np.mean(np.abs(tstar) >= abs(t) - tol))
    lo, hi = np.mean(tstar <= t + tol), np.mean(tstar >= t - tol)
    return float(min(1.0, 2.0 * min(lo, hi)))


def check_arguments(source: str, reps, seed, cluster) -> None:
    """The checks every wild bootstrap makes of its arguments (project errors with hints)."""
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 99:
        raise EstimationError(
            f"{source}: reps must be an integer of at least 99, not {reps!r}",
            hint="use reps=999 for a quick look and reps=9999 for a table",
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise EstimationError(
            f"{source}: seed must be a non-negative integer, not {seed!r}",
            hint="pass e.g. seed=12345 (the same seed gives the same draws)",
        )
    if cluster is None:
        raise EstimationError(
            f"{source}: the wild cluster bootstrap needs a cluster variable",
            hint="pass cluster='city_code' (the clusters of the CR1 standard errors)",
        )


def check_level(source: str, level) -> None:
    """The confidence level of the inverted interval: strictly between 0 and 1."""
    if not 0.0 < level < 1.0:
        raise EstimationError(
            f"{source}: level must be between 0 and 1, not {level!r}", hint="e.g. level=0.95"
        )


def bootstrap_cluster_codes(df, bcluster: str, mask, source: str):
    """Integer codes 0..Gb−1 of the bootstrap clusters on the estimation sample ``mask``, and Gb.

    A missing value in the sample, or fewer than two clusters, is an :class:`EstimationError`.
    """
    braw, ok = id_column(df, bcluster)
    braw, ok = braw[mask], ok[mask]
    if not ok.all():
        raise EstimationError(
            f"{source}: bootstrap cluster '{bcluster}' is missing in {int((~ok).sum())} "
            "observations of the estimation sample",
            hint=f"fill in '{bcluster}' or drop those rows before the call",
            variable=bcluster,
        )
    bcodes, Gb = codes(braw)
    if Gb < 2:
        raise EstimationError(
            f"{source}: the wild cluster bootstrap needs at least two bootstrap clusters; "
            f"'{bcluster}' has {Gb} in the estimation sample",
            hint="choose a bootstrap cluster with several groups (e.g. the city)",
            variable=bcluster,
        )
    return bcodes, Gb


#: The bootstrap builds M(v∘1_g), the residualised indicator columns of the bootstrap clusters,
#: at most this many values at a time (128 MB): one block at the study's scale (2,760 × 230),
#: blocks of bootstrap clusters on county panels (56,000 × 2,800 would need 1.25 GB a matrix).
PROJECTION_BLOCK = 1 << 24


def cluster_blocks(n: int, n_clusters: int, per_cluster: int = 1) -> list[tuple[int, int]]:
    """Consecutive ranges [lo, hi) of bootstrap clusters whose n × per_cluster × (hi − lo)
    projected columns fit in :data:`PROJECTION_BLOCK` values (at least one cluster a block)."""
    step = max(1, min(n_clusters, PROJECTION_BLOCK // max(1, n * per_cluster)))
    return [(lo, min(n_clusters, lo + step)) for lo in range(0, n_clusters, step)]


def draw_count(weights: str, Gb: int, reps: int) -> tuple[bool, int]:
    """(enumerated, B): boottest's rule enumerates all 2^Gb Rademacher (6^Gb Webb) weight
    vectors when there are at most ``reps`` of them; otherwise B = reps random draws."""
    n_dist = {"rademacher": 2, "webb": 6}.get(weights)
    enumerated = n_dist is not None and Gb * math.log(n_dist) <= math.log(reps) + 1e-12
    return enumerated, int(n_dist**Gb) if enumerated else int(reps)


def shard_blocks(n_blocks: int, shards: int, k: int) -> tuple[int, int]:
    """Blocks [first, stop) of shard k of ``shards`` (contiguous, sizes differing by at most
    one; a shard is empty when there are more shards than blocks)."""
    if not 0 <= k < shards:
        raise EstimationError(f"shard {k} is outside 0..{shards - 1}", hint="check the shard count")
    return k * n_blocks // shards, (k + 1) * n_blocks // shards


@dataclass
class WildProblem:
    """A wild bootstrap set up on one sample: what the shard jobs need to compute the per-draw
    statistics, and (``scalars``) what the reduce step needs besides them.

    Attributes
    ----------
    method : ``"ols"`` (WCR/WCU of :func:`wild_cluster_bootstrap`) or ``"wre"``
    stat_names : names of the per-draw statistics (rows of :meth:`stats`)
    scalars : JSON-safe numbers of the sample (estimate, CR1 scale, ...) the reduce step uses
    B, enumerated, Gb, weights, seed, stream : the draws
    result : the model's estimate (CR1), as the estimator returns it
    """

    method: str
    stat_names: tuple[str, ...]
    scalars: dict
    B: int
    enumerated: bool
    Gb: int
    weights: str
    seed: int
    stream: str | None
    result: EstimationResult
    block_stats: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    @property
    def n_blocks(self) -> int:
        return -(-self.B // BLOCK)

    def stats(self, first: int = 0, stop: int | None = None) -> np.ndarray:
        """(len(stat_names), m) statistics of the draws of blocks [first, stop), each block
        computed whole (1024 draws) so that the values do not depend on the grouping."""
        stop = self.n_blocks if stop is None else stop
        lo, hi = first * BLOCK, min(self.B, stop * BLOCK)
        out = np.empty((len(self.stat_names), max(hi - lo, 0)))
        key = stream_key(self.stream)
        for b in range(first, stop):
            v = _draws(
                self.weights, self.seed, b * BLOCK, (b + 1) * BLOCK, self.Gb, self.enumerated, key
            )
            s = self.block_stats(v)
            a, z = b * BLOCK, min(self.B, (b + 1) * BLOCK)
            out[:, a - lo : z - lo] = s[:, : z - a]
        return out

    def draw_info(self, reps: int) -> dict:
        """The description of the draws in the result's ``extra``."""
        return {
            "reps": self.B,
            "reps_requested": int(reps),
            "weights": self.weights,
            "enumerated": bool(self.enumerated),
            "seed": int(self.seed),
            "stream": self.stream,
            "bootstrap_clusters": int(self.Gb),
        }


def wild_problem(
    df,
    y: str,
    x,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str = "city_code",
    reps: int = 9999,
    seed: int = 0,
    *,
    weights: BootWeights = "rademacher",
    stream: str | None = None,
    bootstrap_cluster: str | None = None,
    singletons: Singletons = "drop",
    trends: str | None = None,
    trend_var: str | None = None,
    extra_fe: list[str] | None = None,
    source: str = _SOURCE,
) -> WildProblem:
    """Set up the WCR/WCU bootstrap of the core regressor (step 1; arguments as
    :func:`wild_cluster_bootstrap`)."""
    check_option(weights, WEIGHT_OPTIONS, "weights", source)
    check_option(singletons, SINGLETON_OPTIONS, "singletons", source)
    check_arguments(source, reps, seed, cluster)
    bcluster = bootstrap_cluster if bootstrap_cluster is not None else cluster
    xs = [x] if isinstance(x, str) else list(x)
    controls = list(controls or [])
    regressors = xs + [c for c in controls if c not in xs]
    fes = [f for f in (entity, time) if f is not None] + list(extra_fe or [])
    tvar = (trend_var or time) if trends else None
    roles = {
        y: "outcome",
        **{v: "regressor" for v in xs},
        **{c: "control" for c in controls},
        **{f: "fixed effect" for f in fes},
        cluster: "cluster",
        bcluster: "bootstrap cluster",
        trends: "trend group",
        tvar: "trend variable",
    }
    check_columns(df, roles, source)
    prep = prepare(df, [y] + regressors, fes, cluster, None, trends, tvar, singletons)
    data = prep["X"]
    n = data.shape[0]
    if n == 0:
        raise EstimationError(
            f"{source}: no complete observations for this specification",
            hint="check the sample filter and the missing values of the variables used",
        )
    bcodes, Gb = bootstrap_cluster_codes(df, bcluster, prep["mask"], source)

    # --- the model, as twfe -----------------------------------------------------------------
    w = np.ones(n)
    tilde = demean(data, prep["absorb"], None, prep["trends"])
    kept, omitted, notes = select_regressors(
        tilde[:, 1:], data[:, 1:], w, regressors, len(xs), prep, "omit", source=source
    )
    regs = [regressors[j] for j in kept]
    k = len(regs)
    if n <= k + 1:
        raise EstimationError(
            f"{source}: only {n} observations for {k} regressors",
            hint="use fewer controls or a larger sample",
        )
    yt, Xt = tilde[:, 0], tilde[:, [1 + j for j in kept]]
    G, K, clusters = dof(prep, k, n, True)
    beta, bread = wls(Xt, yt, w, regs)
    V = sandwich(Xt, yt - Xt @ beta, w, bread, clusters, G, n, K)
    se = math.sqrt(V[0, 0])
    t = beta[0] / se if se > 0 else math.nan
    p, tq = t_dist(t, G - 1)
    q = small_sample(G, n, K)

    # --- FWL: the core coefficient as a scalar regression --------------------------------------
    Z = Xt[:, 1:]
    xdd, ydd = wresid(np.column_stack([Xt[:, 0], yt]), Z, w).T
    D = float(xdd @ xdd)
    b_hat = float(xdd @ ydd) / D

    def projected_sums(v: np.ndarray) -> np.ndarray:
        """Σ_{i∈h} ẍ_i [M(v∘1_g)]_i for every cluster h and bootstrap cluster g: (G, Gb), built
        for blocks of bootstrap clusters at a time (memory O(n · block), not O(n · Gb))."""
        out = np.empty((G, Gb))
        for lo, hi in cluster_blocks(n, Gb):
            E = np.zeros((n, hi - lo))
            rows = np.flatnonzero((bcodes >= lo) & (bcodes < hi))
            E[rows, bcodes[rows] - lo] = v[rows]
            ME = wresid(demean(E, prep["absorb"], None, prep["trends"]), Z, w)
            out[:, lo:hi] = cluster_sums(xdd[:, None] * ME, clusters, G)
        return out

    low = (
        cross_sums(
            xdd, np.column_stack([ydd, xdd]), clusters, G, bcodes, Gb,
            prep["absorb"], prep["trends"], Z if Z.shape[1] else None,
        )
        if low_rank_applies(n, Gb, 1)
        else None
    )  # fmt: skip
    if low is not None:
        S_y, S_x = low  # the same (G, Gb) matrices in low-rank form (cross_sums module)
    else:
        S_y = projected_sums(ydd)  # (G, Gb)
        S_x = projected_sums(xdd)
    a_y, a_x = S_y.sum(axis=0) / D, S_x.sum(axis=0) / D
    c = np.bincount(clusters, weights=xdd * xdd, minlength=G)
    u_hat = S_y.sum(axis=1) - b_hat * S_x.sum(axis=1)  # Σ_{i∈h} ẍ ê
    se_fwl = math.sqrt(q * float(u_hat @ u_hat)) / D

    low_rank_stats = None if low is None else ols_block_stats(S_y, S_x, a_y, a_x, c)

    def block_stats(v: np.ndarray) -> np.ndarray:
        if low_rank_stats is not None:
            return low_rank_stats(v)
        n0, n1 = a_y @ v, a_x @ v
        A = S_y @ v - np.outer(c, n0)
        Bm = S_x @ v - np.outer(c, n1)
        return np.stack((n0, n1, (A * A).sum(0), (A * Bm).sum(0), (Bm * Bm).sum(0)))

    enumerated, B = draw_count(weights, Gb, reps)
    extra = {"df_k": int(K), "omitted": omitted, "bootstrap_cluster": bcluster}
    if notes:
        extra["notes"] = notes
    result = EstimationResult(
        coef=float(beta[0]),
        se=se,
        t=float(t),
        p=p,
        ci=(float(beta[0] - tq * se), float(beta[0] + tq * se)),
        nobs=int(n),
        n_clusters=int(G),
        r2=None,
        r2_within=None,
        regressor=regs[0],
        params={r: float(b) for r, b in zip(regs, beta, strict=True)},
        bse={r: float(s) for r, s in zip(regs, np.sqrt(np.diag(V)), strict=True)},
        df_resid=int(G - 1),
        vcov_type="CR1",
        extra=extra,
        estimator=source,
        dependent=y,
        fixed_effects=list(fes),
        cluster_var=cluster,
        controls=regs[len(xs) :],
        vcov_values=V,
        vcov_names=list(regs),
    )
    result.trends = trends
    return WildProblem(
        method="ols",
        stat_names=OLS_STATS,
        scalars={"b_hat": b_hat, "se": se_fwl, "D": D, "q": q, "half": se_fwl * tq},
        B=B,
        enumerated=enumerated,
        Gb=Gb,
        weights=weights,
        seed=int(seed),
        stream=stream,
        result=result,
        block_stats=block_stats,
    )


def _ols_tstar(scalars: dict, stats: np.ndarray, variant: str):
    """t*(β0) of the WCR (WCU: evaluated at β̂) bootstrap from the five numbers per draw."""
    n0, n1, AA, AB, BB = stats
    D2, q = scalars["D"] ** 2, scalars["q"]

    def at(b0: float) -> np.ndarray:
        var = q * np.maximum(AA - 2.0 * b0 * AB + b0 * b0 * BB, 0.0) / D2
        with np.errstate(divide="ignore", invalid="ignore"):
            return (n0 - b0 * n1) / np.sqrt(var)

    if variant == "wcu":
        fixed = at(scalars["b_hat"])
        return lambda b0: fixed
    return at


def bootstrap_inference(
    method: str,
    scalars: dict,
    stats: np.ndarray,
    *,
    variant: str = "wcr",
    null: float = 0.0,
    level: float = 0.95,
    p_type: str = "symmetric",
) -> dict:
    """Step 3: the bootstrap p-value at ``null`` and the confidence set at ``level`` from the
    statistics of all B draws (``stats``: (n_stats, B)) and the problem's ``scalars``.

    Returns ``{"bootstrap_p", "bootstrap_ci", "variant", "null", "level", "p_type"}`` (the
    interval's endpoints are ±inf when it is not bounded on that side).
    """
    check_option(p_type, P_TYPE_OPTIONS, "p_type", _SOURCE)
    check_level(_SOURCE, level)
    unit = float(scalars.get("unit", 1.0))  # WRE: β in the scaled units of the design
    if method == "ols":
        check_option(variant, VARIANT_OPTIONS, "variant", _SOURCE)
        tstar_at = _ols_tstar(scalars, stats, variant)
    elif method == "wre":
        from nqp_resilience.estimation.iv_bootstrap import wre_tstar

        variant = "wre"
        tstar_at = wre_tstar(scalars, stats)
    else:
        raise EstimationError(f"unknown bootstrap method {method!r}", hint="ols or wre")
    b_hat, se_hat = scalars["b_hat"], scalars["se"]

    def pval(b0: float) -> float:
        return _p_value(tstar_at(b0), (b_hat - b0) / se_hat, p_type)

    alpha = 1.0 - level
    ends = [_endpoint(pval, b_hat, scalars["half"], alpha, side) for side in (-1, 1)]
    return {
        "bootstrap_p": pval(float(null) / unit),
        "bootstrap_ci": (float(ends[0]) * unit, float(ends[1]) * unit),
        "variant": variant,
        "null": float(null),
        "level": float(level),
        "p_type": p_type,
    }


def run_problem(problem: WildProblem, reps: int, **inference) -> EstimationResult:
    """Steps 2 and 3 in one process: the problem's result with the bootstrap in ``extra``
    (``bootstrap_p`` and ``bootstrap_ci``, also as ``p`` and ``ci``)."""
    out = bootstrap_inference(problem.method, problem.scalars, problem.stats(), **inference)
    res = problem.result
    res.extra.update(problem.draw_info(reps))
    res.extra.update(out)
    res.extra["p"], res.extra["ci"] = out["bootstrap_p"], out["bootstrap_ci"]
    return res


def wild_cluster_bootstrap(
    df,
    y: str,
    x,
    controls=None,
    entity: str | None = "city_code",
    time: str | None = "year",
    cluster: str = "city_code",
    reps: int = 9999,
    seed: int = 0,
    *,
    weights: BootWeights = "rademacher",
    variant: BootVariant = "wcr",
    null: float = 0.0,
    level: float = 0.95,
    p_type: PType = "symmetric",
    bootstrap_cluster: str | None = None,
    singletons: Singletons = "drop",
    trends: str | None = None,
    trend_var: str | None = None,
    extra_fe: list[str] | None = None,
    stream: str | None = None,
) -> EstimationResult:
    """Wild cluster bootstrap test and confidence set of the core regressor (first of ``x``).

    Parameters
    ----------
    df, y, x, controls, entity, time, cluster, singletons, trends, trend_var, extra_fe
        The model, as :func:`~nqp_resilience.estimation.ols.twfe` (``cluster`` is required: the
        clusters of the CR1 variance of the t statistic; no analytic weights).
    reps : int
        Bootstrap draws B (at least 99); fewer when the weights are enumerated (2^G ≤ reps).
    seed : int
        Non-negative seed: draw j comes from ``default_rng([seed, key, j // 1024])``.
    weights : ``"rademacher"`` (default), ``"webb"`` (six-point), ``"mammen"``, ``"normal"``
    variant : ``"wcr"`` (null imposed, default) or ``"wcu"`` (unrestricted)
    null : β0 of H0: β = β0
    level : confidence level of the bootstrap confidence set
    p_type : ``"symmetric"`` (share of draws with |t*| ≥ |t|, default) or ``"equal-tailed"``
        (2·min(share t* ≤ t, share t* ≥ t), at most 1)
    bootstrap_cluster : column whose groups receive one weight each (default ``cluster``); may
        be coarser than the model's clusters (province while the fixed effects are cities)
    stream : name of an independent random stream (the workflow uses the spec id, so that the
        specs do not share draws); key = 64-bit hash of the name; None = no key

    Returns
    -------
    EstimationResult
        ``coef``, ``se`` (CR1), ``t``, ``p`` and ``ci`` (Student's t with G − 1 df) as ``twfe``;
        ``extra``: ``bootstrap_p`` (at ``null``; also ``p``), ``bootstrap_ci`` (the set of β0
        with p(β0) ≥ 1 − level, endpoints by root finding; ±inf when not bounded; also ``ci``),
        ``reps`` (draws used), ``reps_requested``, ``weights``, ``variant``, ``enumerated``,
        ``seed``, ``stream``, ``null``, ``p_type``, ``level``, ``bootstrap_cluster``,
        ``bootstrap_clusters``.

    Notes
    -----
    The p-value is the share of the B bootstrap draws whose t* is at least as extreme as the
    sample t, as boottest computes it: the original sample is *not* counted as an extra draw
    (no (1 + #)/(1 + B)). Under WCR t*(β0) = (β* − β0)/se*, under WCU t* = (β* − β̂)/se*; the
    sample statistic is t(β0) = (β̂ − β0)/se. Comparisons allow a relative tolerance
    ``TIE_TOL`` = 1e-10, so exact ties (the all-ones draw under WCR) count as at least as
    extreme. With enumeration the all-ones vector is one of the 2^G draws. Memory does not
    grow with B beyond five numbers per draw: the draws are made and reduced a block at a time.

    Raises
    ------
    OptionError
        ``weights``, ``variant``, ``p_type`` or ``singletons`` outside the allowed values.
    EstimationError
        reps < 99, a bad seed or level, fewer than two bootstrap clusters, a missing value of the
        bootstrap cluster in the estimation sample, and everything ``twfe`` raises.
    """
    check_option(variant, VARIANT_OPTIONS, "variant", _SOURCE)
    check_option(p_type, P_TYPE_OPTIONS, "p_type", _SOURCE)
    check_level(_SOURCE, level)
    problem = wild_problem(
        df,
        y,
        x,
        controls,
        entity,
        time,
        cluster,
        reps,
        seed,
        weights=weights,
        stream=stream,
        bootstrap_cluster=bootstrap_cluster,
        singletons=singletons,
        trends=trends,
        trend_var=trend_var,
        extra_fe=extra_fe,
    )
    return run_problem(problem, reps, variant=variant, null=null, level=level, p_type=p_type)


def _endpoint(pval, b_hat: float, half: float, alpha: float, side: int) -> float:
    """The confidence-set endpoint on ``side`` (−1 lower, +1 upper): the β0 where p(β0) falls
    below α, bracketed from the CR1 endpoint b̂ ± half outward (or inward) and found by
    :func:`scipy.optimize.brentq` on p(β0) − α (a step function: brentq converges to the jump,
    to ``xtol``). ±inf if p never falls below α within 2^40 half-widths."""
    from nqp_resilience.scipy_kernels import brentq

    if not pval(b_hat) >= alpha:  # the estimate itself rejected (possible with equal tails)
        return math.nan
    half = half if half > 0 and math.isfinite(half) else max(abs(b_hat), 1.0)
    inner, outer = b_hat, b_hat + side * half
    if pval(outer) >= alpha:
        for _ in range(40):
            inner, outer = outer, b_hat + side * 2.0 * abs(outer - b_hat)
            if pval(outer) < alpha:
                break
        else:
            return side * math.inf

    def f(b0: float) -> float:
        return 1.0 if pval(b0) >= alpha else -1.0

    xtol = 1e-14 * max(abs(inner), abs(outer), half)
    return float(brentq(f, inner, outer, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=500))
