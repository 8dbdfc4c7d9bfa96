"""Uploads and job specs the service refuses: each answer's status code and message, and nothing stored."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack
from tests.helpers.uploads import SourceFile, upload_dataset, upload_model


@pytest.fixture(scope="module")
def client(pg_stack: Stack) -> Iterator[httpx.Client]:
    with pg_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def sources(client: httpx.Client, source_files: list[SourceFile]) -> dict[str, dict]:
    """The two source models, uploaded under names of this module, by task."""
    uploaded = {}
    for source in source_files:
        response = upload_model(client, source, name=f"checks_{source.name}")
        assert response.status_code == 201, response.text
        uploaded[source.task] = response.json()
    return uploaded


@pytest.fixture(scope="module")
def frames(census_small) -> dict[str, pd.DataFrame]:
    return {"train": census_small.train.head(1000), "validation": census_small.validation.head(400)}


def csv_upload(client: httpx.Client, frame: pd.DataFrame, tmp_path: Path, name: str, **fields: str) -> httpx.Response:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return upload_dataset(client, path, **fields)


class TestModelUploads:
    def test_a_pickle_is_not_an_onnx_model(self, pg_stack: Stack, client: httpx.Client) -> None:
        with nothing_stored(pg_stack, client):
            response = client.post(
                "/v1/models",
                files={"file": ("model.pkl", pickle.dumps({"weights": [1, 2]}))},
                data={"name": "pickled", "task": "income"},
            )
        refused(response, 422, "not an ONNX model", "pickle")

    def test_an_empty_file(self, pg_stack: Stack, client: httpx.Client) -> None:
        with nothing_stored(pg_stack, client):
            response = client.post("/v1/models", files={"file": ("m.onnx", b"")}, data={"name": "e", "task": "t"})
        refused(response, 422, "empty")

    def test_weights_file_missing(self, pg_stack: Stack, client: httpx.Client, source_files: list[SourceFile]) -> None:
        dynamo = next(source for source in source_files if source.weights is not None)
        with nothing_stored(pg_stack, client):
            response = client.post(
                "/v1/models",
                files={"file": (dynamo.path.name, dynamo.path.read_bytes())},
                data={"name": "no_weights", "task": dynamo.task},
            )
        refused(response, 422, "separate file", dynamo.weights.name)

    def test_a_file_over_the_size_limit(self, pg_stack: Stack, client: httpx.Client) -> None:
        with nothing_stored(pg_stack, client):
            response = client.post(
                "/v1/models", files={"file": ("big.onnx", b"\0" * (5 * 2**20))}, data={"name": "big", "task": "t"}
            )
        refused(response, 413, "big.onnx", "limit")

    def test_task_type_that_does_not_fit_the_output(
        self, pg_stack: Stack, client: httpx.Client, source_files: list[SourceFile]
    ) -> None:
        with nothing_stored(pg_stack, client):
            response = upload_model(client, source_files[0], name="as_multiclass", task_type="multiclass", classes="4")
        refused(response, 422, "outputs 1 value", "multiclass task needs 4")

    def test_metadata_fields(self, pg_stack: Stack, client: httpx.Client, source_files: list[SourceFile]) -> None:
        with nothing_stored(pg_stack, client):
            no_name = client.post("/v1/models", files={"file": ("m.onnx", b"x")}, data={"task": "income"})
            bad_name = upload_model(client, source_files[0], name="has space")
            no_file = client.post("/v1/models", files={"other": ("m.onnx", b"x")}, data={"name": "a", "task": "t"})
            not_multipart = client.post("/v1/models", json={"name": "a"})
            unknown = upload_model(client, source_files[0], name="extra", colour="blue")
        refused(no_name, 422, "name: Field required")
        refused(bad_name, 422, "name", "pattern")
        refused(no_file, 422, "unexpected file field 'other'")
        refused(not_multipart, 400, "multipart/form-data")
        refused(unknown, 422, "unexpected field 'colour'")

    def test_a_taken_name(
        self, pg_stack: Stack, client: httpx.Client, sources: dict, source_files: list[SourceFile]
    ) -> None:
        with nothing_stored(pg_stack, client):
            response = upload_model(client, source_files[0], name=sources["income"]["name"])
        refused(response, 409, "exists already")

    def test_unknown_ids_answer_404(self, client: httpx.Client) -> None:
        missing = "00000000-0000-0000-0000-000000000000"
        for path in (f"/v1/models/{missing}", f"/v1/datasets/{missing}", f"/v1/fusion-jobs/{missing}"):
            assert client.get(path).status_code == 404
        assert client.delete(f"/v1/models/{missing}").status_code == 404


class TestDatasetUploads:
    @pytest.mark.parametrize(
        ("content", "filename", "words"),
        [
            (b"", "empty.csv", ["empty"]),
            ("a,b\né,1\n".encode("latin-1"), "latin.csv", ["not UTF-8", "0xe9"]),
            (b"a,b\n", "header.csv", ["no rows"]),
            (b"a,b\n1,x\n2,y\n", "text.csv", ["'b'", "not numeric"]),
            (b"a,b\n1,\n2,3\n", "gap.csv", ["'b'", "missing value", "label_columns"]),
            (b"a,b\n1,inf\n2,3\n", "inf.csv", ["'b'", "infinite"]),
            (b"a,a\n1,2\n", "twice.csv", ["'a'", "more than once"]),
            (b"a,b\n1,2\n", "fake.parquet", ["not one"]),
            (b"PAR1garbage", "broken.parquet", ["Parquet file 'broken.parquet' could not be read"]),
            (
                ",".join(f"c{i}" for i in range(61)).encode() + b"\n" + b",".join([b"1"] * 61),
                "wide.csv",
                ["61 columns"],
            ),
        ],
    )
    def test_unusable_tables(
        self, pg_stack: Stack, client: httpx.Client, content: bytes, filename: str, words: list[str]
    ) -> None:
        with nothing_stored(pg_stack, client):
            response = client.post("/v1/datasets", files={"file": (filename, content)})
        refused(response, 422, *words)

    def test_missing_labels_are_allowed_in_label_columns(
        self, pg_stack: Stack, client: httpx.Client, tmp_path: Path
    ) -> None:
        frame = pd.DataFrame({"x": [1, 2, 3], "income": [1.0, np.nan, 0.0]})
        with nothing_stored(pg_stack, client):
            refused(csv_upload(client, frame, tmp_path, "labels.csv"), 422, "'income'", "missing")
        response = csv_upload(client, frame, tmp_path, "labels.csv", label_columns="income")
        assert response.status_code == 201, response.text
        assert {c["name"]: c["missing"] for c in response.json()["columns"]} == {"x": 0, "income": 1}
        with nothing_stored(pg_stack, client):
            refused(csv_upload(client, frame, tmp_path, "l.csv", label_columns="incme"), 422, "'incme'")

    def test_a_file_over_the_size_limit(self, pg_stack: Stack, client: httpx.Client) -> None:
        body = b"a,b\n" + b"1,2\n" * (2**20 + 1)
        with nothing_stored(pg_stack, client):
            response = client.post("/v1/datasets", files={"file": ("huge.csv", body)})
        refused(response, 413, "huge.csv", "limit")


class TestJobSpecs:
    @pytest.fixture(scope="class")
    def datasets(self, client: httpx.Client, frames: dict, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
        folder = tmp_path_factory.mktemp("spec-data")
        train, validation = frames["train"], frames["validation"]
        variants = {
            "train": train,
            "validation": validation,
            "no_label": validation.drop(columns=["never_married"]),
            "bad_label": validation.assign(income=validation["income"] * 2),
            "big_ids": validation.assign(education=validation["education"] + 10_000),
            "no_feature": validation.drop(columns=["age"]),
        }
        ids = {}
        for name, frame in variants.items():
            response = csv_upload(client, frame, folder, f"{name}.csv")
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        return ids

    @pytest.fixture
    def spec(self, sources: dict, datasets: dict) -> dict:
        return {
            "name": "checks",
            "tasks": [
                {"name": "income", "models": [sources["income"]["id"]]},
                {"name": "never_married", "models": [sources["never_married"]["id"]]},
            ],
            "dataset_id": datasets["train"],
            "validation_dataset_id": datasets["validation"],
            "hyperparameters": {"max_epochs": 1},
        }

    def refused_job(self, stack: Stack, client: httpx.Client, spec: dict, *words: str) -> dict:
        with nothing_stored(stack, client):
            response = client.post("/v1/fusion-jobs", json=spec)
        return refused(response, 422, *words)

    def test_unknown_model_and_dataset(self, pg_stack: Stack, client: httpx.Client, spec: dict) -> None:
        missing = "00000000-0000-0000-0000-000000000000"
        spec["tasks"][0]["models"].append(missing)
        spec["validation_dataset_id"] = missing
        body = self.refused_job(pg_stack, client, spec, f"model {missing} does not exist", "validation dataset")
        assert body["detail"] == "the job spec has 2 problems"

    def test_labels_must_exist_and_fit_the_task(
        self, pg_stack: Stack, client: httpx.Client, spec: dict, datasets: dict
    ) -> None:
        spec["validation_dataset_id"] = datasets["no_label"]
        self.refused_job(pg_stack, client, spec, "lacks label column 'never_married'")
        spec["validation_dataset_id"] = datasets["bad_label"]
        self.refused_job(pg_stack, client, spec, "binary task 'income' must hold 0 or 1, found [2.0]")

    def test_every_model_input_must_be_fed(
        self, pg_stack: Stack, client: httpx.Client, spec: dict, datasets: dict
    ) -> None:
        spec["validation_dataset_id"] = datasets["no_feature"]
        self.refused_job(pg_stack, client, spec, "lacks column 'age'")
        spec["validation_dataset_id"] = datasets["big_ids"]
        self.refused_job(pg_stack, client, spec, "column 'education' has ids", "map unseen categories")

    def test_model_must_fit_the_task_type(self, pg_stack: Stack, client: httpx.Client, spec: dict) -> None:
        spec["tasks"][0]["type"] = "regression"
        self.refused_job(pg_stack, client, spec, "uploaded for a binary task; task 'income' is regression")
        spec["tasks"][0].update(type="multiclass", classes=3)
        self.refused_job(pg_stack, client, spec, "binary task; task 'income' is multiclass")

    def test_shape_of_the_spec(self, pg_stack: Stack, client: httpx.Client, spec: dict) -> None:
        with nothing_stored(pg_stack, client):
            both = client.post("/v1/fusion-jobs", json={**spec, "validation_fraction": 0.2})
            no_tasks = client.post("/v1/fusion-jobs", json={**spec, "tasks": []})
            heads = client.post("/v1/fusion-jobs", json={**spec, "hyperparameters": {"d_model": 10, "heads": 4}})
            twice = client.post("/v1/fusion-jobs", json={**spec, "tasks": [spec["tasks"][0], spec["tasks"][0]]})
        assert both.status_code == no_tasks.status_code == heads.status_code == 422
        assert "not both" in both.text and "multiple of heads" in heads.text
        refused(twice, 422, "task name 'income' is used twice", "listed more than once")

    def test_held_out_rows_must_not_be_the_training_rows(
        self, pg_stack: Stack, client: httpx.Client, spec: dict, datasets: dict
    ) -> None:
        """Field errors of the spec come as FastAPI's list of {loc, msg}: the message is in the answer's text."""
        refusals = {
            "validation_dataset_id": ("'validation_dataset_id' is the training dataset", "validation_fraction"),
            "test_dataset_id": ("'test_dataset_id' is the training dataset",),
        }
        with nothing_stored(pg_stack, client):
            answers = {
                field: client.post("/v1/fusion-jobs", json={**spec, field: datasets["train"]}) for field in refusals
            }
            huge_seed = client.post("/v1/fusion-jobs", json={**spec, "hyperparameters": {"seed": 10**30}})
        for field, words in refusals.items():
            assert answers[field].status_code == 422 and all(word in answers[field].text for word in words), field
        assert huge_seed.status_code == 422 and "beyond the 64-bit range (-2^63 to 2^63-1)" in huge_seed.text
