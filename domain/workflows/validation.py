"""The workflow config validator: every problem at once, each with a JSON path.

One validator guards create, update, import, clone, rollback, seeding and `stepwise validate`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from difflib import get_close_matches
from typing import Any

from jsonschema import Draft202012Validator

from domain.shared.errors import Problem
from domain.shared.limits import MAX_JSON_DEPTH, json_problem
from domain.templating import engine
from domain.workflows.config_schema import CONFIG_SCHEMA, FORBIDDEN_KEYS

_SCHEMA = Draft202012Validator(CONFIG_SCHEMA)
MAX_CONFIG_BYTES = 256_000
MAX_STEPS = 1000  # far above any real playbook; bounds the schema and graph work
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING = re.compile(r"^'(.+)' is a required property$")
_CODES = {
    "required": "REQUIRED", "type": "INVALID_TYPE", "enum": "INVALID_VALUE",
    "const": "INVALID_VALUE", "pattern": "INVALID_FORMAT", "minItems": "EMPTY",
    "minLength": "EMPTY", "minProperties": "EMPTY", "additionalProperties": "UNKNOWN_FIELD",
    "uniqueItems": "DUPLICATE", "minimum": "OUT_OF_RANGE", "maximum": "OUT_OF_RANGE",
    "maxItems": "TOO_MANY_STEPS",
}


def json_path(parts: Iterable[str | int]) -> str:
    """`$.steps[2].routing.defaultRoute` from ('steps', 2, 'routing', 'defaultRoute')."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += f"['{part}']"
    return out


def validate(config: Any, *, known_actions: set[str] | None) -> list[Problem]:
    """Every problem with `config`; `known_actions=None` skips the saved-action check."""
    if not isinstance(config, dict):
        return [Problem("INVALID_TYPE", "a workflow config is a JSON object", "$")]
    # Before anything recursive (json.dumps, jsonschema, copies) walks it: an iterative check.
    shape = json_problem(config, path="$", max_depth=MAX_JSON_DEPTH)
    if shape is not None:
        return [shape]
    # Checked first and alone: every later check (templates especially) grows with the size.
    size = len(json.dumps(config, separators=(",", ":"), default=str))
    if size > MAX_CONFIG_BYTES:
        return [Problem("CONFIG_TOO_LARGE",
                        f"a config may hold {MAX_CONFIG_BYTES // 1000} kB of JSON, this one "
                        f"{size // 1000} kB", "$")]
    steps_given = config.get("steps")
    if isinstance(steps_given, list) and len(steps_given) > MAX_STEPS:
        return [Problem("TOO_MANY_STEPS", f"a workflow may have {MAX_STEPS} steps, this one "
                        f"{len(steps_given)}", "$.steps")]
    problems = _structure(config)
    problems += _forbidden(config)
    problems += _templates(config)
    steps = [s for s in config.get("steps", []) if isinstance(s, dict)] \
        if isinstance(config.get("steps"), list) else []
    if steps:
        problems += _graph(config["steps"])
        problems += _step_rules(config["steps"], known_actions)
    problems += _trigger_rules(config.get("trigger"))
    problems += _variable_rules(config.get("variables"))
    unique: dict[tuple[str, str | None], Problem] = {}
    for problem in problems:
        unique.setdefault((problem.code, problem.path), problem)
    return list(unique.values())


def _structure(config: dict[str, Any]) -> list[Problem]:
    problems = []
    for error in sorted(_SCHEMA.iter_errors(config), key=lambda e: list(map(str, e.path))):
        parts: list[str | int] = list(error.absolute_path)
        message = error.message
        if error.validator == "required":
            missing = _MISSING.match(error.message)
            if missing:
                parts.append(missing.group(1))
                message = f"'{missing.group(1)}' is required"
        elif error.validator == "enum":
            message = f"must be one of: {', '.join(map(str, error.validator_value))}"
        elif error.validator == "pattern" and parts and parts[-1] == "version":
            message = "must be a semantic version such as 1.0.0"
        elif error.validator == "additionalProperties":
            problems += _unknown_fields(error.instance, error.schema, parts)
            continue
        code = _CODES.get(str(error.validator), f"SCHEMA_{str(error.validator).upper()}")
        problems.append(Problem(code, message, json_path(parts)))
    return problems


