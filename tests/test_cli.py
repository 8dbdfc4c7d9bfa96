"""The `fusebox` engine commands, run as a user runs them: train-single, inspect, fuse, evaluate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow  # every test uses `workspace`, which trains three models

ROOT = Path(__file__).resolve().parents[1]


def fusebox(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """The console script's entry point, from this checkout (whatever else the interpreter has installed)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"plan": rng.integers(0, 5, rows), "region": rng.integers(0, 7, rows), "usage": rng.random(rows)}
    )
    frame["churn"] = ((frame.usage + 0.1 * frame.plan + rng.normal(0, 0.2, rows)) > 0.7).astype(float)
    frame["upsell"] = ((frame.region % 2 + frame.usage + rng.normal(0, 0.3, rows)) > 1.0).astype(float)
    return frame


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    table(3000, 0).to_csv(folder / "train.csv", index=False)
    table(1000, 1).to_parquet(folder / "validation.parquet")
    table(1000, 2).to_csv(folder / "test.csv", index=False)
    for family, task, exporter in [
        ("mlp", "churn", "legacy"),
        ("dcn", "churn", "dynamo"),
        ("wide_deep", "upsell", "legacy"),
    ]:
        done = fusebox(
            "train-single", "--family", family, "--task", task, "--train", "train.csv",
            "--validation", "validation.parquet", "--exclude", "churn,upsell", "--hidden", "16,8",
            "--epochs", "2", "--exporter", exporter, "--out", f"models/{task}_{family}.onnx", cwd=folder,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "best epoch" in done.stdout and "wrote models/" in done.stdout
    return folder


def test_train_single_writes_the_companion_weights_for_the_dynamo_exporter(workspace: Path) -> None:
    assert (workspace / "models/churn_dcn.onnx.data").exists()
    assert not (workspace / "models/churn_mlp.onnx.data").exists()


def test_inspect_prints_signature_and_component_tree(workspace: Path) -> None:
    done = fusebox("inspect", "models/churn_dcn.onnx", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "plan: categorical int64 width 1, ids < 5" in done.stdout
    assert "usage: dense float32" in done.stdout
    assert "├─ stem" in done.stdout and "parallel" in done.stdout and "└─ head" in done.stdout
    assert "body components: 3" in done.stdout  # the cross branch and two deep blocks


def test_inspect_refuses_a_file_that_is_not_onnx(workspace: Path) -> None:
    (workspace / "notes.onnx").write_text("these are not the weights you are looking for")
    done = fusebox("inspect", "notes.onnx", cwd=workspace)
    assert done.returncode == 1
    assert done.stderr.startswith("fusebox: invalid: ") and "text" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_fuse_from_a_spec_then_evaluate(workspace: Path) -> None:
    spec = {
        "tasks": [
            {"name": "churn", "type": "binary",
             "models": [{"path": "models/churn_mlp.onnx"}, {"path": "models/churn_dcn.onnx"}]},
            {"name": "upsell", "type": "binary", "models": [{"path": "models/upsell_wide_deep.onnx"}]},
        ],
        "data": {"train": "train.csv", "validation_fraction": 0.2, "test": "test.csv"},
        "hyperparameters": {"max_epochs": 2, "batch_size": 256},
        "output": "out/fused.onnx",
        "report": "out/report.json",
    }  # fmt: skip
    (workspace / "fuse.yaml").write_text(yaml.safe_dump(spec))
    done = fusebox("fuse", "fuse.yaml", "--device", "cpu", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "training the fusion" in done.stderr and "epoch 1/2" in done.stderr
    assert "exported model" in done.stdout and "wrote out/fused.onnx" in done.stdout
    report = json.loads((workspace / "out/report.json").read_text())
    assert [task["task"] for task in report["tasks"]] == ["churn", "upsell"]

    evaluated = fusebox("evaluate", "out/fused.onnx", "test.csv", cwd=workspace)
    assert evaluated.returncode == 0, evaluated.stderr
    lines = dict(line.split(": auc ") for line in evaluated.stdout.strip().splitlines())
    for task in report["tasks"]:
        assert float(lines[task["task"]]) == pytest.approx(task["exported"]["test"], abs=1e-4)


def test_fuse_reports_spec_mistakes(workspace: Path) -> None:
    (workspace / "bad.yaml").write_text(yaml.safe_dump({"tasks": [{"name": "churn", "type": "binary"}]}))
    done = fusebox("fuse", "bad.yaml", cwd=workspace)
    assert done.returncode == 1
    assert done.stderr.startswith("fusebox: invalid: ") and len(done.stderr.splitlines()) == 1
    assert "tasks.0.models: Field required" in done.stderr and "data: Field required" in done.stderr
