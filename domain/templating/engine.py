"""Handlebars on pybars3: cached compilation, per-channel escaping, and the truncation trap.

pybars3 compiles an unclosed block (`{{#if x}}...`) without error and silently drops the
rest of the template. Every template is therefore checked by compiling it with a sentinel
appended and rendering it once: if the sentinel does not come out, the template is broken.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import pybars

from domain.shared.errors import Problem
from domain.templating.helpers import HELPERS, truthy

CONTEXT_ROOTS = frozenset(
    {"customer", "csm", "workflow", "company", "accountTeam", "steps", "vars", "run"}
)
_SENTINEL = "\u2063STEPWISE-END\u2063"
_BUILTINS = frozenset({"if", "unless", "each", "with", "else", "lookup", "log", "this"})
_MUSTACHE = re.compile(r"\{\{\{?(.*?)\}?\}\}", re.DOTALL)
# A plain `{{expr}}` (not a block, comment, partial or triple-stash): made raw for text channels.
_ESCAPED = re.compile(r"(?<!\{)\{\{(?![{#/!>^&])(?!else\b)(.*?)\}\}(?!\})", re.DOTALL)
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_PATH = re.compile(r"(?<![\w.@/-])([A-Za-z_][\w-]*)(?:\.[\w-]+)*")
_BLOCK_SCOPE = re.compile(r"^\s*#\s*(each|with)\b")
_BLOCK_END = re.compile(r"^\s*/\s*(each|with)\b")

_compiler = pybars.Compiler()
Template = Callable[..., str]


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; carries a problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=4096)
def _compile(source: str, html: bool) -> Template:
    text = source if html else _ESCAPED.sub(r"{{{\1}}}", source)
    try:
        return _compiler.compile(text)  # type: ignore[no-any-return]
    except pybars.PybarsError as exc:
        detail = str(exc).replace(_SENTINEL, "")
        raise TemplateError("TEMPLATE_SYNTAX", f"template does not compile: {detail}") from exc


@lru_cache(maxsize=4096)
def _verify(source: str) -> None:
    """Raise TemplateError if the template is truncated or calls an unknown helper."""
    probe = _compile(source + _SENTINEL, False)
    try:
        output = probe({}, helpers=HELPERS)
    except pybars.PybarsError as exc:
        raise TemplateError("TEMPLATE_UNKNOWN_HELPER", f"template fails to render: {exc}") from exc
    except Exception as exc:  # a helper choking on an unusual literal
        raise TemplateError("TEMPLATE_RENDER", f"template fails to render: {exc}") from exc
    if not output.endswith(_SENTINEL):
        raise TemplateError(
            "TEMPLATE_TRUNCATED",
            "template is cut short (an unclosed block or '{{'): its end would never render",
        )


def compile_checked(source: str, *, html: bool = False) -> Template:
    """The compiled template, cached by content; raises TemplateError if broken or truncated."""
    _verify(source)
    return _compile(source, html)


def render(source: str, context: Mapping[str, Any], *, html: bool = False) -> str:
    """Render `source` against `context`; HTML-escape values only when `html`."""
    template = compile_checked(source, html=html)
    try:
        return str(template(dict(context), helpers=HELPERS))
    except pybars.PybarsError as exc:
        raise TemplateError("TEMPLATE_RENDER", f"template fails to render: {exc}") from exc


def condition_holds(source: str, context: Mapping[str, Any]) -> bool:
    """A condition is true when it renders to anything but '', 'false', '0' or 'null'."""
    return truthy(render(source, context).strip())


def referenced_roots(source: str) -> set[str]:
    """Context roots the template reads, outside #each/#with blocks (whose scope shifts)."""
    roots: set[str] = set()
    depth = 0
    for match in _MUSTACHE.finditer(source):
        inner = match.group(1).strip()
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
                is_helper = name in HELPERS or name in _BUILTINS
                if (index == 0 or body[path.start() - 1] == "(") and is_helper:
                    continue
                if name in ("true", "false", "null", "undefined") or name in _BUILTINS:
                    continue
                roots.add(name)
        if opens_scope:
            depth += 1
    return roots


def problems(source: str, *, path: str) -> list[Problem]:
    """Everything wrong with one template string, as problems at `path`."""
    try:
        compile_checked(source)
    except TemplateError as error:
        return [Problem(error.code, error.message, path)]
    unknown = sorted(referenced_roots(source) - CONTEXT_ROOTS)
    return [
        Problem("TEMPLATE_UNKNOWN_ROOT",
                f"'{root}' is not part of the context (known: {', '.join(sorted(CONTEXT_ROOTS))})",
                path)
        for root in unknown
    ]
