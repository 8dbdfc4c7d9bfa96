"""Loading a model from local files (command line, tests, benchmarks); uploads go through load_model."""

from __future__ import annotations

from pathlib import Path

from fusion.intake import LoadedModel, load_model


def load_model_file(path: Path, weights: Path | None = None) -> LoadedModel:
    """`path` and its companion weights file: `weights`, or `<path>.data` where the exporter wrote one."""
    companion = weights or (Path(f"{path}.data") if Path(f"{path}.data").exists() else None)
    return load_model(path.read_bytes(), (companion.name, companion) if companion else None)
