"""Typed workflow variables (text, date, number, select), checked before a run starts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.shared.errors import Problem, ValidationFailed

MAX_TEXT = 2000


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    if not number.is_finite() or abs(number.adjusted()) > 15:
        return None
    return int(number) if number == number.to_integral_value() else float(number)


def _one(spec: Mapping[str, Any], value: Any, path: str) -> tuple[Any, Problem | None]:
    kind = spec.get("type")
    if kind == "number":
        number = _number(value)
        if number is None:
            return None, Problem("INVALID_VARIABLE", "expected a number", path)
        return number, None
    if kind == "date":
        try:
            return date.fromisoformat(str(value)).isoformat(), None
        except ValueError:
            return None, Problem("INVALID_VARIABLE", "expected a date (YYYY-MM-DD)", path)
    if kind == "select":
        options = [str(o) for o in spec.get("options") or []]
        if str(value) not in options:
            return None, Problem("INVALID_VARIABLE", f"must be one of: {', '.join(options)}",
                                 path)
        return str(value), None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None, Problem("INVALID_VARIABLE", "expected text", path)
    text = str(value)
    if len(text) > MAX_TEXT:
        return None, Problem("INVALID_VARIABLE", f"at most {MAX_TEXT} characters", path)
    return text, None


def resolve(declared: Any, given: Any, *, path: str = "input.variables") -> dict[str, Any]:
    """The run's variables: the given values checked and converted, defaults filled in;
    ValidationFailed with every problem otherwise."""
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise ValidationFailed([Problem("INVALID_TYPE", "variables are a JSON object", path)])
    specs = {s["name"]: s for s in (declared if isinstance(declared, list) else [])
             if isinstance(s, Mapping) and isinstance(s.get("name"), str)}
    problems = [Problem("UNKNOWN_VARIABLE", f"the workflow declares no variable {name!r}",
                        f"{path}.{name}") for name in given if name not in specs]
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        value = given.get(name)
        if value is None or value == "":
            value = spec.get("default")
        if value is None or value == "":
            if spec.get("required"):
                problems.append(Problem("REQUIRED", f"{name} is required", f"{path}.{name}"))
            values[name] = None
            continue
        converted, problem = _one(spec, value, f"{path}.{name}")
        if problem is not None:
            problems.append(problem)
        values[name] = converted
    if problems:
        raise ValidationFailed(problems)
    return values
