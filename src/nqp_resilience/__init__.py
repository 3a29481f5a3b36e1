"""Replication workflow for "New quality productivity and urban economic resilience".

Importing the package is cheap on purpose: every Snakemake job is a fresh Python process,
so heavy libraries (pandas, scipy, statsmodels, linearmodels) are imported inside the
functions that need them, never at module level here. The public estimators are
loaded on first access: ``from nqp_resilience import twfe``.
"""

from nqp_resilience.errors import ConfigError, DataError, ProjectError

__all__ = [
    "ConfigError",
    "DataError",
    "ProjectError",
    "__version__",
    "entropy_weights",
    "iv_twfe",
    "psm",
    "twfe",
    "wild_cluster_bootstrap",
    "wild_restricted_efficient_bootstrap",
]
__version__ = "0.1.0"

_LAZY = {
    "twfe": "nqp_resilience.estimation.ols",
    "iv_twfe": "nqp_resilience.estimation.iv",
    "psm": "nqp_resilience.estimation.matching",
    "entropy_weights": "nqp_resilience.indices.entropy",
    "wild_cluster_bootstrap": "nqp_resilience.estimation.bootstrap",
    "wild_restricted_efficient_bootstrap": "nqp_resilience.estimation.iv_bootstrap",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nqp_resilience' has no attribute {name!r}")
