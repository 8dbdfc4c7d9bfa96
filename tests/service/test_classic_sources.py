"""A LightGBM model (onnxmltools) beside a neural model, and a scikit-learn forest regressor, through the
real stack: uploaded and decomposed into stage groups, fused by the worker with the MMoE baseline from the
job's columns, deployed, and answering OIP inference and /v1/predict records from the columns its one
float tensor is built of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers.classic_models import FEATURE_COLUMNS, TREE_INPUT, neural_onnx, tabular_frame, train_classic
from tests.helpers.jobs import wait_for_job
from tests.helpers.stacks import Stack
from tests.helpers.uploads import SourceFile, upload_dataset, upload_model

NAME = "classic"


@pytest.fixture(scope="module")
def stack(pg_stack: Stack) -> Stack:
    """PostgreSQL and Redis only: the embedded stack runs the same code, and this job is the slow part."""
    return pg_stack


def test_trees_fuse_deploy_and_answer_from_their_columns(stack: Stack, tmp_path: Path) -> None:
    train, validation, rows = tabular_frame(800, 0), tabular_frame(300, 1), tabular_frame(5, 2)
    train.to_parquet(tmp_path / "train.parquet", index=False)
    validation.to_csv(tmp_path / "validation.csv", index=False)
    sources = {
        "lightgbm": (train_classic("lightgbm", train), "label"),
        "forest": (train_classic("random_forest_regressor", train), "amount"),
    }
    files = [neural_source_file(tmp_path, train)]
    for name, (model, task) in sources.items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(model.onnx_bytes)
        files.append(SourceFile(f"{NAME}_{name}", task, path, None))

    with stack.client() as client:
        uploaded = {}
        for source in files:
            task_type = "regression" if source.task == "amount" else "binary"
            response = upload_model(client, source, task_type=task_type)
            assert response.status_code == 201, response.text
            uploaded[source.name] = response.json()
        decomposition = uploaded[f"{NAME}_lightgbm"]["decomposition"]
        stages = [c for c in decomposition["components"] if c["role"] == "body"]
        assert [c["trees"] for c in stages] == [2, 3, 2] and "3 trees" in decomposition["tree"]
        labels = "label,amount"
        train_set = upload_dataset(client, tmp_path / "train.parquet", name=f"{NAME} train", label_columns=labels)
        validation_set = upload_dataset(client, tmp_path / "validation.csv", name=f"{NAME} validation")
        assert train_set.status_code == validation_set.status_code == 201, validation_set.text
        columns = {TREE_INPUT: list(FEATURE_COLUMNS)}
        spec = {
            "name": NAME,
            "tasks": [
                {
                    "name": "label",
                    "type": "binary",
                    "models": [
                        uploaded[f"{NAME}_mlp"]["id"],
                        {"id": uploaded[f"{NAME}_lightgbm"]["id"], "input_columns": columns},
                    ],
                },
                {
                    "name": "amount",
                    "type": "regression",
                    "models": [{"id": uploaded[f"{NAME}_forest"]["id"], "input_columns": columns}],
                },
            ],
            "dataset_id": train_set.json()["id"],
            "validation_dataset_id": validation_set.json()["id"],
            "hyperparameters": {"max_epochs": 1, "batch_size": 256},
            "baselines": ["mmoe"],
        }
        created = client.post("/v1/fusion-jobs", json=spec)
        assert created.status_code == 202, created.text
        job = wait_for_job(client, created.json()["id"], stack)
        assert job["status"] == "succeeded", (job, stack.logs())
        assert all(set(task["baselines"]) == {"mmoe"} for task in job["report"]["tasks"])
        deployment = job["deployment"]["name"]

        metadata = client.get(f"/v2/models/{deployment}").json()
        inputs = {tensor["name"]: tensor for tensor in metadata["inputs"]}
        assert inputs[TREE_INPUT]["datatype"] == "FP32" and inputs[TREE_INPUT]["shape"][-1] == len(FEATURE_COLUMNS)
        features = rows[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)
        feed = {TREE_INPUT: features} | {c: rows[c].to_numpy() for c in ("cat_a", "cat_b")}
        feed |= {c: rows[c].to_numpy(dtype=np.float32) for c in ("x1", "x2", "x3")}
        oip_inputs = [
            {
                "name": name,
                "shape": list(feed[name].shape),
                "datatype": spec["datatype"],
                "data": feed[name].ravel().tolist(),
            }
            for name, spec in inputs.items()
        ]
        oip = client.post(f"/v2/models/{deployment}/infer", json={"inputs": oip_inputs})
        predicted = client.post(f"/v1/predict/{deployment}", json={"records": rows.to_dict("records")})
        assert oip.status_code == predicted.status_code == 200, (oip.text, predicted.text)
        [listed] = client.get("/v1/deployments", params={"name": deployment}).json()["items"]
        assert listed["input_columns"][TREE_INPUT] == list(FEATURE_COLUMNS)

    outputs = {output["name"]: np.asarray(output["data"], dtype=np.float32) for output in oip.json()["outputs"]}
    records = predicted.json()["predictions"]
    for task in ("label", "amount"):
        from_records = np.asarray([record[task] for record in records], dtype=np.float32)
        np.testing.assert_allclose(from_records, outputs[task], atol=1e-6)
        assert outputs[task].shape == (len(rows),) and np.isfinite(outputs[task]).all()


def neural_source_file(folder: Path, train: object) -> SourceFile:
    path = neural_onnx("binary", train, folder / "mlp.onnx")  # type: ignore[arg-type]
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # exported whole, no weights file
    return SourceFile(f"{NAME}_mlp", "label", path, None)
