"""FuseboxClient: every endpoint of the API as a typed method; errors raised as exceptions."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel

from service.client.errors import ApiError, ServiceUnreachable
from service.client.schemas import (
    Dataset,
    DeployedModel,
    DeploymentBatching,
    InferenceInput,
    InferenceResult,
    Job,
    JobSpec,
    JobStatus,
    ModelMetadata,
    Prediction,
    ServerEvent,
    ServerMetadata,
    SourceModel,
    TaskType,
)
from service.client.sse import parse_events

DEFAULT_URL = "http://127.0.0.1:8000"
Answer = TypeVar("Answer", bound=BaseModel)
Id = uuid.UUID | str


class FuseboxClient:
    """A synchronous client; use it as a context manager, or call close().

    `url` and `api_key` default to the environment's FUSEBOX_URL and FUSEBOX_API_KEY. The key travels
    as `Authorization: Bearer <key>`.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.url = (url or os.environ.get("FUSEBOX_URL") or DEFAULT_URL).rstrip("/")
        api_key = api_key or os.environ.get("FUSEBOX_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # Source models

    def upload_model(
        self,
        path: str | Path,
        name: str,
        task: str,
        task_type: TaskType = "binary",
        classes: int | None = None,
        weights: str | Path | None = None,
    ) -> SourceModel:
        """`weights` is the companion file PyTorch's exporter writes beside the model (model.onnx.data)."""
        fields = {"name": name, "task": task, "task_type": task_type}
        if classes is not None:
            fields["classes"] = str(classes)
        files = {"file": Path(path)} | ({"weights": Path(weights)} if weights is not None else {})
        return self._upload("/v1/models", files, fields, SourceModel)

    def list_models(self, name: str | None = None, limit: int = 50, offset: int = 0) -> list[SourceModel]:
        params = {"limit": limit, "offset": offset} | ({"name": name} if name else {})
        items = self._json("GET", "/v1/models", params=params)["items"]
        return [SourceModel.model_validate(item) for item in items]

    def get_model(self, model_id: Id) -> SourceModel:
        return SourceModel.model_validate(self._json("GET", f"/v1/models/{model_id}"))

    def delete_model(self, model_id: Id) -> None:
        self._send("DELETE", f"/v1/models/{model_id}")

    # Datasets

    def upload_dataset(self, path: str | Path, name: str | None = None, label_columns: Sequence[str] = ()) -> Dataset:
        """CSV (with a header row) or Parquet; `label_columns` may have missing values."""
        fields = {"label_columns": ",".join(label_columns)} | ({"name": name} if name else {})
        return self._upload("/v1/datasets", {"file": Path(path)}, fields, Dataset)

    def add_dataset(self, uri: str, name: str | None = None, label_columns: Sequence[str] = ()) -> Dataset:
        """Register Parquet files in place by reference: a file, folder or glob under the server's data root
        (FUSEBOX_DATA_ROOT), or an s3:// or gs:// URL (the server's cloud extra). Nothing is uploaded; a job
        fails if the files change after this."""
        body = {"uri": uri, "label_columns": list(label_columns)} | ({"name": name} if name else {})
        return Dataset.model_validate(self._json("POST", "/v1/datasets", json=body))

    def list_datasets(self, limit: int = 50, offset: int = 0) -> list[Dataset]:
        items = self._json("GET", "/v1/datasets", params={"limit": limit, "offset": offset})["items"]
        return [Dataset.model_validate(item) for item in items]

    def get_dataset(self, dataset_id: Id) -> Dataset:
        return Dataset.model_validate(self._json("GET", f"/v1/datasets/{dataset_id}"))

    # Fusion jobs

    def create_job(self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None) -> Job:
        """With an `idempotency_key` (any unique string), a retry of the same spec returns the first job
        instead of starting a second one."""
        body = JobSpec.model_validate(spec).model_dump(mode="json", exclude_unset=True, exclude_none=True)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return Job.model_validate(self._json("POST", "/v1/fusion-jobs", json=body, headers=headers))

    def list_jobs(self, status: JobStatus | None = None, limit: int = 50, offset: int = 0) -> list[Job]:
        params = {"limit": limit, "offset": offset} | ({"status": status} if status else {})
        return [Job.model_validate(item) for item in self._json("GET", "/v1/fusion-jobs", params=params)["items"]]

    def get_job(self, job_id: Id) -> Job:
        return Job.model_validate(self._json("GET", f"/v1/fusion-jobs/{job_id}"))

    def cancel_job(self, job_id: Id) -> Job:
        return Job.model_validate(self._json("POST", f"/v1/fusion-jobs/{job_id}/cancel"))

    def download_model(self, job_id: Id, destination: str | Path) -> Path:
        """Streams the fused ONNX file to `destination`, which is written only once the download is whole."""
        return self._download(f"/v1/fusion-jobs/{job_id}/model", Path(destination))

    def job_events(self, job_id: Id) -> Iterator[ServerEvent]:
        """The job's server-sent events, as they come, until the server ends the stream."""
        headers = {"Accept": "text/event-stream"}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._stream("GET", f"/v1/fusion-jobs/{job_id}/events", headers=headers, timeout=timeout) as response:
            yield from parse_events(response.iter_lines())

    def watch_job(self, job_id: Id) -> Iterator[Job]:
        """The job now, then again after each change its server-sent events announce, until it has finished
        (or the server ended the stream): one request for the whole run, where polling makes one a second."""
        state = self.get_job(job_id).model_dump(mode="json")
        seen = Job.model_validate(state)
        yield seen
        for event in self.job_events(job_id):
            if event.event == "done":
                state = event.data
            elif event.event == "epoch":
                others = [entry for entry in state["metrics"] if entry["epoch"] != event.data["epoch"]]
                state["metrics"] = sorted([*others, event.data], key=lambda entry: entry["epoch"])
            elif event.event in ("status", "progress"):
                state.update(event.data)
            job = Job.model_validate(state)
            if job != seen:
                seen = job
                yield job

    def wait_for_job(
        self,
        job_id: Id,
        on_update: Callable[[Job], None] | None = None,
        poll_interval_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> Job:
        """Polls until the job has finished and returns it, whatever its end; `on_update` sees every
        change (status, stage, progress, epoch metrics). Raises TimeoutError after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        previous = None
        while True:
            job = self.get_job(job_id)
            if on_update is not None and job != previous:
                on_update(job)
            if job.finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout_s:.0f}s")
            previous = job
            time.sleep(poll_interval_s)

    # Deployments

    def list_deployments(self, name: str | None = None, limit: int = 50, offset: int = 0) -> list[DeployedModel]:
        params = {"limit": limit, "offset": offset} | ({"name": name} if name else {})
        items = self._json("GET", "/v1/deployments", params=params)["items"]
        return [DeployedModel.model_validate(item) for item in items]

    def deployment_batching(self, name: str, version: int) -> DeploymentBatching:
        return DeploymentBatching.model_validate(self._json("GET", f"/v1/deployments/{name}/versions/{version}"))

    def set_deployment_batching(self, name: str, version: int, **changes: float | None) -> DeploymentBatching:
        """max_batch_size and/or max_batch_wait_ms; None returns a field to the service's setting."""
        path = f"/v1/deployments/{name}/versions/{version}"
        return DeploymentBatching.model_validate(self._json("PATCH", path, json=changes))

    def export_deployment(
        self,
        name: str,
        version: int,
        destination: str | Path,
        format: Literal["triton", "kserve"] = "triton",
        storage_uri: str | None = None,
    ) -> Path:
        """Saves the deployment for another serving engine: `triton`, a tar.gz model repository
        (`<name>/config.pbtxt`, `<name>/<version>/model.onnx`); `kserve`, an InferenceService manifest (YAML)
        whose storageUri is `storage_uri` (default: a placeholder), for that repository unpacked."""
        path = f"/v1/deployments/{name}/versions/{version}/{format}"
        params = {"storage_uri": storage_uri} if storage_uri is not None and format == "kserve" else None
        return self._download(path, Path(destination), params=params)

    # Inference: Open Inference Protocol v2, and records in, predictions out

    def server_metadata(self) -> ServerMetadata:
        return ServerMetadata.model_validate(self._json("GET", "/v2"))

    def server_live(self) -> bool:
        return bool(self._json("GET", "/v2/health/live")["live"])

    def server_ready(self) -> bool:
        return bool(self._json("GET", "/v2/health/ready")["ready"])

    def model_metadata(self, name: str, version: str | int | None = None) -> ModelMetadata:
        return ModelMetadata.model_validate(self._json("GET", _deployment_path(name, version)))

    def model_ready(self, name: str, version: str | int | None = None) -> bool:
        return bool(self._json("GET", f"{_deployment_path(name, version)}/ready")["ready"])

    def infer(
        self,
        name: str,
        inputs: Sequence[InferenceInput | Mapping[str, Any]],
        outputs: Sequence[str] | None = None,
        version: str | int | None = None,
        request_id: str | None = None,
    ) -> InferenceResult:
        """One input per feature column; `outputs` picks tasks (default: all). No version: the newest."""
        body: dict[str, Any] = {
            "inputs": [InferenceInput.model_validate(item).model_dump() for item in inputs],
        }
        if outputs is not None:
            body["outputs"] = [{"name": output} for output in outputs]
        if request_id is not None:
            body["id"] = request_id
        return InferenceResult.model_validate(self._json("POST", f"{_deployment_path(name, version)}/infer", json=body))

    def predict(self, name: str, records: Sequence[Mapping[str, Any]]) -> Prediction:
        """Rows as column -> value mappings; the newest version of `name` answers."""
        return Prediction.model_validate(self._json("POST", f"/v1/predict/{name}", json={"records": list(records)}))

    # Transport

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self._send(method, path, **options).json()

    def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        with self._stream(method, path, **options) as response:
            response.read()
        return response

    @contextmanager
    def _stream(self, method: str, path: str, **options: Any) -> Iterator[httpx.Response]:
        """A streamed response, checked for an error status before its body is read."""
        try:
            with self._http.stream(method, path, **options) as response:
                if response.is_error:
                    response.read()
                    raise ApiError.from_response(response)
                yield response
        except httpx.TransportError as error:
            raise ServiceUnreachable(f"{method} {self.url}{path}: {type(error).__name__}: {error}") from error

    def _download(self, path: str, destination: Path, **options: Any) -> Path:
        """Streams an answer to `destination`, which is written only once the download is whole."""
        partial = destination.with_name(destination.name + ".part")
        with self._stream("GET", path, **options) as response, partial.open("wb") as out:
            for chunk in response.iter_bytes():
                out.write(chunk)
        return partial.replace(destination)

    def _upload(self, path: str, files: Mapping[str, Path], fields: Mapping[str, str], answer: type[Answer]) -> Answer:
        """Multipart with the files streamed from disk, not read into memory."""
        with ExitStack() as opened:
            parts = {field: (file.name, opened.enter_context(file.open("rb"))) for field, file in files.items()}
            return answer.model_validate(self._json("POST", path, files=parts, data=dict(fields)))


def _deployment_path(name: str, version: str | int | None) -> str:
    return f"/v2/models/{name}" + (f"/versions/{version}" if version is not None else "")
