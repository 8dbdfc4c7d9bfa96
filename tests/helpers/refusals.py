"""Requests the service refuses: the answer's status and message, and nothing stored on the way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.helpers.stacks import Stack


@contextmanager
def nothing_stored(stack: Stack, client: httpx.Client) -> Iterator[None]:
    """No new row in any listing and no new file under the artifact root."""

    def rows() -> dict[str, set[str]]:
        return {
            path: {item["id"] for item in client.get(path, params={"limit": 500}).json()["items"]}
            for path in ("/v1/models", "/v1/datasets", "/v1/fusion-jobs")
        }

    before_rows, before_files = rows(), stack.stored_files()
    yield
    assert rows() == before_rows
    assert stack.stored_files() == before_files


def refused(response: httpx.Response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    text = (body["detail"] + " " + " ".join(body.get("problems", []))).lower()
    for word in words:
        assert word.lower() in text, f"{word!r} not in {text!r}"
    return body
