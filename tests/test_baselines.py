"""The from-scratch baselines a fusion report compares with: a fair start for rare labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusion.akf.baselines import start_at_label_rates
from fusion.data.census import CensusData
from fusion.data.tables import as_table
from fusion.zoo import build_multitask_model
from fusion.zoo.layers import TaskHead


@pytest.mark.parametrize("kind", ["shared_bottom", "mmoe", "ple"])
def test_binary_heads_start_at_their_label_rate(census_small: CensusData, kind: str) -> None:
    model = build_multitask_model(kind, census_small.schema, census_small.tasks)
    start_at_label_rates(model, census_small.tasks, as_table(census_small.train))
    heads = {module.task.name: module for module in model.modules() if isinstance(module, TaskHead)}
    assert set(heads) == {task.name for task in census_small.tasks}
    for task in census_small.tasks:
        rate = census_small.train[task.label].mean()
        assert 0.01 < rate < 0.99, "the check below needs a rate away from even odds"
        start = torch.sigmoid(heads[task.name].linear.bias).item()
        np.testing.assert_allclose(start, rate, rtol=1e-5)
