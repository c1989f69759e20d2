"""Static reading of a Handlebars template: the context roots and helpers it uses."""

from __future__ import annotations

import re

from domain.templating.helpers import HELPERS

CONTEXT_ROOTS = frozenset(
    {"customer", "csm", "workflow", "company", "accountTeam", "steps", "vars", "run"}
)
BUILTINS = frozenset({"if", "unless", "each", "with", "else", "lookup", "log", "this"})
# The inside never spans another "{{": keeps the scan linear on unclosed input ("{{{{{{...").
_MUSTACHE = re.compile(r"\{\{\{?((?:(?!\{\{).)*?)\}?\}\}", re.DOTALL)
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_PATH = re.compile(r"(?<![\w.@/-])([A-Za-z_][\w-]*)(?:\.[\w-]+)*")
_BLOCK_SCOPE = re.compile(r"^\s*#\s*(each|with)\b")
_BLOCK_END = re.compile(r"^\s*/\s*(each|with)\b")
# `name arg...` at the start of a mustache, or `(name` anywhere: a helper call.
_CALL_HEAD = re.compile(r"^\s*([A-Za-z_@][\w.@/-]*)\s+\S")
_SUB_HEAD = re.compile(r"\(\s*([A-Za-z_@][\w.@/-]*)")


def _insides(source: str) -> list[str]:
    """The inside of every mustache, without whitespace control (`{{~x~}}`, `{{~{x}~}}`)."""
    found = []
    for match in _MUSTACHE.finditer(source):
        inner = match.group(1).strip().strip("~").strip()
        if inner.startswith("{") and inner.endswith("}"):
            inner = inner[1:-1].strip()
        found.append(inner)
    return found


def _bodies(source: str) -> list[str]:
    """The inside of every mustache that is an expression (no comments or closing tags)."""
    found = []
    for inner in _insides(source):
        if not inner or inner[0] in "!/>":
            continue
        found.append(inner)
    return found


def helper_calls(source: str) -> set[str]:
    """Names called with arguments (`{{name a}}`, `{{#name a}}`, `(name a)`)."""
    names: set[str] = set()
    for inner in _bodies(source):
        body = _STRING.sub('""', inner.lstrip("#^&{").strip())
        head = _CALL_HEAD.match(body)
        if head:
            names.add(head.group(1))
        names |= set(_SUB_HEAD.findall(body))
    return names


def unknown_helpers(source: str) -> list[str]:
    """Called names that are neither our helpers nor Handlebars built-ins."""
    return sorted(n for n in helper_calls(source) if n not in HELPERS and n not in BUILTINS)


_WORD = re.compile(r"[^\s().]+|\(")


def _tags(source: str) -> list[str]:
    """Every {{...}} tag, plus an unclosed `{{` to the end of the template."""
    tags, end = [], 0
    for match in _MUSTACHE.finditer(source):
        tags.append(match.group(0))
        end = match.end()
    unclosed = source.find("{{", end)
    return tags + ([source[unclosed:]] if unclosed >= 0 else [])


def tag_size(source: str) -> tuple[int, int]:
    """(characters, words) inside tags, each path segment and subexpression a word: what
    pybars' parser is slow on (plain text is cheap)."""
    tags = _tags(source)
    return sum(len(t) for t in tags), sum(len(_WORD.findall(t)) for t in tags)


def uses_partials(source: str) -> bool:
    return any(inner.startswith(">") for inner in _insides(source))


def referenced_roots(source: str) -> set[str]:
    """Context roots the template reads, outside #each/#with blocks (whose scope shifts)."""
    roots: set[str] = set()
    depth = 0
    for inner in _insides(source):
        if inner.startswith("!"):
            continue
        if _BLOCK_END.match(inner):
            depth = max(0, depth - 1)
            continue
        opens_scope = bool(_BLOCK_SCOPE.match(inner))
        if depth == 0:
            body = _STRING.sub(" ", inner.lstrip("#/^&").strip())
            body = re.sub(r"[\w-]+=", " ", body)  # hash keys are not paths
            for index, path in enumerate(_PATH.finditer(body)):
                name = path.group(1)
                is_helper = name in HELPERS or name in BUILTINS
                if (index == 0 or body[path.start() - 1] == "(") and is_helper:
                    continue
                if name in ("true", "false", "null", "undefined") or name in BUILTINS:
                    continue
                roots.add(name)
        if opens_scope:
            depth += 1
    return roots
