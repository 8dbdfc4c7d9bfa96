"""The boundary's checks on their own (the fast tier): JSON values, control characters, the rows an
inference body declares, and which body limit a route gets. Over HTTP: tests/service/test_hostile_load.py."""

from __future__ import annotations

import pytest

from service.core.config import Settings
from service.core.errors import TooLarge, Unprocessable
from service.core.hygiene import NotJson, check_json_values, load_json, refuse_control_characters
from service.core.request_guard import body_limit
from service.inference.declared_rows import DeclaredRows


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"lr": NaN}', "holds NaN"),
        (b"[Infinity]", "holds Infinity"),
        (b"[-Infinity]", "holds -Infinity"),
        (b"[1e999]", "too large for a 64-bit float"),
        (b"[9223372036854775808]", "beyond the 64-bit range"),
        (b"[-9223372036854775809]", "beyond the 64-bit range"),
        (b"[" + b"9" * 5000 + b"]", "(5000 digits)"),
    ],
)
def test_numbers_json_cannot_carry_are_named(body: bytes, words: str) -> None:
    with pytest.raises(Unprocessable, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_json(body)


def test_numbers_within_range_are_kept_as_written() -> None:
    assert load_json(b'{"a": [9223372036854775807, -9223372036854775808, 0.5, 1e308]}') == {
        "a": [2**63 - 1, -(2**63), 0.5, 1e308]
    }


@pytest.mark.parametrize("body", [b'{"a"', b"\xff\xfe", b"[" * 100_000])
def test_what_is_not_json_is_left_to_the_route(body: bytes) -> None:
    with pytest.raises(NotJson):
        load_json(body)


def test_control_characters_are_found_with_where_they_are() -> None:
    with pytest.raises(Unprocessable, match=r"'body.tasks\[1\].name' holds the control character U\+0000"):
        check_json_values({"tasks": [{"name": "ok"}, {"name": "a\x00b"}]})
    with pytest.raises(Unprocessable, match="a key of 'body' holds the control character U\\+001F"):
        check_json_values({"\x1f": 1})
    with pytest.raises(Unprocessable, match="the path holds the control character U\\+007F"):
        refuse_control_characters("/v1/models/\x7f", "the path")
    check_json_values({"name": "tab-free name, ünïcode fine", "n": [1, 2.5, None, True]})


def test_declared_rows_are_found_across_chunks() -> None:
    rows = DeclaredRows(max_rows=1000)
    rows.feed(b'{"inputs": [{"name": "age", "shape": [10], "data": [1]}, {"name": "x", "sha')
    with pytest.raises(TooLarge, match="1,000,000 rows are more than the limit of 1,000"):
        rows.feed(b'pe" : [ 1000000, 3], "data": []}]}')
    DeclaredRows(max_rows=1000).feed(b'{"shape": [1000], "data": "\\"shape\\": 5"}')


def test_each_route_gets_its_body_limit() -> None:
    settings = Settings(inference_max_body_bytes=100, max_json_body_bytes=2048, max_dataset_bytes=1000)
    assert body_limit("/v2/models/census/versions/2/infer", "application/json", settings) == (100, False)
    assert body_limit("/v1/predict/census", "application/json", settings) == (100, False)
    assert body_limit("/v1/datasets", "multipart/form-data; boundary=x", settings) == (1000 + 2**20, False)
    assert body_limit("/v1/datasets", "application/json", settings) == (2048, True)
    assert body_limit("/v1/fusion-jobs", "", settings) == (2048, True)
    models = settings.max_model_bytes + settings.max_weights_bytes + 2**20
    assert body_limit("/v1/models", "multipart/form-data; boundary=x", settings) == (models, False)
