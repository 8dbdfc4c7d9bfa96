"""Issue 15's hostile requests against a live stack, one at a time, each while a health probe runs.

    .venv/bin/python bench/hostile_load.py [--stack pg|embedded] [--only WORD,...] [--skip WORD,...]

Starts a stack (PostgreSQL + Redis by default, or the embedded defaults), uploads one small untrained
Census model and the Census sample data, and runs a one-epoch fusion job so that `census` is deployed. Then
the workers are stopped, so that a job the API wrongly accepts is never run, and every probe is sent
(service/attack_probe.py: raw sockets, declared bodies sent only as far as the server reads them, health
probed every 20 ms, the API's RSS sampled alongside). An API that an earlier probe left over 100 MB above
its RSS after the set-up is restarted first, so that each row's growth is its own.

Prints one row per probe: status, seconds to answer, peak API RSS, its growth over the RSS before, health
p99 during it, and PASS/FAIL against: the expected 4xx (a 2xx for the valid 1 GB weights file), within 2 s
(4xx rows), API RSS growth under 200 MB, health p99 under 0.5 s. Writes bench/results/hostile_load.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fusion.data.census import load_census, subsample  # noqa: E402
from fusion.zoo import build_single_task_model, export_onnx  # noqa: E402
from service.attack_probe import Answer, Attack, FilePart, attack, filler, multipart, raw_request  # noqa: E402
from service.client import FuseboxClient, JobSpec, JobTaskSpec  # noqa: E402
from service.local_databases import fresh_postgres, fresh_redis  # noqa: E402
from service.local_stack import LocalStack  # noqa: E402
from tests.helpers.amplifiers import chained_matmuls, constant_of_shape_bomb  # noqa: E402

RESULTS = ROOT / "bench" / "results"
MB = 2**20
ANSWER_S, RSS_GROWTH, HEALTH_P99_S = 2.0, 200 * MB, 0.5
DEPLOYMENT = "census"
RESTART_ABOVE = 100 * MB
"""The API is restarted before a probe when earlier ones left it this much above its RSS after the set-up."""


@dataclass
class Target:
    """What the probes need of the stack: its processes, and the ids the setup created."""

    stack: LocalStack
    model_id: str
    dataset_id: str
    folder: Path

    def json_headers(self, key: bool = True) -> dict[str, str]:
        return {"Content-Type": "application/json", **(self.stack.headers if key else {})}

    def send(self, method: str, path: str, headers: dict[str, str], body: Iterator[bytes] | bytes, length: int | None
             ) -> Answer:  # fmt: skip
        return raw_request(self.stack.port, method, path, headers, body, length, timeout_s=300)

    def upload(self, path: str, fields: dict[str, str], field: str, filename: str, content: bytes, key: bool = True
               ) -> Answer:  # fmt: skip
        headers, body, length = multipart(fields, FilePart(field, filename, iter([content]), len(content)))
        return self.send("POST", path, {**headers, **(self.stack.headers if key else {})}, body, length)


@dataclass(frozen=True)
class Probe:
    name: str
    expected: frozenset[int]
    prepare: Callable[[Target], Callable[[], Answer]]
    """Builds the request (untimed), and returns what sends it (timed, with the health probe running)."""
    owner: str = "hostile"
    """The helper whose work makes it pass: rows of others may FAIL until their branches are merged."""


Prepare = Callable[[Target], Callable[[], Answer]]


def _huge_body(path: str, size: int, key: bool, method: str = "POST") -> Prepare:
    return lambda target: lambda: target.send(method, path, target.json_headers(key), filler(size), size)


def _chunked(path: str, size: int) -> Prepare:
    return lambda target: lambda: target.send("POST", path, target.json_headers(), filler(size), None)


def _upload_without_key(path: str, field: str, size: int, fields: dict[str, str]) -> Prepare:
    def prepare(target: Target) -> Callable[[], Answer]:
        headers, body, length = multipart(fields, FilePart(field, "bomb.bin", filler(size, b"\0"), size))
        return lambda: target.send("POST", path, headers, body, length)

    return prepare


def _oip_rows(rows: int, binary: bool) -> Prepare:
    """Every input of the deployed model with `rows` zeros: ~100 MB of JSON, or ~160 MB of binary tensors."""

    def prepare(target: Target) -> Callable[[], Answer]:
        path = f"/v2/models/{DEPLOYMENT}"
        with target.stack.client() as client:
            inputs = client.get(path).json()["inputs"]
        arrays = {item["name"]: np.zeros(rows, {"FP32": np.float32, "INT64": np.int64}[item["datatype"]])
                  for item in inputs}  # fmt: skip
        tensors = [{"name": item["name"], "shape": [rows], "datatype": item["datatype"]} for item in inputs]
        headers = target.json_headers()
        if binary:
            for tensor in tensors:
                tensor["parameters"] = {"binary_data_size": arrays[tensor["name"]].nbytes}
            header = orjson.dumps({"inputs": tensors})
            headers |= {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
            body = header + b"".join(array.tobytes() for array in arrays.values())
        else:
            for tensor in tensors:
                tensor["data"] = arrays[tensor["name"]]
            body = orjson.dumps({"inputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
        return lambda: target.send("POST", f"{path}/infer", headers, body, None)

    return prepare


def _job(hyperparameters: dict[str, object], raw: bytes | None = None) -> Prepare:
    def prepare(target: Target) -> Callable[[], Answer]:
        return partial(_send_job, target, hyperparameters, raw)

    return prepare


def _send_job(target: Target, hyperparameters: dict[str, object], raw: bytes | None) -> Answer:
    tasks = [{"name": "income", "models": [target.model_id]}]
    spec = {"name": "hostile", "tasks": tasks, "dataset_id": target.dataset_id, "validation_fraction": 0.1,
            "hyperparameters": hyperparameters}  # fmt: skip
    body = orjson.dumps(spec)
    if raw is not None:  # a literal JSON has no way to write: NaN, or an integer beyond 64 bits
        body = body.replace(b'"@"', raw)
    answer = target.send("POST", "/v1/fusion-jobs", target.json_headers(), body, None)
    if answer.status == 202:  # accepted where it should not be: never leave it queued
        with target.stack.client() as client:
            client.post(f"/v1/fusion-jobs/{orjson.loads(answer.body)['id']}/cancel")
    return answer


def _get(path: str) -> Prepare:
    return lambda target: lambda: target.send("GET", path, target.stack.headers, b"", None)


def _onnx_upload(build: Callable[[Target], tuple[bytes, bytes | None]]) -> Prepare:
    def prepare(target: Target) -> Callable[[], Answer]:
        model, weights = build(target)
        fields = {"name": f"hostile-{time.monotonic_ns()}", "task": "income"}
        files = [FilePart("file", "model.onnx", iter([model]), len(model))]
        if weights is not None:  # the 1 GB file: written once, then streamed from disk
            weights_path = target.folder / "model.onnx.data"
            weights_path.write_bytes(weights)
            files.append(FilePart("weights", weights_path.name, _file_chunks(weights_path), len(weights)))
        headers, body, length = multipart(fields, *files)
        return lambda: target.send("POST", "/v1/models", {**headers, **target.stack.headers}, body, length)

    return prepare


def _file_chunks(path: Path) -> Iterator[bytes]:
    """The file's bytes a MiB at a time; the file is removed once read."""
    with path.open("rb") as handle:
        while chunk := handle.read(MB):
            yield chunk
    path.unlink()


