"""Indices stage: the NQP entropy index, the Nqp1 text measure, and the derived variables."""
