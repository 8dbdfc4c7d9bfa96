"""Helpers the tests share: test modules import them from here, never from each other or from conftest.py
files (which hold fixtures only) or bench/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""
