"""Multipart uploads streamed straight into the artifact store's staging area.

Starlette would spool a whole upload before the route runs, with no size limit. Here each file part is
written chunk by chunk into a staged file that hashes as it goes and stops the upload as soon as a
limit is crossed, so a large upload never sits whole in memory and an oversized one is refused early.
Staged files are removed when the request ends unless the route adopted them into the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from service.core.config import Settings, get_settings
from service.core.errors import BadRequest, TooLarge, Unprocessable
from service.core.hygiene import refuse_control_characters
from service.core.storage import ArtifactStore, SizeLimitExceeded, StagedFile, get_store

if TYPE_CHECKING:  # python-multipart defines its callbacks' TypedDict for type checkers only
    from python_multipart.multipart import MultipartCallbacks

MAX_TEXT_FIELD_BYTES = 64 * 1024
FormModel = TypeVar("FormModel", bound=BaseModel)


@dataclass
class UploadForm:
    """The text fields and staged files of one multipart request."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, StagedFile] = field(default_factory=dict)


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    text: bytearray = field(default_factory=bytearray)
    staged: StagedFile | None = None


class _FormReader:
    """python-multipart's callbacks, collecting text fields and queueing file chunks for the caller to write."""

    def __init__(self, file_limits: dict[str, int], text_fields: frozenset[str], store: ArtifactStore) -> None:
        self.file_limits = file_limits
        self.text_fields = text_fields
        self.store = store
        self.stack = ExitStack()
        self.form = UploadForm()
        self.pending: list[tuple[StagedFile, bytes]] = []
        self._part = _Part()
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._on_part_begin,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
        }

    def _on_part_begin(self) -> None:
        self._part = _Part()
        self._disposition = b""

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", errors="replace")
        part = self._part
        part.name = name
        if b"filename" in options:
            if name not in self.file_limits:
                raise Unprocessable(f"unexpected file field '{name}'; expected {_names(self.file_limits)}")
            if name in self.form.files:
                raise Unprocessable(f"file field '{name}' was sent twice")
            part.filename = options[b"filename"].decode("utf-8", errors="replace")
            refuse_control_characters(part.filename, f"the file name of field '{name}'")
            part.staged = self.stack.enter_context(self.store.stage(limit=self.file_limits[name]))
            part.staged.filename = part.filename
        elif name in self.file_limits:
            raise Unprocessable(f"field '{name}' must be a file: send it as a file part with a filename")
        elif name not in self.text_fields:
            raise Unprocessable(
                f"unexpected field '{name}'; expected {_names(self.text_fields | set(self.file_limits))}"
            )

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.staged is not None:
            self.pending.append((part.staged, data[start:end]))
            return
        part.text += data[start:end]
        if len(part.text) > MAX_TEXT_FIELD_BYTES:
            raise TooLarge(f"field '{part.name}' is longer than {MAX_TEXT_FIELD_BYTES:,} bytes")

    def _on_part_end(self) -> None:
        part = self._part
        if part.staged is not None:
            self.form.files[part.name] = part.staged
            return
        try:
            text = part.text.decode("utf-8")
        except UnicodeDecodeError:
            raise Unprocessable(f"field '{part.name}' is not UTF-8 text") from None
        refuse_control_characters(text, f"field '{part.name}'")
        self.form.fields[part.name] = text

    async def write_pending(self) -> None:
        """File chunks go to disk in a worker thread, so that the event loop never waits on the disk."""
        for staged, chunk in self.pending:
            try:
                await run_in_threadpool(staged.write, chunk)
            except SizeLimitExceeded as error:
                raise TooLarge(
                    f"the file '{staged.filename}' is larger than the limit of {_size(error.limit)}"
                ) from None
        self.pending.clear()


async def read_form(
    request: Request, store: ArtifactStore, file_limits: dict[str, int], text_fields: frozenset[str], stack: ExitStack
) -> UploadForm:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise BadRequest("send the upload as multipart/form-data (curl -F ...)")
    reader = _FormReader(file_limits, text_fields, store)
    stack.enter_context(reader.stack)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await reader.write_pending()
        parser.finalize()
    except MultipartParseError as error:
        raise BadRequest(f"the multipart body could not be parsed: {error}") from None
    return reader.form


def form_dependency(
    file_limits: Callable[[Settings], dict[str, int]], text_fields: frozenset[str]
) -> Callable[..., AsyncIterator[UploadForm]]:
    """A dependency reading a multipart form with these file fields (and their byte limits) and text fields."""

    async def dependency(request: Request) -> AsyncIterator[UploadForm]:
        with ExitStack() as stack:
            yield await read_form(request, get_store(), file_limits(get_settings()), text_fields, stack)

    return dependency


def form_fields(model: type[FormModel], form: UploadForm) -> FormModel:
    """The form's text fields, validated; every problem named with its field."""
    return _validated(model, form.fields)


async def json_fields(model: type[FormModel], request: Request) -> FormModel:
    """A small JSON body (the size of a form's text fields at most), validated like `form_fields`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_TEXT_FIELD_BYTES:
            raise TooLarge(f"the JSON body is longer than {MAX_TEXT_FIELD_BYTES:,} bytes")
    try:
        data = json.loads(body)
    except ValueError as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    return _validated(model, data)


def is_json(request: Request) -> bool:
    content_type, _ = parse_options_header(request.headers.get("content-type", ""))
    return content_type == b"application/json"


def _validated(model: type[FormModel], data: object) -> FormModel:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or 'form'}: {item['msg']}" for item in error.errors()
        ]
        raise Unprocessable("; ".join(problems), problems) from None


def require_file(form: UploadForm, name: str) -> StagedFile:
    if name not in form.files:
        raise Unprocessable(f"the upload has no '{name}' file field (curl -F {name}=@path)")
    return form.files[name]


def multipart_body(form: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a route that reads its multipart body itself: the form described by a Pydantic model."""
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": inline_schema(form)}},
        }
    }


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its `$defs` (enums such as TaskType) written in place: a schema placed in a
    route's OpenAPI by hand has no `#/$defs` for such references to point to."""
    schema = model.model_json_schema(mode="validation")
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return inline(definitions[node["$ref"].removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)


def _names(names: object) -> str:
    return ", ".join(f"'{name}'" for name in sorted(names))  # type: ignore[call-overload]


def _size(size: int) -> str:
    return f"{size:,} bytes" if size < 2**20 else f"{size / 2**20:,.0f} MiB"
