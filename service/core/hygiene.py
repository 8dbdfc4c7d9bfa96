"""What text and JSON the service takes at its boundary, whatever the route: no control characters in text
(PostgreSQL cannot store a NUL, and no name, path or id has any use for one), no NaN or Infinity (JSON has
neither, and Python's parser and the databases' JSON columns disagree about them), no integer beyond 64 bits
(the widest column). Each refusal is a 422 that says what to change.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from service.core.errors import Unprocessable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1
"""Versions and other counters are INTEGER columns: a larger number can name nothing stored."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class NotJson(ValueError):
    """The body is not JSON at all: the route's own parser answers for it, in its usual words."""


def refuse_control_characters(text: str, where: str) -> None:
    if found := _CONTROL.search(text):
        raise Unprocessable(
            f"{where} holds the control character U+{ord(found.group()):04X}: names, file names, paths and "
            "query values take printable characters only"
        )


def load_json(body: bytes) -> Any:
    """The parsed body, every number as written. NaN, Infinity and integers beyond 64 bits are a 422 naming
    them; NotJson otherwise. Python's parser, for its hooks: for bodies of a few MiB at most."""
    try:
        return json.loads(body, parse_constant=_non_finite, parse_float=_finite, parse_int=_int64)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError; nesting too deep
        raise NotJson(str(error)) from None


def load_large_json(body: bytes) -> Any:
    """`load_json` for large bodies of numbers: orjson, several times faster. It refuses NaN and Infinity,
    which `load_json` then names, and reads integers beyond 64 bits as floats (which the numeric checks of
    the caller take as any other number)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    return load_json(body)


def check_json_values(value: Any) -> None:
    """A 422 for a string (or key) holding a control character anywhere in a body parsed by `load_json`
    (which refused integers beyond 64 bits as it read them); the message names where. Iterative: a deeply
    nested body cannot exhaust the stack."""
    pending: list[tuple[Any, str]] = [(value, "body")]
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            refuse_control_characters(item, f"'{where}'")
        elif isinstance(item, dict):
            for key, child in item.items():
                refuse_control_characters(key, f"a key of '{where}'")
                pending.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            pending.extend((child, f"{where}[{index}]") for index, child in enumerate(item))


def _non_finite(constant: str) -> float:
    raise Unprocessable(
        f"the JSON body holds {constant}: JSON numbers must be finite; send a number, or null where a value may "
        "be missing"
    )


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 is a number to JSON, but no float holds it
        raise Unprocessable(f"the JSON body holds {text[:30]}, too large for a 64-bit float: send a smaller number")
    return number


def _int64(text: str) -> int:
    # 2^63 has 19 digits: longer ones are refused unconverted (Python will not convert over 4,300 digits anyway).
    number = int(text) if len(text.lstrip("-")) <= 19 else None
    if number is None or not INT64_MIN <= number <= INT64_MAX:
        shown = text if len(text) <= 30 else f"{text[:12]}...({len(text)} digits)"
        raise Unprocessable(
            f"the JSON body holds the integer {shown}, beyond the 64-bit range (-2^63 to 2^63-1) of every number "
            "the service stores: send a smaller one"
        )
    return number
