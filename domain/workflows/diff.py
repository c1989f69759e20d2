"""A structural diff of two configs: steps added/removed/changed, then field-level changes.

Lists of objects with unique ids (steps, notifications, branches) are matched by id, so a
reordering does not read as every step changing; paths name them with a JSONPath filter
(`$.steps[?(@.id=='x')].name`), stable across versions whose indexes differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from domain.workflows.validation import json_path


@dataclass(frozen=True)
class Change:
    kind: str  # ADDED | REMOVED | CHANGED
    path: str
    before: Any = None
    after: Any = None


@dataclass(frozen=True)
class ConfigDiff:
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    steps_changed: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)


def _by_id(items: Any) -> dict[str, Any] | None:
    if not isinstance(items, list) or not items:
        return None
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    keys = [i for i in ids if isinstance(i, str)]
    if len(keys) != len(items) or len(set(keys)) != len(keys):
        return None
    return dict(zip(keys, items, strict=True))


def _child(path: str, key: str | int) -> str:
    return path + json_path([key])[1:]


def _compare(before: Any, after: Any, path: str, out: list[Change]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before:
            if key not in after:
                out.append(Change("REMOVED", _child(path, key), before[key], None))
            else:
                _compare(before[key], after[key], _child(path, key), out)
        for key in after:
            if key not in before:
                out.append(Change("ADDED", _child(path, key), None, after[key]))
        return
    old, new = _by_id(before), _by_id(after)
    if old is not None and new is not None:
        for ident, item in old.items():
            where = f"{path}[?(@.id=='{ident}')]"
            if ident not in new:
                out.append(Change("REMOVED", where, item, None))
            else:
                _compare(item, new[ident], where, out)
        for ident, item in new.items():
            if ident not in old:
                out.append(Change("ADDED", f"{path}[?(@.id=='{ident}')]", None, item))
        common_old = [i for i in old if i in new]
        common_new = [i for i in new if i in old]
        if common_old != common_new:
            out.append(Change("CHANGED", f"{path}[*].id", list(old), list(new)))
        return
    if isinstance(before, list) and isinstance(after, list):
        for index in range(max(len(before), len(after))):
            if index >= len(after):
                out.append(Change("REMOVED", _child(path, index), before[index], None))
            elif index >= len(before):
                out.append(Change("ADDED", _child(path, index), None, after[index]))
            else:
                _compare(before[index], after[index], _child(path, index), out)
        return
    out.append(Change("CHANGED", path, before, after))


def _steps(config: dict[str, Any]) -> dict[str, Any]:
    steps = config.get("steps")
    if not isinstance(steps, list):
        return {}
    return {s["id"]: s for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)}


def diff_configs(before: dict[str, Any], after: dict[str, Any]) -> ConfigDiff:
    old, new = _steps(before), _steps(after)
    changes: list[Change] = []
    _compare(before, after, "$", changes)
    return ConfigDiff(
        steps_added=[s for s in new if s not in old],
        steps_removed=[s for s in old if s not in new],
        steps_changed=[s for s in new if s in old and old[s] != new[s]],
        changes=changes,
    )
