"""Replication workflow for "New quality productivity and urban economic resilience".

Importing the package is cheap on purpose: every Snakemake job is a fresh Python process,
so heavy libraries (pandas, scipy, statsmodels, linearmodels) are imported inside the
functions that need them, never at module level here.
"""

from nqp_resilience.errors import ConfigError, DataError, ProjectError

__all__ = ["ConfigError", "DataError", "ProjectError", "__version__"]
__version__ = "0.1.0"
