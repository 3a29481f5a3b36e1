"""Propensity-score matching as Stata's ``psmatch2`` and ``pstest`` compute it (docs/psm.md).

Inputs are a pandas DataFrame *or* a dict of equal-length numpy arrays (the workflow passes
dicts); outputs are numpy arrays, plain dicts and the project's ``EstimationResult``. Importing
this module imports numpy only; scipy and pandas are imported inside the functions that need them.

The reference is psmatch2 4.0.12 (Leuven & Sianesi, SSC, 30 Jan 2016, the current SSC release)
and its pstest; every rule below was read off their source and is pinned by a test. Full notes,
with the Stata commands each option reproduces, are in ``docs/psm.md``.

Sample
    Rows with a missing (non-finite) treatment, covariate, outcome or given propensity score are
    dropped, as psmatch2's ``marksample``/``markout`` do. The treatment must be 0/1.
Propensity score
    Logit (``model="logit"``, psmatch2 option ``logit``) or probit (``model="probit"``,
    psmatch2's own default) of the treatment on the covariates and a constant, by maximum
    likelihood (Newton–Raphson to full convergence), or a user-supplied score (``pscore=``,
    psmatch2's ``pscore()`` option).
Common support (``common_support=True``, psmatch2 option ``common``)
    Treated units whose score lies outside [min, max] of the controls' scores are off support
    (a score equal to the bound stays on). With ``ate=True`` controls outside the treated range
    are off support too.
Nearest neighbour (``method="nearest"``)
    One neighbour with replacement. Controls and treated are each sorted by (score, row order),
    and psmatch2's forward walk is replayed: for the next treated unit the scan starts at the
    previous match, moves to higher scores while the distance ``|p_i − p_j|`` does not increase,
    and keeps the *first* control at the smallest distance; once a match is the last control the
    scan turns backwards (and then keeps that last control). With ``ties=True`` every control at
    exactly that distance is matched and they share weight 1 equally. A caliper is strict:
    ``|p_i − p_j| < caliper``, otherwise the treated unit goes off support.
Radius (``method="radius"``, default caliper 0.01)
    Uniform kernel with bandwidth = caliper: every control with ``|p_j − p_i| <= caliper`` gets
    weight 1/(their number); a treated unit with none goes off support.
Kernel (``method="kernel"``, Epanechnikov, ``bandwidth=0.06``)
    ``K_ij = 1 − ((p_j − p_i)/h)²`` for ``|p_j − p_i| <= h``, normalised to sum to 1 within each
    treated unit; a treated unit with no control within h goes off support.
ATT and its standard error (psmatch2's printed "S.E.")
    ``ATT = mean_T(y_i) − mean_T(Σ_j w_ij y_j)`` over treated on support, and
    ``SE = sqrt(Var(y | T) / N1 + Var(y | C) · Σ_j W_j² / N1²)`` with ``W_j = Σ_i w_ij`` the
    control's accumulated weight, ``Var(y | T)`` the (n − 1) variance over the N1 treated on
    support and ``Var(y | C)`` the unweighted (n − 1) variance over the controls with ``W_j > 0``.
    The score is treated as known (psmatch2 prints "S.E. does not take into account that the
    propensity score is estimated").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from nqp_resilience.errors import MatchingError, UnknownVariableError
from nqp_resilience.estimation import large
from nqp_resilience.estimation.core import check_option
from nqp_resilience.estimation.results import EstimationResult, MatchingResults

#: Matching estimators (psmatch2's default, ``radius``, ``kernel``).
Method = Literal["nearest", "radius", "kernel"]
#: Kernels of kernel matching (psmatch2 ``kerneltype()``).
Kernel = Literal["epan", "uniform", "normal", "biweight", "tricube"]
#: Propensity-score models.
Model = Literal["logit", "probit"]
METHODS: tuple[str, ...] = get_args(Method)
KERNELS: tuple[str, ...] = get_args(Kernel)
MODELS: tuple[str, ...] = get_args(Model)
TREATMENT_RULES = ("above_yearly_median", "above_median")
DEFAULT_RADIUS_CALIPER = 0.01
DEFAULT_BANDWIDTH = 0.06
_Z975 = 1.959963984540054


# --------------------------------------------------------------------------------------------
# Binary-choice models (propensity score; pstest's probits)
# --------------------------------------------------------------------------------------------


@dataclass
class BinaryFit:
    """Maximum-likelihood fit of a logit or probit.

    Attributes
    ----------
    params : ndarray, coefficients in the order (covariates..., constant)
    xb : ndarray, linear index per observation
    pr : ndarray, fitted probability per observation
    llf, llnull : log likelihood of the model and of the constant-only model (weighted)
    n_iter : Newton iterations used
    """

    params: np.ndarray
    xb: np.ndarray
    pr: np.ndarray
    llf: float
    llnull: float
    n_iter: int

    @property
    def lr_chi2(self) -> float:
        """Likelihood-ratio χ² against the constant-only model, 2(llf − llnull)."""
        return 2.0 * (self.llf - self.llnull)

    @property
    def pseudo_r2(self) -> float:
        """McFadden's pseudo R², 1 − llf/llnull (Stata's ``e(r2_p)``)."""
        return 1.0 - self.llf / self.llnull


def _matrix_rank(a: np.ndarray) -> int:
    """``np.linalg.matrix_rank`` (singular values above σ_max·max(n, k)·eps). On the
    large-sample path the singular values are those of the k × k factor R of a = QR (Cholesky
    QR twice, :func:`~nqp_resilience.estimation.large.tall_qr`), not of the n × k matrix; a
    Cholesky breakdown (rank deficiency) falls back to the SVD of ``a``."""
    if large.is_large(a.shape[0]) and a.shape[0] > a.shape[1]:
        r = large.tall_qr(a)
        if r is not None:
            sv = np.linalg.svd(r, compute_uv=False)
            return int(np.count_nonzero(sv > sv.max() * max(a.shape) * np.finfo(float).eps))
    return int(np.linalg.matrix_rank(a))


def _full_rank(a: np.ndarray) -> bool:
    """On the large-sample path: is ``a`` (n × k) of full column rank by a margin, judged from the
    singular values of its R factor? True only when the smallest exceeds 10 times the rank
    threshold of :func:`_matrix_rank`; every subset of the columns then has full rank as well
    (its smallest singular value is at least that of ``a``, its largest at most)."""
    r = large.tall_qr(a) if a.shape[0] > a.shape[1] else None
    if r is None:
        return False
    sv = np.linalg.svd(r, compute_uv=False)
    return bool(sv.min() > 10.0 * sv.max() * max(a.shape) * np.finfo(float).eps)


def _index(X: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``X b`` summed column by column, so that identical rows get bit-identical indices.

    A BLAS matrix-vector product may accumulate different rows in different orders; identical
    covariate rows must give identical scores, or psmatch2's ties would be missed.
    """
    xb = np.zeros(X.shape[0])
    for k in range(X.shape[1]):
        xb += X[:, k] * b[k]
    return xb


def _binary_pieces(model: str, y: np.ndarray, xb: np.ndarray, loglik: bool = True):
    """Per-observation log likelihood, score factor and Hessian factor of a logit or probit
    (the logit's log likelihood is None with ``loglik=False``: Newton steps do not use it)."""
    if model == "logit":
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-xb))
        ll = y * xb - np.logaddexp(0.0, xb) if loglik else None
        return ll, y - p, p * (1.0 - p), p
    from nqp_resilience.scipy_kernels import special

    log_ndtr, ndtr = special("log_ndtr", "ndtr")

    q = 2.0 * y - 1.0
    lcdf = log_ndtr(q * xb)
    lam = q * np.exp(-0.5 * xb * xb - 0.5 * math.log(2.0 * math.pi) - lcdf)  # φ(q xb)/Φ(q xb) · q
    return lcdf, lam, lam * (lam + xb), ndtr(xb)


