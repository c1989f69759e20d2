"""Input limits in one place: JSON depth, text lengths, and the checks that report them.

Every walk over client JSON is iterative (this module, schema.edge, the config validator)
or runs only on values this depth bounds: MAX_JSON_DEPTH is checked before anything
recursive (deepcopy, json.dumps, jsonschema, the config diff) touches a config. The edge
allows bodies twice as deep, so a too-deep config reaches the domain and gets TOO_DEEP with
the path where it goes too deep instead of a bare 400.
"""

from __future__ import annotations

import math
from typing import Any

from domain.shared.errors import DomainError, Problem

MAX_JSON_DEPTH = 32  # levels of objects/arrays inside one JSON value
MAX_NAME = 200  # names of people, workflows, saved actions, tenants
MAX_EMAIL = 254  # RFC 5321's limit on a forward path
MAX_DESCRIPTION = 2000
MAX_TIME_ZONE = 64  # the longest IANA name is 32 characters


def json_problem(value: Any, *, path: str, max_depth: int = MAX_JSON_DEPTH) -> Problem | None:
    """The first reason `value` cannot be stored as JSON: too deep, a non-finite number, or
    text PostgreSQL refuses."""
    stack: list[tuple[Any, int, str]] = [(value, 0, path)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return Problem("TOO_DEEP", f"JSON may nest at most {max_depth} levels", where)
            if isinstance(item, dict):
                stack.extend((v, depth + 1, _child(where, k)) for k, v in item.items())
            else:
                stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(item))
            if isinstance(item, dict):
                bad_key = next((k for k in item if isinstance(k, str) and bad_text(k)), None)
                if bad_key is not None:
                    return Problem("INVALID_VALUE", _BAD_TEXT, where)
        elif isinstance(item, float) and not math.isfinite(item):
            return Problem("OUT_OF_RANGE", "numbers must be finite", where)
        elif isinstance(item, str) and bad_text(item):
            return Problem("INVALID_VALUE", _BAD_TEXT, where)
    return None


_BAD_TEXT = "NUL characters and lone surrogates are not accepted"


def bad_text(text: str) -> bool:
    """True for text PostgreSQL refuses: a NUL, or a lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _child(path: str, key: Any) -> str:
    text = str(key)
    if text.isidentifier():
        return f"{path}.{text}"
    return f"{path}['{text}']"


def check_json(value: Any, *, path: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise the problem `json_problem` finds."""
    problem = json_problem(value, path=path, max_depth=max_depth)
    if problem is not None:
        raise DomainError(problem.message, path=problem.path, code=problem.code)


def too_long(value: str, limit: int, *, path: str, what: str = "it") -> Problem | None:
    """TOO_LONG when `value` has more than `limit` characters."""
    if len(value) > limit:
        return Problem("TOO_LONG", f"{what} may have at most {limit} characters", path)
    return None


def check_length(value: str, limit: int, *, path: str, what: str = "it") -> str:
    """`value`, or DomainError TOO_LONG."""
    problem = too_long(value, limit, path=path, what=what)
    if problem is not None:
        raise DomainError(problem.message, path=problem.path, code=problem.code)
    return value
