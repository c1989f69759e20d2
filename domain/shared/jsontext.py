"""JSON text in and out, with orjson where it gives the same values as the standard library.

orjson reads integers beyond 64 bits as (rounded) floats, where the standard library keeps
them exact: a text with a run of 16 or more digits is read by the standard library (a string
with such digits too: rare, and only slower). orjson cannot write some values the standard
library can (integers beyond 64 bits): those are written by the standard library.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"\d{16,}")
_LONG_DIGITS_TEXT = re.compile(r"\d{16,}")


def exact_with_orjson(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return _LONG_DIGITS.search(text) is None
    return _LONG_DIGITS_TEXT.search(text) is None


def loads(text: str | bytes) -> Any:
    """JSON text as Python values (raises ValueError, or RecursionError, on bad text)."""
    if exact_with_orjson(text):
        return orjson.loads(text)
    return json.loads(text)


def dumps(value: Any) -> bytes:
    """Compact JSON of `value`, as UTF-8."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
