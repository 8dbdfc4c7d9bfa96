"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by tests/service/test_fuzz.py): values the schema
never leads it to generate, put where it generates numbers and parameters.

- In JSON bodies, one number of some examples becomes NaN, Infinity, -Infinity or an integer beyond 32
  or 64 bits (JSON bodies are then written by Python's own encoder, which writes NaN and Infinity as
  such, as a hostile client would; requests refuses to).
- In paths and queries, one parameter of some examples becomes such an integer, as digits.

The service must answer each with a 4xx that its schema documents.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

HOSTILE_NUMBERS: list[Any] = [float("nan"), float("inf"), float("-inf"), 2**31, 2**63, 10**30, -(10**30)]
HOSTILE_DIGITS = ["2147483648", "9223372036854775808", "99999999999999999999999"]


def _number_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Where `value` holds a number (not a boolean), as key paths."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _number_paths(item, (*path, key))]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _number_paths(item, (*path, index))]
    return []


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replaced(value[head], rest, new)}
    return [_replaced(item, rest, new) if index == head else item for index, item in enumerate(value)]


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    paths = _number_paths(body)
    if not paths:
        return st.just(body)
    hostile = st.builds(_replaced, st.just(body), st.sampled_from(paths), st.sampled_from(HOSTILE_NUMBERS))
    return st.one_of(st.just(body), hostile)


def _with_digits(parameters: dict[str, Any] | None) -> st.SearchStrategy[dict[str, Any] | None]:
    if not parameters:
        return st.just(parameters)
    hostile = st.builds(
        lambda name, digits: {**parameters, name: digits},
        st.sampled_from(sorted(parameters)),
        st.sampled_from(HOSTILE_DIGITS),
    )
    return st.one_of(st.just(parameters), hostile)


@schemathesis.hook
def flatmap_path_parameters(context: Any, parameters: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return _with_digits(parameters)


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    return _with_digits(query)


@schemathesis.serializer("application/json")
def json_with_non_finite_numbers(context: Any, value: Any) -> bytes:
    if isinstance(value, bytes):  # an example given as raw bytes goes as it is, as schemathesis sends it
        return value
    return json.dumps(value, default=str).encode()
