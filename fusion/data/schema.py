"""Which columns feed a model, and how: categorical ids or dense values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CategoricalFeature:
    """An integer-id column; ids run from 0 to cardinality - 1."""

    name: str
    cardinality: int


@dataclass(frozen=True)
class FeatureSchema:
    """The features a model reads, in its input order: categorical columns first, then dense ones."""

    categorical: tuple[CategoricalFeature, ...]
    dense: tuple[str, ...]

    @property
    def input_names(self) -> list[str]:
        return [feature.name for feature in self.categorical] + list(self.dense)

    def subset(self, names: list[str] | set[str]) -> FeatureSchema:
        """The same schema restricted to `names`, keeping this schema's order."""
        keep = set(names)
        unknown = keep - set(self.input_names)
        if unknown:
            raise ValueError(f"unknown feature columns: {sorted(unknown)}")
        return FeatureSchema(
            categorical=tuple(f for f in self.categorical if f.name in keep),
            dense=tuple(name for name in self.dense if name in keep),
        )

    def check_frame(self, frame: pd.DataFrame) -> None:
        """Raise ValueError naming every column that is missing or out of range."""
        problems = [f"missing column '{name}'" for name in self.input_names if name not in frame.columns]
        for feature in self.categorical:
            if feature.name not in frame.columns:
                continue
            values = frame[feature.name].to_numpy()
            if not np.issubdtype(values.dtype, np.integer):
                problems.append(f"column '{feature.name}' must hold integer ids, not {values.dtype}")
            elif values.size and (values.min() < 0 or values.max() >= feature.cardinality):
                problems.append(
                    f"column '{feature.name}' has ids outside 0..{feature.cardinality - 1} "
                    f"(found {values.min()}..{values.max()})"
                )
        for name in self.dense:
            if name in frame.columns and not np.isfinite(frame[name].to_numpy(dtype=np.float64)).all():
                problems.append(f"column '{name}' has NaN or infinite values")
        if problems:
            raise ValueError("; ".join(problems))
