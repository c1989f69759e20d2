"""Handlebars helpers: eq, gte, lte, gt, lt, and, or, not, abs.

Every helper is None-safe (a missing value reaches a helper as None) and usable as a
subexpression. Numbers given as strings compare as numbers ("250000" >= 100000), as the
seed templates expect. A comparison with a missing or non-numeric side against a number
is false (like JavaScript's NaN comparisons), never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.templating import limits

# Beyond this decimal exponent a "number" is a mistake or an attack (int() of 1e999999999).
_MAX_EXPONENT = 30


def _number(value: Any) -> Decimal | None:
    """The value as a finite Decimal, or None (booleans and text that is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or abs(number.adjusted()) > _MAX_EXPONENT:
        return None
    return number


def _text(value: Any) -> str:
    """A value as Handlebars would print it (true/false in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def truthy(value: Any) -> bool:
    """JavaScript-ish truth, plus the rendered forms "false", "0" and "null" as false."""
    if isinstance(value, str):
        return value.strip() not in ("", "false", "0", "null")
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return value != 0
    return bool(value)


def _is_container(value: Any) -> bool:
    return isinstance(value, dict | list | tuple)


def _compare(test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def helper(this: Any, left: Any = None, right: Any = None, *_: Any, **__: Any) -> bool:
        if _is_container(left) or _is_container(right):  # objects have no order
            return False
        a, b = _number(left), _number(right)
        if a is not None and b is not None:
            return bool(test(a, b))
        if left is None or right is None or left == "" or right == "":
            return False
        if a is not None or b is not None:  # a number against text: no order
            return False
        return bool(test(_text(left), _text(right)))

    return helper


def _eq(this: Any, left: Any = None, right: Any = None, *_: Any, **__: Any) -> bool:
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return a == b
    if left is None or right is None:
        return left is None and right is None
    if _is_container(left) or _is_container(right):  # never printed just to compare
        return bool(left == right)
    return _text(left) == _text(right)


def _and(this: Any, *values: Any, **__: Any) -> bool:
    return bool(values) and all(truthy(v) for v in values)


def _or(this: Any, *values: Any, **__: Any) -> bool:
    return any(truthy(v) for v in values)


def _not(this: Any, value: Any = None, *_: Any, **__: Any) -> bool:
    return not truthy(value)


def _abs(this: Any, value: Any = None, *_: Any, **__: Any) -> Any:
    """|value| as int when whole, else float; '' for missing or non-numeric values."""
    number = _number(value)
    if number is None:
        return ""
    result = abs(number)
    return int(result) if result == result.to_integral_value() else float(result)


def _is_block_options(value: Any) -> bool:
    """pybars passes block helpers a dict with the `fn` renderer; context data never has one."""
    return isinstance(value, dict) and callable(value.get("fn")) and "helpers" in value


def _blockable(helper: Callable[..., Any]) -> Callable[..., Any]:
    """Let `{{#eq a b}}yes{{else}}no{{/eq}}` work like `{{#if (eq a b)}}`: without this,
    pybars hands the block's options in as the first value and the block renders nothing."""

    def call(this: Any, *args: Any, **hash_args: Any) -> Any:
        limits.current().step()
        if args and _is_block_options(args[0]):
            options = args[0]
            branch = options["fn"] if truthy(helper(this, *args[1:], **hash_args)) \
                else options.get("inverse")
            return branch(this) if branch is not None else None
        return helper(this, *args, **hash_args)

    return call


_PLAIN: dict[str, Callable[..., Any]] = {
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
HELPERS: dict[str, Callable[..., Any]] = {name: _blockable(h) for name, h in _PLAIN.items()}