def _amplifier(build: Callable[[], onnx.ModelProto]) -> Callable[[Target], tuple[bytes, None]]:
    """A model of a kilobyte or less that asks whoever runs it for far more (tests/helpers/amplifiers.py)."""
    return lambda _: (build().SerializeToString(), None)


def _gigabyte_of_weights(_: Target) -> tuple[bytes, bytes]:
    """A valid model: an embedding table of 1 GB (2^24 ids x 16 floats) in model.onnx.data."""
    rows, width = 2**24, 16
    table = onnx.TensorProto(name="table", data_type=TensorProto.FLOAT, dims=[rows, width])
    table.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "model.onnx.data"), ("offset", "0"), ("length", str(rows * width * 4))):
        table.external_data.add(key=key, value=value)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "id"], ["vectors"]),
         helper.make_node("ReduceSum", ["vectors", "axes"], ["summed"], keepdims=0),
         helper.make_node("Sigmoid", ["summed"], ["score"])],
        "weights",
        [helper.make_tensor_value_info("id", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        [table, axes],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    weights = np.random.default_rng(0).standard_normal((rows, width), np.float32).tobytes()
    return model.SerializeToString(), weights


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def _parquet_upload(build: Callable[[], pa.Table]) -> Prepare:
    def prepare(target: Target) -> Callable[[], Answer]:
        content = _parquet(build())
        return lambda: target.upload("/v1/datasets", {"name": "hostile"}, "file", "bomb.parquet", content)

    return prepare


def _nested_zeros() -> pa.Table:
    zeros = pa.array(np.zeros(2 * 10**8, np.int8))
    offsets = pa.array(np.array([0, len(zeros)], np.int32))
    return pa.table({"x": [1.0], "tags": pa.ListArray.from_arrays(offsets, zeros)})


def _huge_string() -> pa.Table:
    return pa.table({"x": [1.0], "note": ["a" * (500 * MB)]})


PREDICT, INFER = f"/v1/predict/{DEPLOYMENT}", f"/v2/models/{DEPLOYMENT}/infer"
HUGE_SPEC = {"batch_size": 1_000_000, "d_model": 1024, "heads": 64, "levels": 16, "tower_hidden": 4096}
PROBES = [
    Probe("no key, 320 MB JSON to /v1/fusion-jobs", frozenset({401}), _huge_body("/v1/fusion-jobs", 320 * MB, False)),
    Probe("no key, 320 MB JSON to /v1/predict", frozenset({401}), _huge_body(PREDICT, 320 * MB, False)),
    Probe("no key, 320 MB to /v2 infer", frozenset({401}), _huge_body(INFER, 320 * MB, False)),
    Probe("key, 1 GB to /v1/predict", frozenset({413}), _huge_body(PREDICT, 2**30, True)),
    Probe("key, 1 GB to /v2 infer", frozenset({413}), _huge_body(INFER, 2**30, True)),
    Probe("key, 200 MB chunked to /v1/fusion-jobs", frozenset({413}), _chunked("/v1/fusion-jobs", 200 * MB)),
    Probe("key, 64 MB PATCH deployment", frozenset({413}),
          _huge_body(f"/v1/deployments/{DEPLOYMENT}/versions/1", 64 * MB, True, "PATCH")),
    Probe("10^6-row OIP JSON request", frozenset({413}), _oip_rows(10**6, binary=False)),
    Probe("10^6-row OIP binary request", frozenset({413}), _oip_rows(10**6, binary=True)),
    Probe("no key, 1 GB weights upload", frozenset({401}),
          _upload_without_key("/v1/models", "weights", 2**30, {"name": "bomb", "task": "income"})),
    Probe("no key, 300 MB dataset upload", frozenset({401}),
          _upload_without_key("/v1/datasets", "file", 300 * MB, {"name": "bomb"})),
    Probe("learning_rate NaN in a failing spec", frozenset({422}), _job({"learning_rate": "@", "heads": 3}, b"NaN")),
    Probe("learning_rate Infinity", frozenset({422}), _job({"learning_rate": "@"}, b"Infinity")),
    Probe("seed 10^30", frozenset({422}), _job({"seed": "@"}, str(10**30).encode())),
    Probe("version 2147483648 (ready)", frozenset({404}), _get(f"/v2/models/{DEPLOYMENT}/versions/2147483648/ready")),
    Probe("version 10^23 (deployment)", frozenset({404}),
          _get(f"/v1/deployments/{DEPLOYMENT}/versions/99999999999999999999999")),
    Probe("NUL in a model name path", frozenset({422}), _get("/v2/models/a%00b/ready")),
    Probe("NUL in ?name=", frozenset({422}), _get("/v1/models?name=a%00")),
    Probe("NUL in a model file name", frozenset({422}),
          lambda t: lambda: t.upload("/v1/models", {"name": "m", "task": "income"}, "file", "a\0.onnx", b"x")),
    Probe("NUL in a dataset name", frozenset({422}),
          lambda t: lambda: t.upload("/v1/datasets", {"name": "d\0"}, "file", "t.csv", b"a,b\n1,2\n")),
    Probe("job over the memory budget", frozenset({422}), _job(HUGE_SPEC), owner="budget"),
    Probe("Parquet list<int8> of 2x10^8 zeros", frozenset({422}), _parquet_upload(_nested_zeros), owner="datasets"),
    Probe("Parquet with one 500 MB string", frozenset({422}), _parquet_upload(_huge_string), owner="datasets"),
    Probe("ONNX ConstantOfShape 20000x20000", frozenset({422}), _onnx_upload(_amplifier(constant_of_shape_bomb)),
          owner="intake-budget"),
    Probe("ONNX 40 chained 3000x3000 MatMuls", frozenset({422}), _onnx_upload(_amplifier(chained_matmuls)),
          owner="intake-budget"),
    Probe("valid 1 GB weights file", frozenset({201}), _onnx_upload(_gigabyte_of_weights),
          owner="intake-budget"),
]  # fmt: skip


def verdict(probe: Probe, outcome: Attack) -> list[str]:
    """What failed, in words; empty when the row passes."""
    failed = []
    if outcome.status not in probe.expected:
        failed.append(f"status {outcome.status}")
    if 400 <= outcome.status < 500 and outcome.seconds >= ANSWER_S:
        failed.append(f">= {ANSWER_S:g} s")
    if outcome.rss_growth >= RSS_GROWTH:
        failed.append(f"RSS +{outcome.rss_growth / MB:.0f} MB")
    if outcome.health_p99 >= HEALTH_P99_S:
        failed.append(f"health p99 {outcome.health_p99:.2f} s")
    return failed


def set_up(stack: LocalStack, folder: Path) -> Target:
    """One untrained Census MLP, the Census sample as train and validation, `census` deployed by a one-epoch job."""
    census = subsample(load_census(), rows=20_000, seed=0)
    task = next(task for task in census.tasks if task.name == "income")
    model = build_single_task_model("mlp", census.schema, task, hidden=(16, 8))
    source = export_onnx(model, census.schema, task, folder / "income_mlp.onnx", dynamo=False)
    census.train.to_parquet(folder / "train.parquet", index=False)
    census.validation.to_parquet(folder / "validation.parquet", index=False)
    with FuseboxClient(stack.url, api_key=stack.api_key, timeout_s=300) as client:
        uploaded = client.upload_model(source, name="income_mlp", task="income")
        train = client.upload_dataset(folder / "train.parquet", name="train", label_columns=["income"])
        validation = client.upload_dataset(folder / "validation.parquet", name="validation", label_columns=["income"])
        spec = JobSpec(
            name=DEPLOYMENT,
            tasks=[JobTaskSpec(name="income", models=[uploaded.id])],
            dataset_id=train.id,
            validation_dataset_id=validation.id,
            hyperparameters={"max_epochs": 1, "batch_size": 1024},
        )
        job = client.wait_for_job(client.create_job(spec).id, poll_interval_s=0.5, timeout_s=900)
        if job.status != "succeeded":
            sys.exit(f"the set-up job {job.status}: {job.error}")
    return Target(stack, str(uploaded.id), str(train.id), folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", choices=["pg", "embedded"], default="pg")
    parser.add_argument("--only", default="", help="Comma-separated words: run the probes whose name has one.")
    parser.add_argument("--skip", default="", help="Comma-separated words: leave out the probes whose name has one.")
    arguments = parser.parse_args()
    only = [word.lower() for word in arguments.only.split(",") if word]
    skip = [word.lower() for word in arguments.skip.split(",") if word]
    probes = [
        probe for probe in PROBES
        if (not only or any(word in probe.name.lower() for word in only))
        and not any(word in probe.name.lower() for word in skip)
    ]  # fmt: skip
    rows = []
    with ExitStack() as resources:
        folder = Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="fusebox-hostile-")))
        database_url = broker_url = None
        if arguments.stack == "pg":
            database_url = resources.enter_context(fresh_postgres())
            broker_url = resources.enter_context(fresh_redis())
        stack = resources.enter_context(
            LocalStack.start(folder / "stack", database_url, broker_url or "filesystem://", log_level="warning")
        )
        print(f"setting up on {arguments.stack} ...", flush=True)
        target = set_up(stack, folder)
        stack.kill_workers()  # a job accepted by mistake is never run
        baseline = stack.resident_bytes()
        for probe in probes:
            if stack.resident_bytes() > baseline + RESTART_ABOVE:
                stack.restart_api()  # what an earlier probe left in memory would hide what this one costs
            try:
                outcome = attack(stack, probe.prepare(target))
            except (OSError, ConnectionError) as error:
                print(f"{probe.name}: no answer ({error})", flush=True)
                rows.append({"probe": probe.name, "owner": probe.owner, "error": str(error), "pass": False})
                continue
            failed = verdict(probe, outcome)
            row = {
                "probe": probe.name, "owner": probe.owner, "status": outcome.status,
                "seconds": round(outcome.seconds, 3), "peak_rss_mb": round(outcome.rss_peak / MB),
                "rss_growth_mb": round(outcome.rss_growth / MB), "health_p99_s": round(outcome.health_p99, 3),
                "pass": not failed, "why": ", ".join(failed), "answer": outcome.text[:160],
            }  # fmt: skip
            rows.append(row)
            print(f"{probe.name}: {outcome.status} in {outcome.seconds:.2f} s {failed or 'PASS'}", flush=True)
    _print_table(rows, arguments.stack)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile_load.json").write_text(json.dumps({"stack": arguments.stack, "rows": rows}, indent=2))


def _print_table(rows: list[dict[str, object]], stack: str) -> None:
    print(f"\nhostile load on the {stack} stack: 4xx within {ANSWER_S:g} s, API RSS growth < "
          f"{RSS_GROWTH // MB} MB, health p99 < {HEALTH_P99_S:g} s\n")  # fmt: skip
    header = f"| {'probe':<40} | status | seconds | peak API RSS | growth | health p99 | {'result':<28} | fixed by |"
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:-1]) + "|")
    for row in rows:
        if "error" in row:
            blank = " |" * 5
            print(f"| {row['probe']:<40} | none{blank} FAIL (no answer) | {row['owner']} |")
            continue
        result = "PASS" if row["pass"] else f"FAIL ({row['why']})"
        result = f"{result:<28}"
        print(
            f"| {row['probe']:<40} | {row['status']:>6} | {row['seconds']:>7.2f} | {row['peak_rss_mb']:>9} MB "
            f"| {row['rss_growth_mb']:>3} MB | {row['health_p99_s']:>8.3f} s | {result} | {row['owner']} |"
        )


if __name__ == "__main__":
    main()
