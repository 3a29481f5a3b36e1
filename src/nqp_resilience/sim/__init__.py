"""Simulator of the embedded default raw data."""
