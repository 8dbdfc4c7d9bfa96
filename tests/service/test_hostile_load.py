"""Hostile load on the real stacks (issue 15): each class of attack gets its 4xx from the cheap checks that
come before any work, quickly, without the API's memory growing, while a health probe keeps answering.
For each: the answer, the time to answer, the API's RSS before and at its peak, and the probe's latencies
(service/attack_probe.py sends the request over a raw socket and probes meanwhile).

Input hygiene (NaN and Infinity, huge integers, control characters) runs on both stacks, since SQLite and
PostgreSQL fail differently on what gets through. (Job budgets, Parquet values and ONNX cost bombs are the
worker's and the intake's: tests/service/test_hostile.py and their own modules.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest

from service.attack_probe import Attack, FilePart, attack, filler, multipart, raw_request
from tests.helpers.jobs import CensusJob, CensusJobs
from tests.helpers.stacks import Stack

RSS_GROWTH_BYTES = 200 * 2**20
HEALTH_P99_S = 0.5
ANSWER_S = 2.0
MB = 2**20


def assert_cheap(outcome: Attack, status: int, *words: str) -> None:
    """The answer, with its words, came fast, cost no memory, and health kept answering meanwhile."""
    assert outcome.status == status, outcome.text
    for word in words:
        assert word.lower() in outcome.text.lower(), f"{word!r} not in {outcome.text!r}"
    assert outcome.seconds < ANSWER_S, f"answered after {outcome.seconds:.2f} s"
    assert outcome.rss_growth < RSS_GROWTH_BYTES, f"API RSS grew by {outcome.rss_growth / MB:.0f} MB"
    assert outcome.health_p99 < HEALTH_P99_S, f"health p99 {outcome.health_p99:.3f} s"


def send(stack: Stack, path: str, size: int, key: bool, method: str = "POST", **headers: str) -> Attack:
    """`size` bytes of JSON whitespace, declared in Content-Length; only what the server reads is sent."""
    auth = stack.headers if key else {}
    all_headers = {"Content-Type": "application/json", **auth, **headers}
    return attack(stack, lambda: raw_request(stack.port, method, path, all_headers, filler(size), size))


class TestBodiesBeforeChecks:
    """Issue 15, 1 and 2: no body is read before the key and the size limit are checked."""

    @pytest.mark.parametrize("path", ["/v1/fusion-jobs", "/v1/predict/census", "/v2/models/census/infer"])
    def test_a_huge_body_without_a_key_gets_its_401_from_the_headers(self, pg_stack: Stack, path: str) -> None:
        outcome = send(pg_stack, path, 320 * MB, key=False)
        assert_cheap(outcome, 401, "Authorization: Bearer")

    @pytest.mark.parametrize("path", ["/v1/predict/census", "/v2/models/census/versions/1/infer"])
    def test_a_gigabyte_with_a_key_gets_its_413_from_content_length(self, pg_stack: Stack, path: str) -> None:
        outcome = send(pg_stack, path, 2**30, key=True)
        assert_cheap(outcome, 413, "limit of 268,435,456 bytes", "Content-Length says 1,073,741,824")

    def test_a_json_body_past_its_limit_is_stopped_while_it_streams(self, pg_stack: Stack) -> None:
        headers = {"Content-Type": "application/json", **pg_stack.headers}
        # Chunked: no Content-Length to refuse it by, so the limit is counted as the bytes come in.
        outcome = attack(
            pg_stack, lambda: raw_request(pg_stack.port, "POST", "/v1/fusion-jobs", headers, filler(200 * MB))
        )
        assert_cheap(outcome, 413, "limit of 1,048,576 bytes", "while it streamed")

    def test_a_deployment_change_has_the_json_limit_too(self, pg_stack: Stack) -> None:
        outcome = send(pg_stack, "/v1/deployments/census/versions/1", 64 * MB, key=True, method="PATCH")
        assert_cheap(outcome, 413, "limit of 1,048,576 bytes")

    @pytest.mark.parametrize(
        ("path", "field", "fields"),
        [("/v1/models", "weights", {"name": "bomb", "task": "income"}), ("/v1/datasets", "file", {"name": "bomb"})],
    )
    def test_an_upload_without_a_key_stages_nothing(
        self, pg_stack: Stack, path: str, field: str, fields: dict[str, str]
    ) -> None:
        size = 1024 * MB
        headers, body, length = multipart(fields, FilePart(field, "bomb.bin", filler(size, b"\0"), size))
        staged_before = set((pg_stack.artifacts / "tmp").iterdir())
        outcome = attack(pg_stack, lambda: raw_request(pg_stack.port, "POST", path, headers, body, length))
        assert_cheap(outcome, 401, "API key")
        assert set((pg_stack.artifacts / "tmp").iterdir()) <= staged_before

    def test_an_upload_declared_over_its_limit_is_refused_before_it_is_staged(self, pg_stack: Stack) -> None:
        size = 1024 * MB  # the test stacks take datasets of 4 MiB
        headers, body, length = multipart({"name": "big"}, FilePart("file", "big.csv", filler(size, b"1"), size))
        outcome = attack(
            pg_stack,
            lambda: raw_request(pg_stack.port, "POST", "/v1/datasets", {**headers, **pg_stack.headers}, body, length),
        )
        assert_cheap(outcome, 413, "Content-Length says")


class TestInferenceBodies:
    def test_a_million_rows_are_refused_before_the_body_is_read(
        self, pg_stack: Stack, census_job_on_pg: CensusJob
    ) -> None:
        rows, path = 1_000_000, f"/v2/models/{census_job_on_pg.deployment}"
        with pg_stack.client() as client:
            inputs = client.get(path).json()["inputs"]
        dtypes = {"FP32": np.float32, "INT64": np.int64}
        data = [{"name": tensor["name"], "shape": [rows], "datatype": tensor["datatype"],
                 "data": np.zeros(rows, dtypes[tensor["datatype"]])} for tensor in inputs]  # fmt: skip
        body = orjson.dumps({"inputs": data}, option=orjson.OPT_SERIALIZE_NUMPY)  # every input: ~100 MB
        headers = {"Content-Type": "application/json", **pg_stack.headers}
        outcome = attack(pg_stack, lambda: raw_request(pg_stack.port, "POST", f"{path}/infer", headers, body, None))
        assert_cheap(outcome, 413, "1,000,000 rows are more than the limit of 100,000")

    def test_too_many_records_are_refused_before_they_are_parsed(
        self, pg_stack: Stack, census_job_on_pg: CensusJob
    ) -> None:
        body = b'{"records": [' + b",".join([b'{"age": 0}'] * 100_001) + b"]}"
        path = f"/v1/predict/{census_job_on_pg.deployment}"
        headers = {"Content-Type": "application/json", **pg_stack.headers}
        outcome = attack(pg_stack, lambda: raw_request(pg_stack.port, "POST", path, headers, body))
        assert_cheap(outcome, 413, "100,001 records are more than the limit of 100,000")

    def test_records_with_nan_are_refused_with_422(self, pg_stack: Stack, census_job_on_pg: CensusJob) -> None:
        with pg_stack.client() as client:
            answer = client.post(
                f"/v1/predict/{census_job_on_pg.deployment}",
                content=b'{"records": [{"age": NaN}]}',
                headers={"Content-Type": "application/json"},
            )
        assert answer.status_code == 422, answer.text
        body = answer.json()  # {"detail": ...}, or {"error": ...} where /v1/predict speaks like /v2
        assert "holds NaN" in body.get("error", body.get("detail")), body


@pytest.fixture(scope="module")
def census_job_on_pg(pg_stack: Stack, census_jobs: CensusJobs) -> CensusJob:
    return census_jobs.on(pg_stack)


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


JSON = {"Content-Type": "application/json"}
JOB = {"name": "hostile", "tasks": [{"name": "t", "models": ["00000000-0000-0000-0000-000000000000"]}],
       "dataset_id": "00000000-0000-0000-0000-000000000001", "validation_fraction": 0.1}  # fmt: skip


class TestInputHygiene:
    """Issue 15, 6 and 7, on both stacks: each a 4xx saying what to change, never a 500."""

    @pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
    def test_non_finite_numbers_in_a_job_spec(self, client: httpx.Client, constant: bytes) -> None:
        # A spec that fails validation elsewhere too: the 422 handler once failed writing the NaN back.
        body = orjson.dumps({**JOB, "tasks": [], "hyperparameters": {"learning_rate": 0.5}})
        answer = client.post("/v1/fusion-jobs", content=body.replace(b"0.5", constant), headers=JSON)
        assert answer.status_code == 422, answer.text
        assert constant.decode().lstrip("-") in answer.json()["detail"]

    def test_nan_in_a_deployment_change(self, client: httpx.Client) -> None:
        answer = client.patch("/v1/deployments/x/versions/1", content=b'{"max_batch_wait_ms": NaN}', headers=JSON)
        assert answer.status_code == 422, answer.text

    @pytest.mark.parametrize("seed", [10**30, 2**63, -(2**63) - 1])
    def test_seeds_beyond_64_bits(self, client: httpx.Client, seed: int) -> None:
        body = orjson.dumps({**JOB, "hyperparameters": {"seed": 7}}).replace(b"7", str(seed).encode())
        answer = client.post("/v1/fusion-jobs", content=body, headers=JSON)
        assert answer.status_code == 422, answer.text
        assert "64-bit" in answer.text

    @pytest.mark.parametrize("version", ["2147483648", "99999999999999999999999", "9" * 5000, "²", "-1"])
    @pytest.mark.parametrize(
        "template",
        ["/v2/models/census/versions/{}", "/v2/models/census/versions/{}/ready", "/v1/deployments/census/versions/{}"],
    )
    def test_versions_that_no_integer_column_holds(self, client: httpx.Client, template: str, version: str) -> None:
        answer = client.get(template.format(version))
        assert answer.status_code == 404, answer.text

    @pytest.mark.parametrize("version", ["2147483648", "99999999999999999999999"])
    def test_versions_on_the_routes_with_bodies(self, client: httpx.Client, version: str) -> None:
        infer = client.post(f"/v2/models/census/versions/{version}/infer", json={"inputs": []})
        change = client.patch(f"/v1/deployments/census/versions/{version}", json={"max_batch_size": 8})
        assert (infer.status_code, change.status_code) == (404, 404), infer.text + change.text

    @pytest.mark.parametrize(
        "path",
        ["/v2/models/a%00b/ready", "/v2/models/a%01b", "/v1/models?name=a%00", "/v1/datasets?name=%7F",
         "/v1/deployments?name=x%00y", "/v1/deployments/a%00/versions/1"],
    )  # fmt: skip
    def test_control_characters_in_paths_and_queries(self, client: httpx.Client, path: str) -> None:
        answer = client.get(path)
        assert answer.status_code == 422, answer.text
        assert "control character" in answer.text

    def test_control_characters_in_a_json_name(self, client: httpx.Client) -> None:
        answer = client.post("/v1/datasets", json={"uri": "x.parquet", "name": "a\x00b", "label_columns": []})
        assert answer.status_code == 422, answer.text
        assert "'body.name' holds the control character U+0000" in answer.text

    def test_a_nul_in_an_upload_file_name(self, stack: Stack, client: httpx.Client) -> None:
        # By hand: HTTP clients escape control characters in file names, an attacker's client need not.
        headers, body, length = multipart(
            {"name": "m", "task": "income"}, FilePart("file", "a\0.onnx", iter([b"x"]), 1)
        )
        answer = raw_request(stack.port, "POST", "/v1/models", {**headers, **stack.headers}, body, length)
        assert answer.status == 422, answer.body
        assert b"file name of field 'file'" in answer.body

    def test_a_nul_in_a_form_field(self, client: httpx.Client) -> None:
        answer = client.post("/v1/datasets", files={"file": ("t.csv", b"a,b\n1,2\n")}, data={"name": "d\x00"})
        assert answer.status_code == 422, answer.text
        assert "field 'name'" in answer.text

    def test_the_service_still_answers(self, client: httpx.Client) -> None:
        assert client.get("/v2/health/ready").json() == {"ready": True}


def test_staged_uploads_left_by_a_killed_api_are_removed_at_start(embedded_stack: Stack) -> None:
    scratch = embedded_stack.artifacts / "tmp"
    left, fresh = scratch / "upload-left-behind", scratch / "upload-in-flight"
    left.write_bytes(b"x" * 1024)
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200  # older than FUSEBOX_STAGED_UPLOAD_MAX_AGE_S's hour
    os.utime(left, (two_hours_ago, two_hours_ago))
    embedded_stack.restart_api()
    deadline = time.monotonic() + 60
    while left.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left.exists(), embedded_stack.logs()
    assert fresh.exists()
    fresh.unlink()
