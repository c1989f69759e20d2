"""When orjson may parse a JSON text: it reads integers beyond 64 bits as (rounded) floats,
where the standard library keeps them exact. A text with a run of 16 or more digits goes to
the standard library (a string with such digits too: rare, and only slower)."""

from __future__ import annotations

import re

_LONG_DIGITS = re.compile(rb"\d{16,}")
_LONG_DIGITS_TEXT = re.compile(r"\d{16,}")


def exact_with_orjson(text: str | bytes) -> bool:
    if isinstance(text, bytes):
        return _LONG_DIGITS.search(text) is None
    return _LONG_DIGITS_TEXT.search(text) is None
