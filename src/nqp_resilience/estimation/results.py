"""The result object every estimator returns (SPEC §10).

Attributes ``coef, se, t, p, nobs, n_clusters, r2, r2_within`` refer to the core regressor;
``ci`` is its 95 % confidence interval; ``extra`` holds estimator-specific output (first stage
and Kleibergen–Paap statistics for IV; matched N and the balance table for PSM); ``params`` and
``bse`` hold every coefficient and standard error by name. Controls an estimator omitted
(absorbed by the fixed effects or collinear) are not in ``params``; their names are in
``extra["omitted"]`` and the reasons, with any other note (PSM perfect prediction), in
``extra["notes"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EstimationResult:
    """Estimates for one specification."""

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

    def to_dict(self) -> dict:
        """JSON-ready dict (floats as floats, tuples as lists)."""
        out = {
            "coef": self.coef, "se": self.se, "t": self.t, "p": self.p, "ci": list(self.ci),
            "nobs": self.nobs, "n_clusters": self.n_clusters, "r2": self.r2, "r2_within": self.r2_within,
            "params": self.params, "bse": self.bse, "df_resid": self.df_resid, "vcov_type": self.vcov_type,
        }
        if self.att is not None:
            out["att"], out["att_se"] = self.att, self.att_se
        return out
