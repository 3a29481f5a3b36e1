"""Estimation stage: fixed-effects OLS, IV, propensity-score matching, and the specification
registry."""