def fit_binary(
    y, X, model: str = "logit", weights=None, *, tol: float = 1e-11, max_iter: int = 100
) -> BinaryFit:
    """Logit or probit of ``y`` on ``X`` and a constant by Newton–Raphson maximum likelihood.

    Parameters
    ----------
    y : array (n,), 0/1
    X : array (n, k), covariates without a constant (a constant is appended last)
    model : "logit" or "probit"
    weights : array (n,) or None
        Importance weights (Stata ``[iw=]``): the log likelihood is ``Σ w_i ℓ_i``.
    tol : float
        Stop when the last Newton step changed no coefficient by more than
        ``tol · (1 + |b|)``; the step before that has quadratic convergence, so the result is the
        maximum to machine precision (Stata stops at 1e-6 on the same criterion).

    Returns
    -------
    BinaryFit

    Raises
    ------
    MatchingError
        Singular information matrix (collinear covariates) or no convergence (perfect prediction).
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    y = np.asarray(y, dtype=float)
    X = np.column_stack([np.asarray(X, dtype=float).reshape(len(y), -1), np.ones(len(y))])
    if large.is_large(len(y)):  # contiguous columns for the column-by-column index
        X = np.asfortranarray(X)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    # rank of the column-equilibrated design: covariates in large or small units are not collinear
    Xr = X if weights is None else X[w > 0]
    norms = np.linalg.norm(Xr, axis=0)
    if _matrix_rank(Xr / np.where(norms > 0, norms, 1.0)) < X.shape[1]:
        raise MatchingError(
            f"{model}: the covariates are collinear (with each other or the constant)",
            hint="drop a redundant covariate",
        )
    b = np.zeros(X.shape[1])
    for it in range(1, max_iter + 1):
        _, g, h, _ = _binary_pieces(model, y, _index(X, b), loglik=False)
        grad = X.T @ (w * g)
        info = X.T @ (X * (w * h)[:, None])
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            raise MatchingError(
                f"{model}: the covariates are collinear (singular information matrix)",
                hint="drop a redundant covariate",
            ) from None
        b = b + step
        if not np.all(np.isfinite(b)):
            break
        if np.max(np.abs(step) / (1.0 + np.abs(b))) < tol:
            xb = _index(X, b)
            ll, _, _, pr = _binary_pieces(model, y, xb)
            ybar = np.sum(w * y) / np.sum(w)
            # the constant-only model fits p = ȳ whatever the link
            llnull = (
                float(np.sum(w * (y * math.log(ybar) + (1 - y) * math.log1p(-ybar))))
                if 0.0 < ybar < 1.0
                else 0.0
            )
            return BinaryFit(b, xb, pr, float(np.sum(w * ll)), llnull, it)
    raise MatchingError(
        f"{model}: the likelihood did not converge in {max_iter} iterations: a combination of "
        "the covariates predicts treatment perfectly (separation)",
        hint="drop or coarsen the covariates that separate treated from controls",
    )


def propensity_score(df, treat: str, covariates, model: str = "logit") -> np.ndarray:
    """Fitted treatment probability from a logit (default) or probit on the covariates + constant.

    Rows with a missing treatment or covariate get NaN. Equivalent to Stata
    ``logit treat covariates`` then ``predict double ps, pr``.
    """
    t = _column(df, treat, "treatment")
    X = (
        np.column_stack([_column(df, c, "covariate") for c in covariates])
        if covariates
        else np.empty((len(t), 0))
    )
    ok = np.isfinite(t) & np.all(np.isfinite(X), axis=1)
    out = np.full(len(t), np.nan)
    out[ok] = fit_pscore(t[ok], X[ok], list(covariates or []), model)[0]
    return out


def _separation(
    t: np.ndarray, X: np.ndarray, names: list[str]
) -> tuple[np.ndarray, list[int], list[str]]:
    """Stata ``logit``'s perfect-prediction checks, covariate by covariate in order.

    For each covariate x on the observations still used:

    - if every observation with x ≠ 0 has the same outcome (and some have x = 0): note
      "x != 0 predicts failure|success perfectly; x dropped and N obs not used", drop those
      observations and x;
    - if the outcome is 1 exactly above (or below) a cut c of x, with the two groups overlapping
      only at x = c (quasi-complete separation): note "outcome = x > c predicts data perfectly
      except for x == c subsample; x dropped and N obs not used", keep only x = c and drop x;
    - if the two groups do not overlap at all (complete separation): :class:`MatchingError`
      naming x ("outcome = x > c predicts data perfectly", Stata r(2000)).

    Returns (mask of the observations used, indices of the covariates kept, notes).
    """
    used = np.ones(len(t), dtype=bool)
    kept: list[int] = []
    notes: list[str] = []
    for j, name in enumerate(names):
        x, tt = X[used, j], t[used]
        rows = np.flatnonzero(used)
        nz = x != 0
        if nz.any() and (~nz).any() and np.ptp(tt[nz]) == 0:
            what = "success" if tt[nz][0] == 1 else "failure"
            notes.append(
                f"{name} != 0 predicts {what} perfectly; "
                f"{name} dropped and {int(nz.sum())} obs not used"
            )
            used[rows[nz]] = False
            continue
        x1, x0 = x[tt == 1], x[tt == 0]
        if np.ptp(x) > 0 and len(x1) and len(x0):
            # (group below, group above, cut as Stata prints it for complete / quasi-complete)
            for lo, hi, op, op_q in ((x0, x1, ">", ">"), (x1, x0, "<=", "<")):
                c = lo.max()
                if lo.max() < hi.min():
                    raise MatchingError(
                        f"logit: outcome = {name} {op} {c:.6g} predicts data perfectly "
                        f"(complete separation by covariate '{name}'; Stata stops with r(2000))",
                        hint=f"drop '{name}' from the covariates or coarsen it; "
                        "the propensity score of a "
                        "perfectly predicted unit is 0 or 1, so it cannot be matched",
                        variable=name,
                    )
                if lo.max() == hi.min():
                    at = x == c
                    notes.append(
                        f"outcome = {name} {op_q} {c:.6g} predicts data perfectly "
                        f"except for {name} == "
                        f"{c:.6g} subsample; {name} dropped and {int((~at).sum())} obs not used"
                    )
                    used[rows[~at]] = False
                    break
            else:
                kept.append(j)
            continue
        kept.append(j)
    tt = t[used]
    if not (tt == 1).any() or not (tt == 0).any():
        raise MatchingError(
            "logit: after dropping the perfectly predicted observations only one treatment "
            "group is left",
            hint="drop or coarsen the covariates named in the notes: " + "; ".join(notes),
        )
    return used, kept, notes


def _independent_columns(X: np.ndarray, candidates: list[int]) -> tuple[list[int], list[int]]:
    """Stata's ``_rmcoll`` order: keep the constant, then each covariate in turn unless it is a
    linear combination of the constant and the covariates kept before it (judged on columns
    scaled to unit norm, so units do not matter). Returns (kept, omitted) column indices."""

    def unit(cols):
        norms = np.linalg.norm(cols, axis=0)
        return cols / np.where(norms > 0, norms, 1.0)

    basis = np.ones((len(X), 1)) / math.sqrt(max(len(X), 1))
    if (
        candidates
        and large.is_large(len(X))
        and _full_rank(np.column_stack([basis, unit(X[:, candidates])]))
    ):
        return list(candidates), []  # every subset of the columns has full rank as well
    kept, omitted = [], []
    for j in candidates:
        trial = np.column_stack([basis, unit(X[:, [j]])])
        if _matrix_rank(trial) > basis.shape[1]:
            basis, kept = trial, kept + [j]
        else:
            omitted.append(j)
    return kept, omitted


def fit_pscore(
    t: np.ndarray, X: np.ndarray, names: list[str], model: str = "logit", engine: str = "numpy"
) -> tuple[np.ndarray, list[str]]:
    """Propensity scores for every row, Stata-style: the perfect-prediction checks of
    :func:`_separation`, the model on the observations used, then ``predict`` for all rows
    (observations not used get the score of the model without the dropped covariates, as Stata's
    ``predict`` after ``logit`` gives them). Returns (scores, notes).

    ``engine="statsmodels"`` fits the model with statsmodels
    (:func:`nqp_resilience.estimation.engines.statsmodels_binary`) instead of :func:`fit_binary`;
    the checks before and the prediction after are the same."""
    used, kept, notes = _separation(t, X, names)
    kept, omitted = _independent_columns(X[used], kept)
    notes += [f"{names[j]} omitted because of collinearity" for j in omitted]
    if engine == "statsmodels":
        from nqp_resilience.estimation.engines import statsmodels_binary as fit_model
    elif engine == "numpy":
        fit_model = fit_binary
    else:
        raise ValueError(f"engine must be 'numpy' or 'statsmodels', got {engine!r}")
    fit = fit_model(t[used], X[np.ix_(used, kept)], model)
    if used.all():
        return fit.pr, notes
    xb = _index(np.column_stack([X[:, kept], np.ones(len(t))]), fit.params)
    pr = (
        1.0 / (1.0 + np.exp(-xb))
        if model == "logit"
        else _binary_pieces("probit", np.zeros(len(t)), xb)[3]
    )
    return pr, notes


# --------------------------------------------------------------------------------------------
# Treatment definition
# --------------------------------------------------------------------------------------------


def treatment_indicator(values, groups=None, rule: str = "above_yearly_median") -> np.ndarray:
    """1.0 if the value is strictly above the median of its group, else 0.0; NaN where missing.

    Parameters
    ----------
    values : array (n,)
    groups : array (n,) or None
        Group labels (years) for ``rule="above_yearly_median"``; ignored for ``"above_median"``
        (one pooled median).
    rule : "above_yearly_median" or "above_median"

    Notes
    -----
    The median is Stata's ``egen med = median(x), by(year)``: the middle value, or the mean of
    the two middle values when the count is even, over non-missing values. Ties at the median
    are untreated ("strictly above"), so with an odd count the median unit itself is a control
    and the treated share is at most one half. Unlike the Stata one-liner ``gen D = x > med``,
    which codes a missing ``x`` as 1 (missing is +∞ in Stata), a missing value stays missing.
    """
    if rule not in TREATMENT_RULES:
        raise ValueError(f"rule must be one of {TREATMENT_RULES}, got {rule!r}")
    x = np.asarray(values, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = np.isfinite(x)
    if rule == "above_median" or groups is None:
        if rule == "above_yearly_median":
            raise ValueError("rule 'above_yearly_median' needs the year of each row (groups)")
        if ok.any():
            out[ok] = (x[ok] > np.median(x[ok])).astype(float)
        return out
    g = np.asarray(groups)
    for level in np.unique(g[ok]):
        sel = ok & (g == level)
        out[sel] = (x[sel] > np.median(x[sel])).astype(float)
    return out


def treatment_above_yearly_median(df, var: str, year: str) -> np.ndarray:
    """``treatment_indicator(df[var], df[year], "above_yearly_median")`` (docs/psm.md#treatment)."""
    return treatment_indicator(
        _column(df, var, "treatment variable"), np.asarray(df[year]), "above_yearly_median"
    )


# --------------------------------------------------------------------------------------------
# Matching engine
# --------------------------------------------------------------------------------------------


@dataclass
class Matching:
    """Result of one psmatch2-style matching, one entry per input row.

    Attributes
    ----------
    sample : bool array, row used (psmatch2's ``touse``)
    pscore, treated, support : psmatch2's ``_pscore``, ``_treated``, ``_support`` (NaN outside
        sample)
    weight : psmatch2's ``_weight`` (NaN where psmatch2 leaves it missing)
    n1 : 0-based row number of the (first) nearest neighbour, NaN if none (``_n1``; psmatch2
        stores its own internal id instead)
    nn : number of neighbours matched, ties included (``_nn``; nearest neighbour only)
    pdif : ``|p_i − p_{n1}|`` (``_pdif``; nearest neighbour only)
    matched_outcome : ``Σ_j w_ij y_j`` per treated on support (and per control with ``ate``),
        psmatch2's ``_<outcome>``; NaN elsewhere. Without an outcome: 0 on the matched units of
        nearest-neighbour matching (psmatch2's loop leaves that), NaN for radius and kernels
    att_weight : ATT weight per row: 1 for treated on support, ``W_j`` for controls, 0 otherwise
    options : the options used (method, caliper, bandwidth, kernel, ties, common_support, ate,
        model)
    """

    sample: np.ndarray
    pscore: np.ndarray
    treated: np.ndarray
    support: np.ndarray
    weight: np.ndarray
    n1: np.ndarray
    nn: np.ndarray
    pdif: np.ndarray
    matched_outcome: np.ndarray
    att_weight: np.ndarray
    options: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


def _column(df, name, role: str = "variable") -> np.ndarray:
    """The column as floats (missing values of any dtype as NaN); an unknown name is an
    :class:`UnknownVariableError` with a did-you-mean suggestion."""
    from nqp_resilience.estimation.ols import numeric_column

    if name not in df:
        raise UnknownVariableError(name, role, list(df.keys()), source="psm")
    return numeric_column(df, name, "psm")


def _kernel_weights(dif: np.ndarray, kernel: str, h: float) -> np.ndarray:
    """Unnormalised psmatch2 kernel weights; NaN outside the support of the kernel."""
    u = dif / h
    inside = np.abs(dif) <= h
    if kernel == "epan":
        k = 1.0 - u * u
    elif kernel == "uniform":
        k = np.ones_like(u)
    elif kernel == "biweight":
        k = (1.0 - u * u) ** 2
    elif kernel == "tricube":
        k = (1.0 - np.abs(u) ** 3) ** 3
    else:  # normal: no bounded support
        return np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    return np.where(inside, k, np.nan)


_EPS = float(np.finfo(float).eps)
#: Elements per block of the exact windowed sums and of the normal kernel (memory per block is a
#: few arrays of this many doubles, whatever N).
_CHUNK = 1 << 21
#: Kernel polynomials in u = (p_j − p_i)/h on the left (u ≤ 0) and right (u ≥ 0) half of the
#: window, coefficients of u⁰, u¹, …; tricube's |u|³ is −u³ on the left and u³ on the right.
_POLY = {
    "uniform": ((1.0,), (1.0,)),
    "epan": ((1.0, 0.0, -1.0), (1.0, 0.0, -1.0)),
    "biweight": ((1.0, 0.0, -2.0, 0.0, 1.0), (1.0, 0.0, -2.0, 0.0, 1.0)),
    "tricube": (
        (1.0, 0.0, 0.0, 3.0, 0.0, 0.0, 3.0, 0.0, 0.0, 1.0),
        (1.0, 0.0, 0.0, -3.0, 0.0, 0.0, 3.0, 0.0, 0.0, -1.0),
    ),
}
#: A prefix-sum result is accepted when its rounding-error bound is below this fraction of the
#: result (of max(1, result) for the controls' weights); otherwise it is summed directly.
_REL_TOL = 2.5e-13


def _prefix(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compensated prefix sums: ``hi[j] + lo[j] = Σ_{k<j} x_k`` to about one rounding of the
    result, so that a window sum ``(hi[b] − hi[a]) + (lo[b] − lo[a])`` does not inherit the
    rounding error of the (much larger) running total. ``lo`` holds the exact rounding errors of
    the running sum (TwoSum of each step of ``np.cumsum``, which adds in order)."""
    n = len(x)
    hi = np.zeros(n + 1)
    lo = np.zeros(n + 1)
    if n == 0:
        return hi, lo
    s = np.cumsum(x)
    hi[1:] = s
    if n > 1:
        a, b, ss = s[:-1], x[1:], s[1:]
        bb = ss - a
        err = (a - (ss - bb)) + (b - bb)
        np.cumsum(err, out=lo[2:])
    return hi, lo


def _range_sum(pref: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    hi, lo = pref
    return (hi[b] - hi[a]) + (lo[b] - lo[a])


def _first_true(pred, lo: np.ndarray, hi: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """Per query q, the smallest j in [lo_q, hi_q] with ``pred(j, q)`` (monotone False → True
    on [lo_q, hi_q), taken as True at hi_q). ``guess`` is checked first; where it is not the
    answer, bisection."""
    nq = len(lo)
    q = np.arange(nq)
    g = np.clip(guess, lo, hi)
    left_ok = g == lo
    m = ~left_ok
    left_ok[m] = ~pred(g[m] - 1, q[m])
    right_ok = g == hi
    m = ~right_ok
    right_ok[m] = pred(g[m], q[m])
    out = g
    sel = np.flatnonzero(~(left_ok & right_ok))
    if sel.size:
        a, b = lo[sel].copy(), hi[sel].copy()
        act = np.flatnonzero(a < b)
        while act.size:
            mid = (a[act] + b[act]) // 2
            ok = pred(mid, sel[act])
            b[act[ok]] = mid[ok]
            a[act[~ok]] = mid[~ok] + 1
            act = act[a[act] < b[act]]
        out[sel] = a
    return out


def _positive_windows(P: np.ndarray, Q: np.ndarray, kern: str, h: float):
    """For each score Q[q], the index range [lo, hi) of the sorted scores P with a positive
    kernel weight as :func:`_kernel_weights` computes it on ``P[j] − Q[q]`` (finite: within the
    bandwidth, inclusive; positive: not at a zero of the kernel at the edge). The weight is
    monotone in the distance on each side, so the range is contiguous."""
    n = len(P)
    zeros = np.zeros(len(Q), dtype=np.int64)
    top = np.full(len(Q), n, dtype=np.int64)
    if n == 0:
        return zeros, zeros

    def positive(j, q):
        dif = P[j] - Q[q]
        with np.errstate(invalid="ignore"):
            return dif, _kernel_weights(dif, kern, h) > 0

    def left(j, q):
        dif, pos = positive(j, q)
        return (dif > 0) | pos

    def right(j, q):
        dif, pos = positive(j, q)
        return (dif > 0) & ~pos

    lo = _first_true(left, zeros, top, np.searchsorted(P, Q - h, "left"))
    hi = _first_true(right, zeros, top, np.searchsorted(P, Q + h, "right"))
    return lo, np.maximum(hi, lo)


def _windows_by_pairs(lo: np.ndarray, hi: np.ndarray):
    """The (query, index) pairs of the windows [lo_q, hi_q), in blocks of about ``_CHUNK``
    pairs (a window longer than that is one block on its own)."""
    length = hi - lo
    ends = np.cumsum(length)
    start = 0
    nq = len(lo)
    while start < nq:
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + _CHUNK, "right")))
        stop = min(stop, nq)
        ln = length[start:stop]
        total = int(ln.sum())
        if total:
            q = np.repeat(np.arange(start, stop), ln)
            offs = np.repeat(np.cumsum(ln) - ln, ln)
            j = np.arange(total) - offs + np.repeat(lo[start:stop], ln)
            yield q, j
        start = stop


def _direct_sums(P, C, Q, lo, hi, kern, h) -> np.ndarray:
    """``Σ_{j∈[lo_q, hi_q)} C[r, j] K(P[j] − Q[q])`` term by term (the kernel exactly as
    :func:`_kernel_weights`), in blocks of bounded memory."""
    out = np.zeros((C.shape[0], len(Q)))
    for q, j in _windows_by_pairs(lo, hi):
        k = _kernel_weights(P[j] - Q[q], kern, h)
        for r in range(C.shape[0]):
            out[r] += np.bincount(q, weights=k * C[r, j], minlength=len(Q))
    return out


def _bin_of(x: np.ndarray, p0: float, width: float) -> np.ndarray:
    """Bin b of each x with ``edge(b) <= x < edge(b + 1)``, ``edge(b) = p0 + b·width`` (floats)."""
    b = np.floor((x - p0) / width).astype(np.int64)
    for _ in range(4):
        down = p0 + b * width > x
        up = p0 + (b + 1) * width <= x
        if not (down.any() or up.any()):
            break
        b = b - down + up
    return b


def _window_sums(P, C, Q, lo, hi, kern, h):
    """``S[r, q] = Σ_{j∈[lo_q, hi_q)} C[r, j] K((P[j] − Q[q])/h)`` for a polynomial kernel, by
    prefix sums of the moments of the scores, and an upper bound of each sum's rounding error.

    Polynomial moments about a far-away origin cancel badly, so the scores are binned in bins of
    width h/2 and each part of a window that lies in one bin uses moments about an edge of that
    bin: the left edge for the part right of Q[q], the right edge for the part left of it. Then
    the reference point lies between Q[q] and the scores (or within h/2 of both), so every term
    of the binomial expansion of the kernel is at most the kernel's coefficient, and the error
    of a sum is a few roundings of ``Σ_j |C[r, j]|`` (``bound``: 8 roundings times Σ|κ_n|).
    The windows must be contiguous ranges of the sorted P (:func:`_positive_windows`).
    """
    kl, kr = _POLY[kern]
    nr, nq = C.shape[0], len(Q)
    out = np.zeros((nr, nq))
    mass = np.zeros((nr, nq))
    for r in range(nr):
        cs = np.concatenate([[0.0], np.cumsum(np.abs(C[r]))])
        mass[r] = cs[hi] - cs[lo]
    bound = 8.0 * float(np.sum(np.abs(kr))) * _EPS * mass
    if nq == 0 or len(P) == 0:
        return out, bound, np.zeros(nq, dtype=bool)
    if len(kr) == 1:  # uniform: K = 1 on the window
        for r in range(nr):
            out[r] = _range_sum(_prefix(C[r]), lo, hi)
        return out, bound, np.zeros(nq, dtype=bool)
    width = 0.5 * h
    p0 = float(min(P[0], Q.min()))
    scale = max(abs(p0), float(np.max(np.abs(P))), float(np.max(np.abs(Q))))
    if not width > 1e3 * _EPS * scale:  # bins below the resolution of the scores
        return out, bound, np.ones(nq, dtype=bool)

    def edge(b):
        return p0 + b * width

    bj, bq = _bin_of(P, p0, width), _bin_of(Q, p0, width)
    s_left = (P - edge(bj)) / h  # in [0, 1/2]
    s_right = (P - edge(bj + 1)) / h  # in [-1/2, 0]
    mid = np.clip(np.searchsorted(P, Q, "left"), lo, hi)
    pieces = []  # (queries, start, stop, t, coefficients, side)
    covered = np.zeros(nq, dtype=np.int64)
    for k in range(4):
        for side in ("right", "left"):
            b = bq + k if side == "right" else bq - k
            first = np.searchsorted(P, edge(b), "left")
            last = np.searchsorted(P, edge(b + 1), "left")
            if side == "right":
                a, z, ref, coef = np.maximum(mid, first), np.minimum(hi, last), edge(b), kr
            else:
                a, z, ref, coef = np.maximum(lo, first), np.minimum(mid, last), edge(b + 1), kl
            sel = np.flatnonzero(z > a)
            if sel.size:
                covered[sel] += z[sel] - a[sel]
                t = (Q[sel] - ref[sel]) / h
                pieces.append((sel, a[sel], z[sel], t, coef, side))
    bad = covered != hi - lo
    d = len(kr) - 1
    pw_left = np.ones_like(s_left)
    pw_right = np.ones_like(s_right)
    for a_ in range(d + 1):
        if a_:
            pw_left *= s_left
            pw_right *= s_right
        prefs = {}
        for r in range(nr):
            prefs[r, "left"] = _prefix(C[r] * pw_right)  # left parts use right-edge moments
            prefs[r, "right"] = _prefix(C[r] * pw_left)
        for sel, a, z, t, coef, side in pieces:
            # g_a(t) = Σ_{n≥a} κ_n C(n, a) (−t)^(n−a), by Horner in −t
            terms = [coef[n] * math.comb(n, a_) for n in range(a_, d + 1)]
            if not any(terms):
                continue
            g = np.full(len(sel), terms[-1])
            for c in terms[-2::-1]:
                g = g * (-t) + c
            for r in range(nr):
                out[r, sel] += g * _range_sum(prefs[r, side], a, z)
    return out, bound, bad


def _kernel_pass(ps, ys, frm, pool, kern, h, sup, wt, mout) -> None:
    """One direction of radius / bounded-kernel matching (the loop of :func:`match` as psmatch2
    runs it), in O(N log N): each unit of ``frm`` (positions, row order) is matched to the
    controls (or treated) in ``pool``; updates ``sup`` (off support when no pool unit has a
    positive weight), ``wt`` (pool units: Σ_i K_ij / Σ_j K_ij) and ``mout`` in place."""
    if len(frm) == 0:
        return
    if len(pool) == 0:
        sup[frm] = False
        return
    po = pool[np.argsort(ps[pool], kind="stable")]
    P = ps[po]
    lo, hi = _positive_windows(P, ps[frm], kern, h)
    on = hi > lo
    sup[frm[~on]] = False
    f, lo, hi = frm[on], lo[on], hi[on]
    if len(f) == 0:
        return
    Q = ps[f]
    C = np.ones((1, len(P))) if ys is None else np.vstack([np.ones(len(P)), ys[po]])
    sums, bound, bad = _window_sums(P, C, Q, lo, hi, kern, h)
    if kern == "uniform":
        sums[0] = hi - lo  # the number of controls within the radius, exactly
    redo = bad | ~(bound[0] <= _REL_TOL * sums[0])
    if redo.any():
        sums[:, redo] = _direct_sums(P, C, Q[redo], lo[redo], hi[redo], kern, h)
    total = sums[0]
    if ys is not None:
        mout[f] = sums[1] / total
    # the pool's accumulated weights: Σ over the matched units i whose window holds j of
    # K_ij / total_i, i.e. the same windowed sum the other way round (K is symmetric)
    order = np.argsort(Q, kind="stable")
    F = Q[order]
    inv = (1.0 / total)[order]
    direct = redo[order]
    A = np.where(direct, 0.0, inv)[None, :]
    lo2, hi2 = _positive_windows(F, P, kern, h)
    w, bound2, bad2 = _window_sums(F, A, P, lo2, hi2, kern, h)
    # a weight within its error bound of 0 (a pool unit seen only at the very edge of windows)
    # is summed directly too: it must come out positive, not 0, as in psmatch2
    found = hi2 > lo2
    redo2 = bad2 | ~(bound2[0] <= _REL_TOL * np.maximum(1.0, w[0])) | (found & (w[0] <= bound2[0]))
    if redo2.any():
        w[:, redo2] = _direct_sums(F, A, P[redo2], lo2[redo2], hi2[redo2], kern, h)
    w = w[0]
    if direct.any():  # units summed directly above are spread directly too
        dl, dh, dq = lo[redo], hi[redo], Q[redo]
        dinv = 1.0 / total[redo]
        for q, j in _windows_by_pairs(dl, dh):
            k = _kernel_weights(P[j] - dq[q], kern, h)
            w += np.bincount(j, weights=k * dinv[q], minlength=len(P))
    w[~found] = 0.0  # found by no unit: exactly 0 (psmatch2 leaves _weight missing)
    wt[po] += w


def _normal_pass(ps, ys, frm, pool, h, sup, wt, mout) -> None:
    """One direction of normal-kernel matching. The normal kernel has unbounded support, so
    every pool unit gets a weight from every unit: this stays quadratic in time (exact, blocks
    of at most ``_CHUNK`` pairs at a time, memory linear in N)."""
    if len(frm) == 0:
        return
    if len(pool) == 0:
        sup[frm] = False
        return
    P = ps[pool]
    yp = ys[pool] if ys is not None else None
    rows = max(1, _CHUNK // len(P))
    acc = np.zeros(len(P))
    for s in range(0, len(frm), rows):
        f = frm[s : s + rows]
        k = _kernel_weights(P[None, :] - ps[f][:, None], "normal", h)
        total = k.sum(axis=1)
        off = total == 0
        sup[f[off]] = False
        ok = ~off
        w = k[ok] / total[ok, None]
        acc += w.sum(axis=0)
        if yp is not None:
            mout[f[ok]] = (w @ yp) / w.sum(axis=1)
    wt[pool] += acc


def _nn_ranges(pf: np.ndarray, pt: np.ndarray, caliper: float, ties: bool):
    """psmatch2's ``match_pscore`` (one neighbour, with replacement) by binary search.

    ``pf`` and ``pt`` are sorted ascending. Returns, per unit of ``pf``, the matched positions
    of ``pt`` as a range [start, stop) (empty when the caliper is not met) and the first match.

    The walk keeps a current match that only moves right while it scans forward: for the next
    unit it stops at the first increase of the distance d(j) = |p − pt[j]| (V-shaped in j) and
    keeps the first index of the smallest distance at or after the previous match, so the match
    is the running maximum of each unit's own first nearest index. Once the match is the last
    control the scan turns backwards and never moves again (it starts at the last control), so
    every later unit is matched to the last control, and with ties to every control at distance
    ≤ that (a range ending at the last control). Forward ties are the range of equal distance
    after the match.
    """
    nf, J = len(pf), len(pt)
    empty = np.zeros(nf, dtype=np.int64)
    if J == 0:
        return empty, empty, empty
    last = J - 1
    zero = np.zeros(nf, dtype=np.int64)
    r = np.searchsorted(pt, pf, "left")  # first control with a score >= p
    has_l, has_r = r > 0, r < J
    rl = np.maximum(r - 1, 0)
    d_left = np.where(has_l, np.abs(pf - pt[rl]), np.inf)
    d_right = np.where(has_r, np.abs(pf - pt[np.minimum(r, last)]), np.inf)

    def within_left(bound):
        def pred(j, q):
            return np.abs(pf[q] - pt[j]) <= bound[q]

        return pred

    # first index with the left distance (distinct scores far away can round to equal distances)
    g_left = _first_true(within_left(d_left), zero, r, np.searchsorted(pt, pt[rl], "left"))
    g = np.where(d_left <= d_right, g_left, r)
    jm = np.maximum.accumulate(g)
    best = np.abs(pf - pt[jm])
    at_last = np.flatnonzero(jm == last)
    backward = np.zeros(nf, dtype=bool)
    if at_last.size:
        backward[at_last[0] + 1 :] = True
    first = np.where(backward, last, jm)
    best = np.where(backward, np.abs(pf - pt[last]), best)
    if ties:

        def beyond(j, q):
            return np.abs(pf[q] - pt[j]) > best[q]

        lo_e = np.maximum(jm + 1, r)
        stop = _first_true(beyond, lo_e, np.full(nf, J), np.searchsorted(pt, pf + best, "right"))
        start = jm.copy()
        if backward.any():
            b = np.flatnonzero(backward)
            fb = _first_true(
                lambda j, q: within_left(best)(j, b[q]),
                zero[b],
                r[b],
                np.searchsorted(pt, pf[b] - best[b], "left"),
            )
            start[b] = fb
            stop[b] = J
    else:
        start, stop = first.copy(), first + 1
    miss = ~(best < caliper)
    start[miss] = stop[miss] = first[miss]
    return start, stop, first


def _check_options(method, caliper, bandwidth, kernel, model):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    if caliper is not None and not (caliper > 0):
        raise ValueError(f"caliper must be positive, got {caliper!r}")
    if not (bandwidth > 0):
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
    if method == "kernel" and caliper is not None:
        raise ValueError(
            "caliper has no effect with kernel matching (psmatch2 ignores it); "
            "use bandwidth, or method='radius'"
        )


def match(
    df,
    treat: str,
    covariates=None,
    method: str = "nearest",
    *,
    outcome: str | None = None,
    caliper: float | None = None,
    bandwidth: float = DEFAULT_BANDWIDTH,
    kernel: str = "epan",
    common_support: bool = True,
    ties: bool = False,
    pscore=None,
    model: str = "logit",
    ate: bool = False,
    pscore_engine: str = "numpy",
) -> Matching:
    """Match treated to controls on the propensity score as ``psmatch2`` does.

    Parameters
    ----------
    df : pandas.DataFrame or dict of arrays
    treat : name of the 0/1 treatment column
    covariates : list of column names for the propensity-score model (unused with ``pscore``)
    method : "nearest" | "radius" | "kernel"
    outcome : optional outcome column; rows where it is missing are dropped (psmatch2's
        ``markout``) and the matched outcomes are computed
    caliper : nearest: maximum ``|p_i − p_j|`` (strict); radius: the radius (default 0.01);
        kernel: not allowed
    bandwidth : kernel bandwidth h (default 0.06, psmatch2's)
    kernel : "epan" (default), "normal", "biweight", "uniform", "tricube"
    common_support : psmatch2's ``common``
    ties : nearest only; share the weight among all controls at the minimum distance
    pscore : column name or array of precomputed scores (psmatch2's ``pscore()``)
    model : "logit" (default here, the paper's choice) or "probit" (psmatch2's default)
    ate : also match controls to treated (psmatch2's ``ate``); with ``common_support`` this also
        drops controls outside the treated score range, which can change the ATT
    pscore_engine : "numpy" (default, :func:`fit_binary`) or "statsmodels" fits the score model

    Returns
    -------
    Matching
    """
    _check_options(method, caliper, bandwidth, kernel, model)
    t = _column(df, treat, "treatment")
    n = len(t)
    sample = np.isfinite(t)
    X = None
    if pscore is None:
        if not covariates:
            raise ValueError("give covariates for the propensity-score model, or pscore=")
        X = np.column_stack([_column(df, c, "covariate") for c in covariates])
        sample &= np.all(np.isfinite(X), axis=1)
    else:
        ps_given = (
            _column(df, pscore, "pscore")
            if isinstance(pscore, str)
            else np.asarray(pscore, dtype=float)
        )
        if ps_given.shape != (n,):
            raise ValueError(f"pscore has {ps_given.size} values for {n} rows")
        sample &= np.isfinite(ps_given)
    y = None
    if outcome is not None:
        y = _column(df, outcome, "outcome")
        sample &= np.isfinite(y)
    bad = sample & (t != 0) & (t != 1)
    if bad.any():
        raise MatchingError(
            f"treatment {treat!r} must be 0 or 1; row {int(np.flatnonzero(bad)[0])} "
            f"(0-based) has {float(t[bad][0]):g}"
        )
    idx = np.flatnonzero(sample)
    ts = t[idx]
    if not (ts == 1).any():
        raise MatchingError(f"no treated observations ({treat} == 1) in the estimation sample")
    if not (ts == 0).any():
        raise MatchingError(f"no control observations ({treat} == 0) in the estimation sample")
    notes: list[str] = []
    if pscore is None:
        ps, notes = fit_pscore(ts, X[idx], list(covariates), model, engine=pscore_engine)
    else:
        ps = ps_given[idx]

    sup = np.ones(len(idx), dtype=bool)
    is_t = ts == 1
    if common_support:
        lo, hi = ps[~is_t].min(), ps[~is_t].max()
        sup[is_t & ((ps < lo) | (ps > hi))] = False
        if ate:
            lo, hi = ps[is_t].min(), ps[is_t].max()
            sup[~is_t & ((ps < lo) | (ps > hi))] = False

    ys = y[idx] if y is not None else None
    wt = np.zeros(len(idx))  # accumulated weights (psmatch2 _weight before clean-up)
    wt[is_t & sup] = 0.0 if ate else 1.0
    mout = np.full(len(idx), np.nan)
    n1 = np.full(len(idx), np.nan)
    nn = np.full(len(idx), np.nan)
    pos = np.arange(len(idx))

    if method == "nearest":
        cal = math.inf if caliper is None else float(caliper)
        nn[sup] = 0.0

        def one_way(frm_mask, to_mask):
            # (score, row) order: a stable sort of the scores of rows in row order
            frm = pos[frm_mask][np.argsort(ps[frm_mask], kind="stable")]
            to = pos[to_mask][np.argsort(ps[to_mask], kind="stable")]
            start, stop, first = _nn_ranges(ps[frm], ps[to], cal, ties)
            m = stop - start
            ok = m > 0
            sup[frm[~ok]] = False
            start, stop, first, m, i = start[ok], stop[ok], first[ok], m[ok], frm[ok]
            # each matched unit adds 1/m to the controls of its range: a difference array
            J = len(to)
            share = 1.0 / m
            step = np.bincount(start, share, J + 1) - np.bincount(stop, share, J + 1)
            hi_, lo_ = _prefix(step)
            acc = (hi_[1:] + lo_[1:])[:J]
            count = np.cumsum(np.bincount(start, None, J + 1) - np.bincount(stop, None, J + 1))
            acc[count[:J] == 0] = 0.0
            wt[to] += acc
            # without an outcome psmatch2's loop leaves a matched outcome of 0
            mout[i] = 0.0 if ys is None else _range_sum(_prefix(ys[to]), start, stop) / m
            n1[i] = idx[to[first]]
            nn[i] = m

        # psmatch2 fixes both blocks of sorted rows before matching; controls that find no
        # treated in the ATU pass cannot be within the caliper of any treated unit either.
        t_pool, c_pool = is_t & sup, ~is_t & sup
        if ate:
            one_way(c_pool, t_pool)
        one_way(t_pool, c_pool)
    else:
        h = float(bandwidth)
        if method == "radius":
            kern, h = "uniform", DEFAULT_RADIUS_CALIPER if caliper is None else float(caliper)
        else:
            kern = kernel
        # psmatch2 visits controls (ate) then treated, each in row order; a control that found
        # no treated is off support, hence out of the pool, before the treated are matched.
        passes = [(~is_t, is_t)] if ate else []
        passes.append((is_t, ~is_t))
        for frm_mask, to_mask in passes:
            frm, pool = pos[frm_mask & sup], pos[to_mask & sup]
            if kern == "normal":
                _normal_pass(ps, ys, frm, pool, h, sup, wt, mout)
            else:
                _kernel_pass(ps, ys, frm, pool, kern, h, sup, wt, mout)

    # psmatch2: "replace _weight = . if _weight==0 | _support==0"
    weight_clean = np.where((wt == 0) | ~sup, np.nan, wt)
    # treated: 1 on support (with ate, wt holds their ATU weights instead); controls: ATT weights
    att_w = np.where(is_t, sup.astype(float), np.where(sup, wt, 0.0))
    mout[~sup] = np.nan

    def full(v, fill=np.nan):
        out = np.full(n, fill, dtype=float)
        out[idx] = v
        return out

    pdif = np.full(len(idx), np.nan)
    if method == "nearest":
        has = np.isfinite(n1) & sup
        row_of = np.full(n, -1)
        row_of[idx] = pos
        pdif[has] = np.abs(ps[has] - ps[row_of[n1[has].astype(int)]])
    options = {
        "method": method,
        "caliper": (DEFAULT_RADIUS_CALIPER if method == "radius" and caliper is None else caliper),
        "bandwidth": bandwidth if method == "kernel" else None,
        "kernel": kernel if method == "kernel" else ("uniform" if method == "radius" else None),
        "ties": ties if method == "nearest" else None,
        "common_support": common_support,
        "ate": ate,
        "model": None if pscore is not None else model,
    }
    return Matching(
        sample=sample,
        pscore=full(ps),
        treated=full(ts),
        support=full(sup.astype(float)),
        weight=full(weight_clean),
        n1=full(n1),
        nn=full(nn),
        pdif=full(pdif),
        matched_outcome=full(mout),
        att_weight=full(att_w, 0.0),
        options=options,
        notes=notes,
    )


def psmatch2_variables(df, treat: str, covariates=None, method: str = "nearest", **options):
    """The variables psmatch2 adds to the data, as a pandas DataFrame aligned with ``df``.

    Columns ``_pscore, _treated, _support, _weight, _n1, _nn, _pdif`` (missing = NaN, as in
    Stata); ``_n1`` is the 0-based row number of the first nearest neighbour (psmatch2 stores an
    internal id). Keyword options as in :func:`match`.
    """
    import pandas as pd

    m = match(df, treat, covariates, method, **options)
    index = getattr(df, "index", None)
    return pd.DataFrame(
        {
            "_pscore": m.pscore,
            "_treated": m.treated,
            "_support": m.support,
            "_weight": m.weight,
            "_n1": m.n1,
            "_nn": m.nn,
            "_pdif": m.pdif,
        },
        index=index,
    )


def matched_sample_weights(
    df, treat: str, covariates=None, method: str = "nearest", **options
) -> np.ndarray:
    """Weights for the regression on the matched sample (the paper's Table 4 PSM columns).

    1 for treated on support, the accumulated matching weight ``W_j`` for controls, 0 for
    everything else (controls never matched, units off support, rows outside the sample). In
    Stata these zero rows have a missing ``_weight`` and ``reg … [aw=_weight]`` drops them; drop
    them here too (``fe.twfe`` drops non-positive weights). Keyword options as in :func:`match`.
    """
    return match(df, treat, covariates, method, **options).att_weight


# --------------------------------------------------------------------------------------------
# pstest
# --------------------------------------------------------------------------------------------


def _wmean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Stata ``summarize x [iw=w]``: mean Σwx/W and variance Σw(x − m)²/(W − 1), W = Σw."""
    W = float(np.sum(w))
    m = float(np.sum(w * x) / W)
    v = float(np.sum(w * (x - m) ** 2) / (W - 1.0)) if W > 1 else math.nan
    return m, v


def _ttest_regress(x1, w1, x0, w0) -> tuple[float, float, float]:
    """Stata ``regress x treated [iw=w]``: (t, p, df) of the treated coefficient.

    With importance weights Stata treats ``W = Σw`` as the number of observations: residual
    variance ``s² = Σ w e² / (W − 2)``, ``Var(b) = s² (1/W1 + 1/W0)``, df = W − 2. Unit weights
    give the pooled two-sample t test.
    """
    from nqp_resilience.scipy_kernels import special

    [stdtr] = special("stdtr")

    W1, W0 = float(np.sum(w1)), float(np.sum(w0))
    if np.ptp(np.concatenate([x1, x0])) == 0:  # constant: Stata reports no t
        return math.nan, math.nan, W1 + W0 - 2.0
    m1, m0 = np.sum(w1 * x1) / W1, np.sum(w0 * x0) / W0
    ssr = np.sum(w1 * (x1 - m1) ** 2) + np.sum(w0 * (x0 - m0) ** 2)
    df = W1 + W0 - 2.0
    se = math.sqrt(ssr / df * (1.0 / W1 + 1.0 / W0)) if df > 0 else math.nan
    t = (m1 - m0) / se if se > 0 else math.nan
    p = float(2.0 * stdtr(df, -abs(t))) if math.isfinite(t) else math.nan
    return float(t), p, df


def pstest(df, covariates, matching: Matching, *, overall: bool = True) -> tuple[list, dict]:
    """Covariate balance before and after matching, as ``pstest covariates, both``.

    Parameters
    ----------
    df : DataFrame or dict of arrays holding the covariates (same rows as the matching)
    covariates : list of column names
    matching : Matching, from :func:`match`
    overall : also fit pstest's probits (pseudo R², LR χ², Rubin's B and R)

    Returns
    -------
    rows : list of dict, one per covariate, with keys
        ``variable, mean_treated_unmatched, mean_control_unmatched, bias_unmatched,
        t_unmatched, p_unmatched, var_ratio_unmatched, mean_treated_matched,
        mean_control_matched, bias_matched, bias_reduction, t_matched, p_matched,
        var_ratio_matched``
    summary : dict with ``mean_bias_*``, ``median_bias_*``, ``pct_var_outside_*`` and, with
        ``overall``, ``pseudo_r2_*``, ``lr_chi2_*``, ``p_chi2_*``, ``B_*``, ``R_*`` for
        ``* = unmatched | matched``

    Notes
    -----
    Unmatched (U) statistics use all treated and all controls of the matching sample, off
    support included. Matched (M) statistics use the treated on support (weight 1) and the
    controls with a positive matching weight ``W_j`` as importance weights. The standardised
    % bias is ``100 (x̄_T − x̄_C) / sqrt((s²_T + s²_C)/2)`` in *both* rows with the **unmatched**
    variances ``s²_T, s²_C`` of the U row (so that U and M are on one scale);
    % reduction = ``−100 (|bias_M| − |bias_U|)/|bias_U|``. t tests are Stata's
    ``regress x treated`` (U) and ``regress x treated [iw=w]`` (M, see :func:`_ttest_regress`).
    Variance ratios ``V(T)/V(C)`` (iweighted variances in M) are reported for non-binary
    covariates only; they are flagged outside ``[F_0.025, F_0.975](n1 − 1, n1 − 1)`` with n1 the
    number of treated (all in U, on support in M).
    """
    from nqp_resilience.scipy_kernels import special

    chdtrc, fdtri = special("chdtrc", "fdtri")

    s = matching.sample
    tr = matching.treated[s]
    sup = matching.support[s] == 1
    mw = np.where(tr == 1, sup.astype(float), matching.weight[s])  # pstest's mweight
    u1, u0 = tr == 1, tr == 0
    m1 = u1 & sup & np.isfinite(mw)
    m0 = u0 & sup & np.isfinite(mw)
    n1u, n1m = int(u1.sum()), int(m1.sum())
    bounds = {
        "unmatched": (fdtri(n1u - 1, n1u - 1, 0.025), fdtri(n1u - 1, n1u - 1, 0.975)),
        "matched": (fdtri(n1m - 1, n1m - 1, 0.025), fdtri(n1m - 1, n1m - 1, 0.975)),
    }
    rows = []
    outside = {"unmatched": 0, "matched": 0}
    n_cont = 0
    for c in covariates:
        x = _column(df, c)[s]
        one1, one0 = np.ones(u1.sum()), np.ones(u0.sum())
        mt_u, vt_u = _wmean_var(x[u1], one1)
        mc_u, vc_u = _wmean_var(x[u0], one0)
        mt_m, vt_m = _wmean_var(x[m1], mw[m1])
        mc_m, vc_m = _wmean_var(x[m0], mw[m0])
        sd = math.sqrt((vt_u + vc_u) / 2.0)
        bias_u = 100.0 * (mt_u - mc_u) / sd if sd > 0 else math.nan
        bias_m = 100.0 * (mt_m - mc_m) / sd if sd > 0 else math.nan
        red = -100.0 * (abs(bias_m) - abs(bias_u)) / abs(bias_u) if bias_u != 0 else math.nan
        t_u, p_u, _ = _ttest_regress(x[u1], one1, x[u0], one0)
        t_m, p_m, _ = _ttest_regress(x[m1], mw[m1], x[m0], mw[m0])
        binary = bool(np.all((x == 0) | (x == 1)))
        vr_u = vr_m = None
        if not binary:
            n_cont += 1
            vr_u = vt_u / vc_u if vc_u > 0 else math.nan
            vr_m = vt_m / vc_m if vc_m > 0 else math.nan
            for key, vr in (("unmatched", vr_u), ("matched", vr_m)):
                lo, hi = bounds[key]
                outside[key] += int(vr < lo or vr > hi)
        rows.append(
            {
                "variable": c,
                "mean_treated_unmatched": mt_u,
                "mean_control_unmatched": mc_u,
                "bias_unmatched": bias_u,
                "t_unmatched": t_u,
                "p_unmatched": p_u,
                "var_ratio_unmatched": vr_u,
                "mean_treated_matched": mt_m,
                "mean_control_matched": mc_m,
                "bias_matched": bias_m,
                "bias_reduction": red,
                "t_matched": t_m,
                "p_matched": p_m,
                "var_ratio_matched": vr_m,
            }
        )
    summary = {}
    for key in ("unmatched", "matched"):
        b = np.abs([r[f"bias_{key}"] for r in rows])
        summary[f"mean_bias_{key}"] = float(np.mean(b))
        summary[f"median_bias_{key}"] = float(np.median(b))
        summary[f"pct_var_outside_{key}"] = 100.0 * outside[key] / n_cont if n_cont else None
        summary[f"var_ratio_bounds_{key}"] = [float(v) for v in bounds[key]]
    if overall:
        X = np.column_stack([_column(df, c)[s] for c in covariates])
        k = X.shape[1]
        for key, sel, w in (("unmatched", u1 | u0, None), ("matched", m1 | m0, mw)):
            ww = None if w is None else w[sel]
            try:
                fit = fit_binary(tr[sel], X[sel], "probit", ww)
            except MatchingError:  # Stata would drop a collinear or perfectly predicting covariate
                for stat in ("pseudo_r2", "lr_chi2", "p_chi2", "B", "R"):
                    summary[f"{stat}_{key}"] = None
                continue
            wt = np.ones(int(sel.sum())) if ww is None else ww
            ti = tr[sel] == 1
            mi1, vi1 = _wmean_var(fit.xb[ti], wt[ti])
            mi0, vi0 = _wmean_var(fit.xb[~ti], wt[~ti])
            summary[f"pseudo_r2_{key}"] = fit.pseudo_r2
            summary[f"lr_chi2_{key}"] = fit.lr_chi2
            summary[f"p_chi2_{key}"] = float(chdtrc(k, fit.lr_chi2))
            sd = math.sqrt((vi1 + vi0) / 2.0)
            summary[f"B_{key}"] = 100.0 * (mi1 - mi0) / sd if sd > 0 else math.nan
            summary[f"R_{key}"] = vi1 / vi0 if vi0 > 0 else math.nan
    return rows, summary


# --------------------------------------------------------------------------------------------
# The estimator (public API: docs/design.md#python-api)
# --------------------------------------------------------------------------------------------


def _effects(m: Matching, y: np.ndarray) -> dict:
    """psmatch2's output table (``_mktab``): unmatched difference, ATT, ATU, ATE and SEs."""
    s = m.sample
    tr, sup, ys, mo, w = m.treated[s], m.support[s] == 1, y[s], m.matched_outcome[s], m.weight[s]
    t_on = (tr == 1) & sup
    c_on = (tr == 0) & sup
    n1 = int(t_on.sum())
    out = {}
    yt, yc = ys[tr == 1], ys[tr == 0]
    out["mean_treated_unmatched"], out["mean_control_unmatched"] = (
        float(yt.mean()),
        float(yc.mean()),
    )
    out["unmatched_diff"] = float(yt.mean() - yc.mean())
    ssr = np.sum((yt - yt.mean()) ** 2) + np.sum((yc - yc.mean()) ** 2)
    nn_ = len(yt) + len(yc)
    out["unmatched_se"] = (
        float(math.sqrt(ssr / (nn_ - 2) * (1 / len(yt) + 1 / len(yc)))) if nn_ > 2 else math.nan
    )
    out["mean_treated"] = float(ys[t_on].mean())
    out["mean_matched_controls"] = float(mo[t_on].mean())
    att = out["mean_treated"] - out["mean_matched_controls"]
    used = (tr == 0) & np.isfinite(w)  # controls with _weight < .
    var1 = float(np.var(ys[t_on], ddof=1)) if n1 > 1 else math.nan
    var0 = float(np.var(ys[used], ddof=1)) if used.sum() > 1 else math.nan
    wtot = float(np.sum(w[used] ** 2))
    out["att"] = float(att)
    out["att_se"] = math.sqrt(var1 / n1 + var0 * wtot / n1**2) if n1 else math.nan
    out["var_treated"], out["var_matched_controls"], out["sum_weight_sq"] = var1, var0, wtot
    if m.options.get("ate"):
        n0 = int(c_on.sum())
        atu = float(mo[c_on].mean() - ys[c_on].mean())
        out["atu"] = atu
        out["ate"] = float(att * n1 / (n0 + n1) + atu * n0 / (n0 + n1))
    return out


def psm(
    df,
    treat: str,
    covariates,
    outcome: str,
    method: Method,
    caliper: float | None = None,
    bandwidth: float = DEFAULT_BANDWIDTH,
    *,
    common_support: bool = True,
    ties: bool = False,
    pscore=None,
    model: Model = "logit",
    kernel: Kernel = "epan",
    ate: bool = False,
    balance: bool = True,
    pscore_engine: str = "numpy",
) -> EstimationResult:
    """ATT by propensity-score matching, psmatch2-compatible (docs/psm.md).

    Stata equivalents (``model="logit"``, ``common_support=True``)::

        psmatch2 treat covariates, outcome(y) logit common [ties] [caliper(c)]   // nearest
        psmatch2 treat covariates, outcome(y) logit common radius caliper(0.01)  // radius
        psmatch2 treat covariates, outcome(y) logit common kernel bwidth(0.06)   // kernel
        pstest covariates, both

    Parameters
    ----------
    df : DataFrame or dict of arrays
    treat, covariates, outcome : column names
    method, caliper, bandwidth, common_support, ties, pscore, model, kernel, ate, pscore_engine :
        as in :func:`match`
    balance : compute the pstest table (``extra["balance"]``)

    Returns
    -------
    EstimationResult
        ``coef = att``, ``se = att_se`` (psmatch2's printed S.E.), ``t = att/se``, ``p`` from the
        normal distribution, ``ci`` = att ± 1.96 se, ``nobs`` = observations on support
        (psmatch2's "On support" total), ``n_clusters = r2 = r2_within = None``. ``extra``:
        ``matched_n`` (treated on support + controls with positive weight), ``n_treated``,
        ``n_controls`` (in the sample), ``n_treated_on_support``, ``n_controls_matched``,
        ``n_off_support`` (treated and controls), ``unmatched_diff``, ``unmatched_se``,
        ``mean_treated``, ``mean_matched_controls``, ``atu``/``ate`` (with ``ate``), ``options``,
        ``balance`` (list of dicts, see :func:`pstest`), ``balance_summary``, and
        ``sample_weight`` (numpy array per input row, :func:`matched_sample_weights`; not
        JSON-ready, do not serialise it). The same details, typed, in ``matching``
        (:class:`~nqp_resilience.estimation.results.MatchingResults`).

    Raises
    ------
    OptionError
        ``method``, ``model`` or ``kernel`` outside its ``Literal`` values (checked first).
    """
    check_option(method, METHODS, "method", "psm")
    check_option(model, MODELS, "model", "psm")
    check_option(kernel, KERNELS, "kernel", "psm")
    m = match(
        df,
        treat,
        covariates,
        method,
        outcome=outcome,
        caliper=caliper,
        bandwidth=bandwidth,
        kernel=kernel,
        common_support=common_support,
        ties=ties,
        pscore=pscore,
        model=model,
        ate=ate,
        pscore_engine=pscore_engine,
    )
    y = _column(df, outcome, "outcome")
    if not np.any((m.treated == 1) & (m.support == 1)):
        raise MatchingError(
            f"no treated unit is on support ({method} matching"
            + (f", caliper {m.options['caliper']}" if m.options.get("caliper") else "")
            + (f", bandwidth {bandwidth}" if method == "kernel" else "")
            + ")",
            hint="widen the caliper or bandwidth",
        )
    eff = _effects(m, y)
    s = m.sample
    tr, sup, w = m.treated[s], m.support[s] == 1, m.weight[s]
    n_t_on = int(((tr == 1) & sup).sum())
    n_c_used = int(((tr == 0) & np.isfinite(w)).sum())
    att, se = eff["att"], eff["att_se"]
    t = att / se if se > 0 else math.nan
    p = math.erfc(abs(t) / math.sqrt(2.0)) if math.isfinite(t) else math.nan
    extra = {
        "matched_n": n_t_on + n_c_used,
        "n_treated": int((tr == 1).sum()),
        "n_controls": int((tr == 0).sum()),
        "n_treated_on_support": n_t_on,
        "n_controls_matched": n_c_used,
        "n_off_support": int((~sup).sum()),
        "options": m.options,
        "notes": list(m.notes),
    }
    extra.update({k: v for k, v in eff.items() if k not in ("att", "att_se")})
    if balance and covariates:
        extra["balance"], extra["balance_summary"] = pstest(df, covariates, m)
    extra["sample_weight"] = m.att_weight
    details = MatchingResults(
        method=method,
        att=att,
        att_se=se,
        matched_n=extra["matched_n"],
        n_treated=extra["n_treated"],
        n_controls=extra["n_controls"],
        n_treated_on_support=n_t_on,
        n_controls_matched=n_c_used,
        n_off_support=extra["n_off_support"],
        balance=extra.get("balance"),
        balance_summary=extra.get("balance_summary"),
        options=m.options,
    )
    return EstimationResult(
        coef=att,
        se=se,
        t=t,
        p=p,
        ci=(att - _Z975 * se, att + _Z975 * se),
        nobs=int(sup.sum()),
        n_clusters=None,
        r2=None,
        r2_within=None,
        regressor=treat,
        params={"ATT": att},
        bse={"ATT": se},
        df_resid=None,
        vcov_type="psmatch2 (propensity score treated as known)",
        extra=extra,
        att=att,
        att_se=se,
        estimator="psm",
        dependent=outcome,
        vcov_values=[[se * se]],
        vcov_names=["ATT"],
        matching=details,
    )
