"""Handlebars helpers: eq, gte, lte, gt, lt, and, or, not, abs.

Every helper is None-safe (a missing value reaches a helper as None) and compares numbers
given as strings as numbers ("250000" >= 100000), as the seed templates expect.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    return None


def truthy(value: Any) -> bool:
    """JavaScript-ish truth: None, False, 0, '' and empty lists are false."""
    if isinstance(value, str):
        return value not in ("", "false", "0", "null")
    return bool(value)


def _compare(test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def helper(this: Any, left: Any = None, right: Any = None, *_: Any, **__: Any) -> bool:
        a, b = _number(left), _number(right)
        if a is not None and b is not None:
            return test(a, b)
        if left is None or right is None:
            return False
        return test(str(left), str(right))

    return helper


def _eq(this: Any, left: Any = None, right: Any = None, *_: Any, **__: Any) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if left is None or right is None:
        return left is None and right is None
    return str(left) == str(right)


def _and(this: Any, *values: Any, **__: Any) -> bool:
    return bool(values) and all(truthy(v) for v in values)


def _or(this: Any, *values: Any, **__: Any) -> bool:
    return any(truthy(v) for v in values)


def _not(this: Any, value: Any = None, *_: Any, **__: Any) -> bool:
    return not truthy(value)


def _abs(this: Any, value: Any = None, *_: Any, **__: Any) -> Any:
    number = _number(value)
    if number is None:
        return ""
    result = abs(number)
    return int(result) if result == result.to_integral_value() else float(result)


HELPERS: dict[str, Callable[..., Any]] = {
    "eq": _eq,
    "gte": _compare(lambda a, b: a >= b),
    "lte": _compare(lambda a, b: a <= b),
    "gt": _compare(lambda a, b: a > b),
    "lt": _compare(lambda a, b: a < b),
    "and": _and,
    "or": _or,
    "not": _not,
    "abs": _abs,
}
