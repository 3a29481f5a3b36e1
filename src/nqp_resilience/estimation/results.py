"""The result object every estimator returns, with the accessors of pyfixest's ``Feols`` and
linearmodels' results.

Attributes ``coef, se, t, p, nobs, n_clusters, r2, r2_within`` refer to the core regressor;
``ci`` is its 95 % confidence interval; ``extra`` holds estimator-specific output (first stage
and Kleibergen–Paap statistics for IV; matched N and the balance table for PSM); ``params`` and
``bse`` hold every coefficient and standard error by name. Controls an estimator omitted
(absorbed by the fixed effects or collinear) are not in ``params``; their names are in
``extra["omitted"]`` and the reasons, with any other note (PSM perfect prediction), in
``extra["notes"]``.

Accessors (by regressor name, in the order of ``params``)
---------------------------------------------------------
``params``, ``bse``, ``tvalues``, ``pvalues``
    Plain ``dict`` name → float (JSON-ready, no pandas needed).
``vcov``
    The variance matrix of the estimated coefficients as a pandas ``DataFrame`` with named rows
    and columns (pandas is imported only when it is asked for); ``vcov_values`` is the same as a
    numpy array in the order ``vcov_names``.
``conf_int(level=0.95)``
    ``DataFrame`` of the bounds β ± t_{(1+level)/2, df_resid}·se per coefficient (the normal
    quantile when ``df_resid`` is None, as for PSM).
``tidy()``, ``summary()``, ``repr``
    A tidy ``DataFrame`` (term, estimate, std_error, t, p, ci_low, ci_high), a reghdfe-like text
    table, and a one-line description.

Estimator details live in typed sub-objects: ``result.iv`` (:class:`IVResults`: first stage,
Kleibergen–Paap, Cragg–Donald, Stock–Yogo, Anderson–Rubin) and ``result.matching``
(:class:`MatchingResults`: ATT, matched N, balance). ``extra`` keeps its documented keys for
compatibility (``first_stage_coef, first_stage_se, kp_lm, kp_f, …``; ``matched_n``,
``balance``, …) and :meth:`EstimationResult.to_dict` the JSON record fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["AndersonRubin", "EstimationResult", "FirstStage", "IVResults", "MatchingResults"]


@dataclass
class FirstStage:
    """First-stage regression of one endogenous regressor on the excluded instruments and the
    controls (fixed effects absorbed), with the CR1 (or HC1) variance of the second stage's
    design.

    Attributes
    ----------
    coef, se : dict
        Instrument → coefficient and standard error (data units).
    F : float
        Wald F of the excluded instruments, W/L.
    F_p : float
        Its p-value from F(L, df).
    F_df : list of int
        [L, G − 1] when clustered, [L, N − K_fs] otherwise.
    partial_r2 : float
        Partial R² of the excluded instruments (controls and fixed effects partialled out).
    """

    coef: dict
    se: dict
    F: float
    F_p: float
    F_df: list
    partial_r2: float = math.nan


@dataclass
class AndersonRubin:
    """Anderson–Rubin test of H0: β = 0 and its inverted confidence set (ivreg2's ``arf``,
    ``archi2``).

    Attributes
    ----------
    stat, p, df : float, float, list of int
        F form of the test, its p-value and [L, df2].
    chi2, chi2_p : float
        χ²(L) form and its p-value.
    ci : list of (low, high) or None
        The confidence set as intervals (data units); None with more than one endogenous
        regressor.
    ci_kind : str
        ``"bounded"``, ``"union"``, ``"half_line"``, ``"real_line"``, ``"empty"`` or why it was not
        computed.
    ci_level : float
        Confidence level of the set.
    ci_method : str or None
        ``"analytic"``, ``"polynomial"`` or ``"grid"``.
    """

    stat: float
    p: float
    df: list
    chi2: float
    chi2_p: float
    ci: list | None
    ci_kind: str
    ci_level: float
    ci_method: str | None


@dataclass
class IVResults:
    """Weak-instrument diagnostics and first stage of a 2SLS fit (``result.iv``).

    Attributes
    ----------
    endogenous, instruments : list of str
    first_stage : dict
        Endogenous regressor → :class:`FirstStage`.
    kp_lm, kp_lm_df, kp_lm_p : float, int, float
        Kleibergen–Paap rk LM statistic (underidentification), df = L − K1 + 1, p-value (χ²).
    kp_f : float
        Kleibergen–Paap rk Wald F (ivreg2's small-sample factor).
    kp_wald_chi2 : float
        The rk Wald statistic before that factor.
    cd_f : float
        Cragg–Donald Wald F.
    canonical_correlations : list of float
        Between the endogenous regressors and the excluded instruments (partialled).
    stock_yogo : dict
        Stock–Yogo maximal-IV-size critical values of the Cragg–Donald F (``"10%"`` … ``"25%"``).
    anderson_rubin : AndersonRubin
    """

    endogenous: list
    instruments: list
    first_stage: dict
    kp_lm: float
    kp_lm_df: int
    kp_lm_p: float
    kp_f: float
    kp_wald_chi2: float
    cd_f: float
    canonical_correlations: list
    stock_yogo: dict
    anderson_rubin: AndersonRubin

    @property
    def _first(self) -> FirstStage:
        return self.first_stage[self.endogenous[0]]

    @property
    def first_stage_coef(self) -> float:
        """First-stage coefficient of the first instrument on the first endogenous regressor."""
        return self._first.coef[self.instruments[0]]

    @property
    def first_stage_se(self) -> float:
        """Its standard error."""
        return self._first.se[self.instruments[0]]

    @property
    def first_stage_F(self) -> float:
        """First-stage F of the first endogenous regressor."""
        return self._first.F

    def to_extra(self) -> dict:
        """The documented ``extra`` keys of an IV result, in their record order."""
        fs0, ar = self._first, self.anderson_rubin
        return {
            "first_stage_coef": self.first_stage_coef,
            "first_stage_se": self.first_stage_se,
            "first_stage_F": fs0.F,
            "first_stage_F_p": fs0.F_p,
            "first_stage_F_df": fs0.F_df,
            "partial_r2": fs0.partial_r2,
            "first_stage": {name: asdict(fs) for name, fs in self.first_stage.items()},
            "kp_lm": self.kp_lm,
            "kp_lm_df": self.kp_lm_df,
            "kp_lm_p": self.kp_lm_p,
            "kp_f": self.kp_f,
            "kp_wald_chi2": self.kp_wald_chi2,
            "cd_f": self.cd_f,
            "canonical_correlations": self.canonical_correlations,
            "stock_yogo": self.stock_yogo,
            "ar_stat": ar.stat,
            "ar_p": ar.p,
            "ar_df": ar.df,
            "ar_chi2": ar.chi2,
            "ar_chi2_p": ar.chi2_p,
            "ar_ci": ar.ci,
            "ar_ci_kind": ar.ci_kind,
            "ar_ci_level": ar.ci_level,
            "ar_ci_method": ar.ci_method,
            "instruments": self.instruments,
            "endogenous": self.endogenous,
        }


@dataclass
class MatchingResults:
    """Propensity-score matching details (``result.matching``; psmatch2 and pstest).

    Attributes
    ----------
    method : str
        ``"nearest"``, ``"radius"`` or ``"kernel"``.
    att, att_se : float
        Average treatment effect on the treated and psmatch2's printed S.E.
    matched_n : int
        Treated on support + controls with a positive weight.
    n_treated, n_controls : int
        In the matching sample.
    n_treated_on_support, n_controls_matched, n_off_support : int
    balance : list of dict or None
        pstest's table (one dict per covariate), None when not computed.
    balance_summary : dict or None
    options : dict
        The matching options actually used.
    """

    method: str
    att: float
    att_se: float
    matched_n: int
    n_treated: int
    n_controls: int
    n_treated_on_support: int
    n_controls_matched: int
    n_off_support: int
    balance: list | None = None
    balance_summary: dict | None = None
    options: dict = field(default_factory=dict)


class _Text(str):
    """A string shown as itself (not quoted) at the interactive prompt."""

    def __repr__(self) -> str:
        return str(self)


def _num(v, width: int = 10, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ".".rjust(width)
    return f"{v:{width}.{digits}f}"


@dataclass
class EstimationResult:
    """Estimates for one specification.

    The first fields (``coef`` … ``att_se``) are the historical constructor; the later ones have
    defaults and describe the model (``estimator``, ``dependent``, ``fixed_effects``,
    ``cluster_var``, ``controls``, ``trends``), the full variance matrix (``vcov_values`` in the
    order ``vcov_names``) and the estimator's sub-object (``iv`` or ``matching``).
    """

    coef: float
    se: float
    t: float
    p: float
    ci: tuple[float, float]
    nobs: int
    n_clusters: int | None
    r2: float | None
    r2_within: float | None
    regressor: str = ""
    params: dict = field(default_factory=dict)
    bse: dict = field(default_factory=dict)
    df_resid: int | None = None
    vcov_type: str = ""
    extra: dict = field(default_factory=dict)
    att: float | None = None
    att_se: float | None = None
    estimator: str = ""
    dependent: str = ""
    fixed_effects: list = field(default_factory=list)
    cluster_var: str | None = None
    controls: list = field(default_factory=list)
    trends: str | None = None
    vcov_values: Any = field(default=None, repr=False, compare=False)
    vcov_names: list = field(default_factory=list, repr=False)
    iv: IVResults | None = None
    matching: MatchingResults | None = None

    # ---- JSON record -----------------------------------------------------------------------

    def to_dict(self) -> dict:
        """JSON-ready dict (floats as floats, tuples as lists)."""
        out = {
            "coef": self.coef,
            "se": self.se,
            "t": self.t,
            "p": self.p,
            "ci": list(self.ci),
            "nobs": self.nobs,
            "n_clusters": self.n_clusters,
            "r2": self.r2,
            "r2_within": self.r2_within,
            "params": self.params,
            "bse": self.bse,
            "df_resid": self.df_resid,
            "vcov_type": self.vcov_type,
        }
        if self.att is not None:
            out["att"], out["att_se"] = self.att, self.att_se
        return out

    # ---- per-coefficient accessors ---------------------------------------------------------

    @property
    def tvalues(self) -> dict:
        """Name → t statistic β/se (the estimator's own values in ``extra["t_stats"]`` when
        it reports them)."""
        if "t_stats" in self.extra:
            return dict(self.extra["t_stats"])
        return {
            k: (b / self.bse[k] if self.bse.get(k) else math.nan) for k, b in self.params.items()
        }

    @property
    def pvalues(self) -> dict:
        """Name → two-sided p-value, Student's t with ``df_resid`` degrees of freedom (standard
        normal when ``df_resid`` is None)."""
        if "p_values" in self.extra:
            return dict(self.extra["p_values"])
        from nqp_resilience.scipy_kernels import special

        ndtr, stdtr = special("ndtr", "stdtr")

        out = {}
        for k, t in self.tvalues.items():
            if not math.isfinite(t):
                out[k] = math.nan
            elif self.df_resid is None:
                out[k] = float(2.0 * ndtr(-abs(t)))
            else:
                out[k] = float(2.0 * stdtr(self.df_resid, -abs(t)))
        return out

    @property
    def vcov(self):
        """Variance matrix of the estimated coefficients, a pandas ``DataFrame`` with the
        coefficient names as index and columns (order of ``params``). An estimator that gives
        no covariances (``vcov_values`` None) yields se² on the diagonal and NaN elsewhere."""
        import numpy as np
        import pandas as pd

        if self.vcov_values is not None:
            names = list(self.vcov_names)
            return pd.DataFrame(np.array(self.vcov_values, dtype=float), index=names, columns=names)
        names = list(self.bse)
        v = np.full((len(names), len(names)), np.nan)
        np.fill_diagonal(v, [self.bse[k] ** 2 for k in names])
        return pd.DataFrame(v, index=names, columns=names)

    def _quantile(self, level: float) -> float:
        if not 0.0 < level < 1.0:
            from nqp_resilience.estimation.core import OptionError

            raise OptionError("conf_int", "level", level, ("a number strictly between 0 and 1",))
        from nqp_resilience.scipy_kernels import special

        ndtri, stdtrit = special("ndtri", "stdtrit")

        q = 0.5 + level / 2.0
        return float(ndtri(q)) if self.df_resid is None else float(stdtrit(self.df_resid, q))

    def conf_int(self, level: float = 0.95):
        """Confidence intervals β ± c·se per coefficient, c the (1 + level)/2 quantile of
        Student's t with ``df_resid`` degrees of freedom (of the standard normal when
        ``df_resid`` is None).

        Returns
        -------
        pandas.DataFrame
            Index: coefficient names; columns ``"{100(1−level)/2}%"``, ``"{100(1+level)/2}%"``
            (``"2.5%"``, ``"97.5%"`` at the default level, as pyfixest's ``confint()``).
        """
        import pandas as pd

        c = self._quantile(level)
        lo, hi = f"{100 * (1 - level) / 2:g}%", f"{100 * (1 + level) / 2:g}%"
        names = list(self.params)
        return pd.DataFrame(
            {
                lo: [self.params[k] - c * self.bse[k] for k in names],
                hi: [self.params[k] + c * self.bse[k] for k in names],
            },
            index=names,
        )

    def tidy(self, level: float = 0.95):
        """One row per coefficient: ``term, estimate, std_error, t, p, ci_low, ci_high``
        (a pandas ``DataFrame``; the bounds of :meth:`conf_int` at ``level``)."""
        import pandas as pd

        c = self._quantile(level)
        t, p = self.tvalues, self.pvalues
        rows = [
            {
                "term": k,
                "estimate": b,
                "std_error": self.bse[k],
                "t": t.get(k, math.nan),
                "p": p.get(k, math.nan),
                "ci_low": b - c * self.bse[k],
                "ci_high": b + c * self.bse[k],
            }
            for k, b in self.params.items()
        ]
        return pd.DataFrame(
            rows, columns=["term", "estimate", "std_error", "t", "p", "ci_low", "ci_high"]
        )

    # ---- text ------------------------------------------------------------------------------

    def _terms(self) -> tuple[list[str], list[str]]:
        """(core terms, controls) among the estimated coefficients (without ``_cons``)."""
        terms = [k for k in self.params if k != "_cons"]
        ctrl = [k for k in terms if k in set(self.controls)]
        return [k for k in terms if k not in set(ctrl)], ctrl

    def __repr__(self) -> str:
        core, ctrl = self._terms()
        if self.iv is not None:
            rhs = [f"[{' + '.join(self.iv.endogenous)} ~ {' + '.join(self.iv.instruments)}]"]
            rhs += [k for k in core if k not in self.iv.endogenous]
        else:
            rhs = core or [self.regressor]
        if ctrl:
            rhs.append(f"{len(ctrl)} control" + ("s" if len(ctrl) > 1 else ""))
        model = f"{self.dependent or '?'} ~ {' + '.join(rhs)}"
        if self.fixed_effects:
            model += " | " + " + ".join(self.fixed_effects)
        g = f", G={self.n_clusters}" if self.n_clusters is not None else ""
        return (
            f"<EstimationResult {self.estimator or 'estimate'}: {model}; "
            f"coef {self.coef:.3g} ({self.se:.3g}), N={self.nobs}{g}>"
        )

    def summary(self, level: float = 0.95) -> str:
        """A reghdfe-like table: header (estimator, N, clusters, R², within R², absorbed fixed
        effects, variance type) and one row per coefficient (coef, se, t, p, confidence
        interval at ``level``); IV and PSM add their diagnostics. Returns the text (shown as is
        at the interactive prompt; ``print`` it in a script)."""
        fes = ", ".join(self.fixed_effects) if self.fixed_effects else "none"
        left = [
            f"Estimator: {self.estimator or '—'}",
            f"Dependent variable: {self.dependent or '—'}",
            f"Absorbed FE: {fes}" + (f"; trends by {self.trends}" if self.trends else ""),
            f"VCE: {self.vcov_type or '—'}"
            + (f" by {self.cluster_var}" if self.cluster_var else ""),
        ]
        g = f"{self.n_clusters:>10,}" if self.n_clusters is not None else ".".rjust(10)
        right = [
            f"Number of obs      = {self.nobs:>10,}",
            f"Number of clusters = {g}",
            f"R-squared          = {_num(self.r2)}",
            f"Within R-sq.       = {_num(self.r2_within)}",
        ]
        lines = [f"{a:<46}{b}" for a, b in zip(left, right, strict=True)]
        names = list(self.params)
        wn = max([12, len(self.dependent)] + [len(k) for k in names])
        pct = f"[{100 * level:g}% conf. interval]"
        head = (
            f"{self.dependent:>{wn}} | {'Coef.':>10} {'Std. err.':>10} {'t':>8} "
            f"{'P>|t|':>7}  {pct:>22}"
        )
        rule = "-" * (wn + 1) + "+" + "-" * (len(head) - wn - 2)
        lines += ["-" * len(head), head, rule]
        ci = self.tidy(level).set_index("term") if names else None
        t, p = self.tvalues, self.pvalues
        for k in names:
            lines.append(
                f"{k:>{wn}} | {_num(self.params[k])} {_num(self.bse[k])} "
                f"{_num(t.get(k), 8, 2)} {_num(p.get(k), 7, 3)}  "
                f"{_num(ci.loc[k, 'ci_low'])} {_num(ci.loc[k, 'ci_high'], 11)}"
            )
        lines.append("-" * len(head))
        if self.df_resid is not None:
            lines.append(f"t tests with {self.df_resid} degrees of freedom")
        if self.iv is not None:
            iv, ar = self.iv, self.iv.anderson_rubin
            sy = self.iv.stock_yogo.get("10%")
            lines += [
                f"Instrumented: {', '.join(iv.endogenous)}; excluded instruments: "
                f"{', '.join(iv.instruments)}",
                f"First stage: coef {iv.first_stage_coef:.4g} ({iv.first_stage_se:.4g}), "
                f"F = {iv.first_stage_F:.2f}",
                f"Kleibergen-Paap rk LM = {iv.kp_lm:.2f} (p = {iv.kp_lm_p:.3g}); "
                f"rk Wald F = {iv.kp_f:.2f}; Cragg-Donald F = {iv.cd_f:.2f}"
                + (f"; Stock-Yogo 10% size = {sy:g}" if sy is not None else ""),
                f"Anderson-Rubin F = {ar.stat:.2f} (p = {ar.p:.3g}); {ar.ci_level:g} set: "
                + (", ".join(f"[{lo:.4g}, {hi:.4g}]" for lo, hi in ar.ci) if ar.ci else ar.ci_kind),
            ]
        if self.matching is not None:
            m = self.matching
            lines.append(
                f"PSM ({m.method}): ATT = {m.att:.4g} ({m.att_se:.4g}), matched N = "
                f"{m.matched_n}, treated on support = {m.n_treated_on_support}"
            )
        for note in self.extra.get("notes", []) or []:
            lines.append(f"Note: {note}")
        return _Text("\n".join(lines))
