"""Tabular data: feature schemas, tensor tables, and the Census-Income (KDD) reference data."""
