"""The whole product path over HTTP, once on PostgreSQL + Redis and once on the embedded defaults:
upload models and data, fuse, follow progress, deploy, and query through OIP v2 and /v1/predict with
answers equal to running the exported ONNX directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest

from fusion.onnx_runtime import model_feeds
from tests.helpers.jobs import CENSUS_HYPERPARAMETERS, CensusJob
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles


@pytest.fixture(scope="module")
def finished(census_job: CensusJob) -> dict:
    """Models and data uploaded, one job run to success (the session's shared Census job, which checked that
    it was created queued): the job as the API reports it at the end."""
    return census_job.job


def test_model_upload_answers_the_decomposition(stack: Stack, finished: dict) -> None:
    with stack.client() as client:
        items = client.get("/v1/models").json()["items"]
    by_name = {item["name"]: item for item in items}
    deepfm = by_name["census_never_married_deepfm"]
    assert deepfm["task"] == {"name": "never_married", "type": "binary", "classes": None}
    assert deepfm["decomposition"]["body_components"] >= 1
    assert deepfm["decomposition"]["components"][0]["role"] == "stem"
    assert "stem" in deepfm["decomposition"]["tree"]
    assert {spec["kind"] for spec in deepfm["signature"]["inputs"]} == {"categorical", "dense"}


def test_dataset_upload_answers_schema_and_rows(stack: Stack, finished: dict) -> None:
    with stack.client() as client:
        dataset = client.get(f"/v1/datasets/{finished['spec']['validation_dataset_id']}").json()
    assert dataset["name"] == "census validation" and dataset["source_format"] == "csv"
    assert dataset["rows"] == 2000
    columns = {column["name"]: column for column in dataset["columns"]}
    assert columns["income"]["values"] == [0.0, 1.0]
    assert columns["education"]["integer_valued"] and columns["education"]["min"] >= 0


def test_job_reports_progress_metrics_and_report(stack: Stack, finished: dict) -> None:
    assert finished["progress"] == 100.0 and finished["attempts"] == 1
    assert 1 <= finished["epoch"] <= CENSUS_HYPERPARAMETERS["max_epochs"]
    assert [entry["epoch"] for entry in finished["metrics"]] == list(range(1, finished["epoch"] + 1))
    assert set(finished["metrics"][0]["validation"]) == {"income", "never_married"}
    report = finished["report"]
    assert [task["task"] for task in report["tasks"]] == ["income", "never_married"]
    for task in report["tasks"]:
        best_source = max(score["validation"] for score in task["sources"].values())
        assert task["exported"]["validation"] >= best_source
    assert finished["deployment"]["name"] == "census" and finished["deployment"]["version"] >= 1
    with stack.client() as client:
        listed = client.get("/v1/fusion-jobs", params={"status": "succeeded"}).json()["items"]
        assert finished["id"] in {job["id"] for job in listed}
        assert client.get("/v1/fusion-jobs", params={"status": "running"}).json()["items"] == []


def test_oip_health_and_metadata(stack: Stack, finished: dict) -> None:
    version = str(finished["deployment"]["version"])
    with stack.client() as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2").json()["name"] == "fusebox"
        assert client.get("/v2/models/census/ready").json() == {"name": "census", "ready": True}
        assert client.get(f"/v2/models/census/versions/{version}/ready").status_code == 200
        metadata = client.get("/v2/models/census").json()
        missing = client.get("/v2/models/nothing/ready")
    assert metadata["platform"] == "onnx_onnxv1" and version in metadata["versions"]
    assert [output["name"] for output in metadata["outputs"]] == ["income", "never_married"]
    assert all(spec["shape"] == [-1] for spec in metadata["inputs"] + metadata["outputs"])
    assert {spec["datatype"] for spec in metadata["inputs"]} == {"INT64", "FP32"}
    assert missing.status_code == 404 and "nothing" in missing.json()["error"]


def test_inference_equals_the_exported_onnx(
    stack: Stack, finished: dict, data_files: DataFiles, tmp_path: Path
) -> None:
    rows = pd.read_csv(data_files.validation).head(25)
    with stack.client() as client:
        download = client.get(f"/v1/fusion-jobs/{finished['id']}/model")
        assert download.status_code == 200
        model_path = tmp_path / "fused.onnx"
        model_path.write_bytes(download.content)
        metadata = client.get("/v2/models/census").json()
        inputs = [
            {
                "name": spec["name"],
                "shape": [len(rows)],
                "datatype": spec["datatype"],
                "data": rows[spec["name"]].tolist(),
            }
            for spec in metadata["inputs"]
        ]
        version = finished["deployment"]["version"]
        oip = client.post(f"/v2/models/census/versions/{version}/infer", json={"id": "r1", "inputs": inputs})
        subset = client.post("/v2/models/census/infer", json={"inputs": inputs, "outputs": [{"name": "income"}]})
        predicted = client.post("/v1/predict/census", json={"records": rows.to_dict("records")})
    assert oip.status_code == subset.status_code == predicted.status_code == 200, (oip.text, predicted.text)

    model = onnx.load(str(model_path))
    assert {entry.key for entry in model.metadata_props} >= {"fusebox.tasks", "fusebox.input_columns"}
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feed = model_feeds(session.get_inputs(), rows)
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))

    body = oip.json()
    assert body["model_name"] == "census" and body["model_version"] == str(version) and body["id"] == "r1"
    for output in body["outputs"]:
        assert output["shape"] == [len(rows)] and output["datatype"] == "FP32"
        np.testing.assert_array_equal(np.asarray(output["data"], dtype=np.float32), expected[output["name"]])
    assert [output["name"] for output in subset.json()["outputs"]] == ["income"]
    predictions = predicted.json()["predictions"]
    assert len(predictions) == len(rows)
    for task in ("income", "never_married"):
        got = np.asarray([row[task] for row in predictions], dtype=np.float32)
        np.testing.assert_array_equal(got, expected[task])


def test_inference_input_errors_are_400_with_a_message(stack: Stack, finished: dict) -> None:
    with stack.client() as client:
        metadata = client.get("/v2/models/census").json()
        good = [{"name": s["name"], "shape": [1], "datatype": s["datatype"], "data": [0]} for s in metadata["inputs"]]

        def infer(inputs: list[dict]) -> dict:
            response = client.post("/v2/models/census/infer", json={"inputs": inputs})
            assert response.status_code == 400, response.text
            return response.json()

        first = good[0]["name"]
        assert "missing" in infer(good[1:])["error"]
        assert "unknown" in infer([*good, {**good[0], "name": "nope"}])["error"]
        assert "datatype" in infer([{**good[0], "datatype": "FP64"}, *good[1:]])["error"]
        assert "shape" in infer([{**good[0], "shape": [1, 1]}, *good[1:]])["error"]
        assert "holds 2" in infer([{**good[0], "shape": [2]}, *good[1:]])["error"]
        assert "same number of rows" in infer([{**good[0], "shape": [2], "data": [0, 0]}, *good[1:]])["error"]
        assert first in infer([{**good[0], "data": ["x"]}, *good[1:]])["error"]
        assert "outside its embedding table" in infer([{**good[0], "data": [10**6]}, *good[1:]])["error"]
        malformed = client.post("/v2/models/census/infer", json={"inputs": "x"})
        assert malformed.status_code == 400 and "inputs" in malformed.json()["error"]


def test_inference_errors_have_one_shape_and_list_every_problem(stack: Stack, finished: dict) -> None:
    """/v2 infer and /v1/predict answer {"error": message, "problems": [...]}: the message names every
    problem too, so that a client reading only "error" can fix them all in one go."""
    with stack.client() as client:
        metadata = client.get("/v2/models/census").json()
        specs = metadata["inputs"]
        good = [{"name": s["name"], "shape": [1], "datatype": s["datatype"], "data": [0]} for s in specs]
        ids = [i for i, s in enumerate(specs) if s["datatype"] == "INT64"]
        floats = [i for i, s in enumerate(specs) if s["datatype"] == "FP32"]
        assert len(ids) >= 2 and floats, specs

        twice_wrong = [dict(tensor) for tensor in good]
        twice_wrong[ids[0]]["datatype"] = "FP64"
        twice_wrong[ids[1]]["shape"] = [1, 1]
        body = client.post("/v2/models/census/infer", json={"inputs": twice_wrong}).json()
        assert set(body) == {"error", "problems"} and len(body["problems"]) == 2, body
        for index, word in ((ids[0], "datatype FP64"), (ids[1], "shape [1, 1]")):
            assert any(specs[index]["name"] in p and word in p for p in body["problems"]), body
            assert specs[index]["name"] in body["error"]

        out_of_range = [dict(tensor) for tensor in good]
        out_of_range[ids[0]]["data"] = [10**6]
        out_of_range[ids[1]]["data"] = [-1]
        out_of_range[floats[0]]["data"] = [1e39]  # FP32 overflows to inf
        body = client.post("/v2/models/census/infer", json={"inputs": out_of_range}).json()
        assert len(body["problems"]) == 3, body
        assert {specs[i]["name"] for i in (ids[0], ids[1], floats[0])} == {
            name for name in (s["name"] for s in specs) if any(f"'{name}'" in p for p in body["problems"])
        }

        record = {s["name"]: 0 for s in specs}
        lacking = client.post("/v1/predict/census", json={"records": [record, {}, {}]})
        body = lacking.json()
        assert lacking.status_code == 400 and set(body) == {"error", "problems"}, body
        assert len(body["problems"]) == len(specs), body  # one per missing column, each naming its records
        for spec in specs:
            assert f"column '{spec['name']}' is missing from records 1, 2" in body["error"]

        wrong_values = {**record, specs[ids[0]]["name"]: 2.5, specs[floats[0]]["name"]: "x"}
        body = client.post("/v1/predict/census", json={"records": [wrong_values, record]}).json()
        assert len(body["problems"]) == 2, body
        assert any("whole numbers: record 0" in p for p in body["problems"])
        assert any("finite numbers: 'x' in record 0" in p for p in body["problems"])

        malformed = client.post("/v1/predict/census", json={"records": "x", "other": 1})
        body = malformed.json()
        assert malformed.status_code == 400 and "records" in body["error"], body
    with stack.client(api_key="") as anonymous:
        unauthorized = anonymous.post("/v1/predict/census", json={"records": []})
        assert unauthorized.status_code == 401 and set(unauthorized.json()) == {"error"}, unauthorized.text


def test_api_process_never_imports_torch(stack: Stack, finished: dict) -> None:
    """After uploads (intake, decomposition) and inference, no torch library is mapped into the API."""
    maps = Path(f"/proc/{stack.processes['api'].pid}/maps").read_text()
    assert "onnxruntime" in maps  # the check sees the libraries the process loaded
    assert "libtorch" not in maps and "/torch/" not in maps