def _unknown_fields(instance: Any, schema: dict[str, Any], parts: list[str | int]
                   ) -> list[Problem]:
    """One UNKNOWN_FIELD per key the schema does not name (a typo such as `nxt`), at the key;
    UI artifacts are left to their own, clearer problem."""
    if not isinstance(instance, dict):
        return []
    known = set(schema.get("properties", {}))
    return [Problem("UNKNOWN_FIELD", f"'{key}' is not a field here"
                    + _did_you_mean(str(key), known), json_path((*parts, key)))
            for key in instance if key not in known and key not in FORBIDDEN_KEYS]


def _did_you_mean(key: str, known: set[str]) -> str:
    close = get_close_matches(key, sorted(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


Parts = tuple[str | int, ...]


def _walk(value: Any) -> Iterator[tuple[Parts, Any]]:
    """Every (path, value) inside `value`, depth first, without recursion."""
    stack: list[tuple[Parts, Any]] = [((), value)]
    while stack:
        parts, item = stack.pop()
        yield parts, item
        if isinstance(item, dict):
            stack.extend(((*parts, k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*parts, i), v) for i, v in reversed(list(enumerate(item))))


def _forbidden(config: dict[str, Any]) -> list[Problem]:
    problems = []
    for parts, value in _walk(config):
        if isinstance(value, dict):
            for key in value:
                if key in FORBIDDEN_KEYS:
                    problems.append(Problem(
                        "UI_ARTIFACT",
                        f"'{key}' is UI, not workflow logic: keep it out of the config",
                        json_path((*parts, key))))
    return problems


def _templates(config: dict[str, Any]) -> list[Problem]:
    problems = []
    for parts, value in _walk(config):
        if isinstance(value, str) and "{{" in value:
            problems += engine.problems(value, path=json_path(parts))
    return problems


def _targets(step: dict[str, Any]) -> Iterator[tuple[tuple[str | int, ...], Any, bool]]:
    """(path inside the step, target, is_forward) for every step reference of a step."""
    routing = step.get("routing")
    if isinstance(routing, dict):
        for i, route in enumerate(routing.get("routes") or []):
            if isinstance(route, dict) and "next" in route:
                yield ("routing", "routes", i, "next"), route["next"], True
        if "defaultRoute" in routing:
            yield ("routing", "defaultRoute"), routing["defaultRoute"], True
        if "rejectRoute" in routing:
            yield ("routing", "rejectRoute"), routing["rejectRoute"], True
    for i, branch in enumerate(step.get("chatBranches") or []):
        if isinstance(branch, dict):
            if "next" in branch:
                yield ("chatBranches", i, "next"), branch["next"], True
            if "returnToStep" in branch:
                yield ("chatBranches", i, "returnToStep"), branch["returnToStep"], False


def _graph(steps: list[Any]) -> list[Problem]:
    """Unique ids, existing targets, reachability from the first step, opt-in cycles."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        sid = step.get("id") if isinstance(step, dict) else None
        if not isinstance(sid, str):
            continue
        if sid in index:
            problems.append(Problem("DUPLICATE_STEP_ID",
                                    f"step id '{sid}' is already used by steps[{index[sid]}]",
                                    json_path(("steps", i, "id"))))
        else:
            index[sid] = i
    edges: dict[str, list[str]] = {sid: [] for sid in index}
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        for parts, target, forward in _targets(step):
            if not isinstance(target, str):
                continue
            if target not in index:
                problems.append(Problem("UNKNOWN_STEP", f"no step has the id '{target}'",
                                        json_path(("steps", i, *parts))))
            elif forward and isinstance(step.get("id"), str) and index[step["id"]] == i:
                edges[step["id"]].append(target)
    if not index:
        return problems
    first = steps[0].get("id") if isinstance(steps[0], dict) else None
    seen: set[str] = set()
    frontier = [first] if first in index else []
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier.extend(edges[current])
    for sid, i in index.items():
        if sid not in seen:
            problems.append(Problem("UNREACHABLE_STEP",
                                    f"step '{sid}' cannot be reached from the first step",
                                    json_path(("steps", i))))
    revisit = {sid for sid, i in index.items() if steps[i].get("allowRevisit") is True}
    for cycle in _cycles(edges, skip=revisit):
        problems.append(Problem(
            "CYCLE",
            f"steps loop: {' -> '.join([*cycle, cycle[0]])}; set allowRevisit on a step "
            "of the loop to allow it", json_path(("steps", index[cycle[0]]))))
    return problems


def _cycles(edges: dict[str, list[str]], *, skip: set[str]) -> list[list[str]]:
    """One cycle per strongly connected component of the graph without `skip` nodes.

    Tarjan's algorithm with an explicit stack: a chain of a thousand steps is valid input.
    """
    graph = {n: [t for t in ts if t not in skip] for n, ts in edges.items() if n not in skip}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in order:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                order[node] = low[node] = len(order)
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if position > 0:  # back from targets[position - 1]
                low[node] = min(low[node], low[targets[position - 1]])
            descended = False
            while position < len(targets):
                target = targets[position]
                position += 1
                if target not in order:
                    work.append((node, position))
                    work.append((target, 0))
                    descended = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], order[target])
            if descended:
                continue
            if low[node] == order[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    found.append(_a_cycle(graph, set(component), node))
    return found


def _a_cycle(graph: dict[str, list[str]], members: set[str], start: str) -> list[str]:
    """A concrete loop through `start` inside one component (for a readable message)."""
    path, seen = [start], {start}
    while True:
        options = [t for t in graph[path[-1]] if t in members]
        if start in options:
            return path
        nxt = next((t for t in options if t not in seen), None)
        if nxt is None:
            return path
        path.append(nxt)
        seen.add(nxt)


def _step_rules(steps: list[Any], known_actions: set[str] | None) -> list[Problem]:
    problems: list[Problem] = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        branches = _list(step.get("chatBranches"))
        problems += _duplicates(branches, ("steps", i, "chatBranches"), "DUPLICATE_BRANCH_ID",
                                "branch")
        notes = _list(step.get("notifications"))
        problems += _duplicates(notes, ("steps", i, "notifications"),
                                "DUPLICATE_NOTIFICATION_ID", "notification")
        if known_actions is None:
            continue
        for j, branch in enumerate(branches):
            if not isinstance(branch, dict) or branch.get("type") != "saved_action":
                continue
            action = branch.get("savedAction")
            if isinstance(action, str) and action not in known_actions:
                problems.append(Problem(
                    "UNKNOWN_SAVED_ACTION", f"no saved action '{action}' exists for this tenant",
                    json_path(("steps", i, "chatBranches", j, "savedAction"))))
    return problems


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _duplicates(items: list[Any], base: tuple[str | int, ...], code: str, noun: str
                ) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for j, item in enumerate(items):
        ident = item.get("id") if isinstance(item, dict) else None
        if isinstance(ident, str):
            if ident in seen:
                problems.append(Problem(code, f"{noun} id '{ident}' is used twice in this step",
                                        json_path((*base, j, "id"))))
            seen.add(ident)
    return problems


def _trigger_rules(trigger: Any) -> list[Problem]:
    if not isinstance(trigger, dict) or not isinstance(trigger.get("daysUntilRenewal"), dict):
        return []
    window = trigger["daysUntilRenewal"]
    low, high = window.get("min"), window.get("max")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return [Problem("INVALID_RANGE", "min is greater than max",
                        "$.trigger.daysUntilRenewal")]
    return []


def _variable_rules(variables: Any) -> list[Problem]:
    if not isinstance(variables, list):
        return []
    seen: set[str] = set()
    problems = []
    for i, variable in enumerate(variables):
        name = variable.get("name") if isinstance(variable, dict) else None
        if isinstance(name, str):
            if name in seen:
                problems.append(Problem("DUPLICATE_VARIABLE", f"variable '{name}' is declared "
                                        "twice", json_path(("variables", i, "name"))))
            seen.add(name)
    return problems
