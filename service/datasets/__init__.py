"""Datasets: training and validation tables, uploaded as CSV or Parquet and stored as Parquet."""
