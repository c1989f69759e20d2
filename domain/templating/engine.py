"""Handlebars on pybars3: cached compilation, per-channel escaping, and the truncation trap.

pybars3 compiles an unclosed block (`{{#if x}}...`) without error and silently drops the
rest of the template. Every template is therefore checked by compiling it with a sentinel
appended and rendering it once: if the sentinel does not come out, the template is broken.
Checks and compiled templates are cached by content (failures too), so a template is
compiled once per process and escaping mode, whoever renders it.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import pybars
from pybars._compiler import Scope

from domain.shared.errors import Problem
from domain.templating.analysis import (
    CONTEXT_ROOTS,
    helper_calls,
    referenced_roots,
    tag_size,
    unknown_helpers,
    uses_partials,
)
from domain.templating.helpers import HELPERS, truthy
from domain.templating.limits import (
    BUILTIN_HELPERS,
    BoundedOutput,
    Budget,
    RenderLimitExceeded,
    metered,
)
from domain.templating.offload import off_loop

__all__ = ["CONTEXT_ROOTS", "MAX_AD_HOC_LENGTH", "MAX_LENGTH", "Budget", "TemplateError",
           "compile_checked", "condition_holds", "metered", "off_loop", "problems",
           "referenced_roots", "render", "tag_size"]

# pybars compiles at roughly 60 ms per 1,000 characters: the cap bounds what one new
# template can cost (renderTemplate applies tighter ones to ad-hoc templates).
MAX_LENGTH = 20_000
# Compilation time grows faster than linearly with the number of tags (~60 ms for 100,
# ~370 ms for 400): these caps bound it for config and for ad-hoc templates.
MAX_TAGS = 400
# Ad-hoc templates (renderTemplate) are verified on the event loop for anyone who types
# one: the caps keep the worst case (measured: deep paths, nested subexpressions, long
# argument lists, nested blocks, each at the caps) near 30 ms on a development machine.
# pybars' parser costs ~0.1 ms per character and ~0.3 ms per word (path segment,
# argument, subexpression) inside {{...}} (a 200-character path alone is ~30 ms) but only
# ~5 ms per 1,000 characters of plain text. Worst case at these caps: ~15-23 ms (before:
# 8,000 characters and 100 tags admitted templates costing 0.6-1.4 s, twice that for html).
# The seed templates need at most 99 tag characters and 11 words.
MAX_AD_HOC_LENGTH = 1_500
MAX_AD_HOC_TAGS = 20
MAX_AD_HOC_TAG_CHARS = 200
MAX_AD_HOC_TAG_WORDS = 32
_SENTINEL = "\u2063STEPWISE-END\u2063"
# A plain `{{expr}}` (not a block, else, comment, partial or triple-stash): made raw for text
# channels. Whitespace control stays outside the added braces (`{{~x~}}` -> `{{~{x}~}}`;
# pybars ignores the `~` in `{{{~x~}}}`), and `{{ else }}` / `{{~else~}}` are left alone.
_ESCAPED = re.compile(
    r"(?<!\{)\{\{(?!~?\s*(?:[{#/!>^&]|else\b))(~?)(.*?)(~?)\}\}(?!\})", re.DOTALL)

# pybars has no float literals; its error points at one, so say what to do about it.
_FLOAT_LITERAL = re.compile(r"near -?\d+\.\d+")
_compiler = pybars.Compiler()
# pybars' code builder is shared class state: one compilation at a time, whichever thread.
_compile_lock = threading.Lock()
Template = Callable[..., str]
Escape = Callable[[str], str]
# Every render runs with pybars' built-in helpers replaced by metered ones (limits.py).
_HELPERS: dict[str, Callable[..., Any]] = {**BUILTIN_HELPERS, **HELPERS}


class TemplateError(Exception):
    """A template that cannot be compiled or rendered; carries a problem code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _json_default(value: Any) -> Any:
    return value.context if isinstance(value, Scope) else str(value)


def as_text(value: Any) -> str:
    """How a value prints: JSON for objects and lists (true, false, null inside), true/false
    for a boolean, as is otherwise. Python reprs (`None`, `{'a': 1}`) never reach output."""
    if isinstance(value, Scope):  # {{@_parent}} and the like
        value = value.context
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=_json_default)
    return str(value)


def _preparer(escape: Escape | None) -> Callable[[Any, bool], Any]:
    """pybars' `prepare` (how a value joins the output) with `escape` for `{{value}}`."""

    def prepare(value: Any, should_escape: bool) -> Any:
        if value is None:
            return ""
        if isinstance(value, pybars.strlist):  # a block's output: already prepared
            return value
        text = as_text(value)
        return escape(text) if should_escape and escape is not None else text

    return prepare


_PREPARE_HTML = _preparer(pybars._compiler.escape)


def _compile_raw(source: str, html: bool, escape: Escape | None) -> Template | TemplateError:
    """`html`: `{{value}}` is escaped (by `escape` if given, else as HTML); else raw."""
    text = source if html else _ESCAPED.sub(r"{{\1{\2}\3}}", source)
    try:
        with _compile_lock:
            template: Template = _compiler.compile(text)
    except pybars.PybarsError as exc:
        detail = str(exc).replace(_SENTINEL, "")
        if _FLOAT_LITERAL.search(detail):
            detail += ' (numbers with a decimal point must be quoted: "1.5")'
        return TemplateError("TEMPLATE_SYNTAX", f"template does not compile: {detail}")
    except Exception as exc:  # pybars' own parser can fail in odd ways on odd input
        return TemplateError("TEMPLATE_SYNTAX", f"template does not compile: {exc}")
    # pybars registers every compiled template as a module in sys.modules forever; user
    # templates (renderTemplate) would leak one per distinct text. The function keeps its
    # globals alive, so the registry entry is not needed. (pybars' code builder is shared
    # class state: compilations hold _compile_lock, whichever thread they run on.)
    sys.modules.pop(getattr(template, "__module__", ""), None)
    # Each compilation gets its own module namespace: the generated code looks `prepare` and
    # `strlist` up there, so this variant (and only it) escapes for its channel, prints
    # values JSON-ish and meters its output (limits.py).
    namespace = template.__globals__  # type: ignore[attr-defined]
    namespace["prepare"] = (_preparer(escape) if escape is not None else _PREPARE_HTML) \
        if html else _preparer(None)
    namespace["strlist"] = BoundedOutput
    return template


Compile = Callable[[str, bool, Escape | None], Template | TemplateError]


def _verify_raw(source: str, compile_: Compile, *, max_length: int, max_tags: int,
                max_tag_size: tuple[int, int] | None = None, html: bool = False,
                escape: Escape | None = None) -> TemplateError | None:
    """What is wrong with the template (truncation, unknown helper, ...), or None.

    The probe is compiled in the mode it will render in (`html`, `escape`), so a checked
    template costs one compilation per mode, not one more for the check."""
    if len(source) > max_length:
        return TemplateError("TEMPLATE_TOO_LONG",
                             f"templates are limited to {max_length} characters")
    if source.count("{{") > max_tags:
        return TemplateError("TEMPLATE_TOO_COMPLEX",
                             f"templates are limited to {max_tags} {{{{...}}}} tags")
    if max_tag_size is not None:
        (chars, words), (max_chars, max_words) = tag_size(source), max_tag_size
        if chars > max_chars or words > max_words:
            return TemplateError(
                "TEMPLATE_TOO_COMPLEX", f"templates are limited to {max_chars} characters "
                f"and {max_words} words inside {{{{...}}}} tags")
    if uses_partials(source):
        return TemplateError("TEMPLATE_UNSUPPORTED", "partials ({{> name}}) are not supported")
    if "else" in helper_calls(source):
        return TemplateError("TEMPLATE_UNSUPPORTED",
                             "{{else if ...}} is not supported: nest an {{#if}} inside {{else}}")
    unknown = unknown_helpers(source)
    if unknown:
        return TemplateError(
            "TEMPLATE_UNKNOWN_HELPER",
            f"unknown helper {', '.join(unknown)} (known: {', '.join(sorted(HELPERS))}, "
            "if, unless, each, with, lookup)")
    probe = compile_(source + _SENTINEL, html, escape)
    if isinstance(probe, TemplateError):
        return probe
    try:
        with metered():
            output = probe({}, helpers=_HELPERS)
    except RenderLimitExceeded as exc:
        return TemplateError(exc.code, f"template fails to render: {exc.message}")
    except pybars.PybarsError as exc:
        return TemplateError("TEMPLATE_RENDER", f"template fails to render: {exc}")
    except Exception:  # a built-in block without its argument, e.g. {{#if}}
        return TemplateError("TEMPLATE_RENDER",
                             "template fails to render: a block or helper is missing an argument")
    if not output.endswith(_SENTINEL):
        return TemplateError(
            "TEMPLATE_TRUNCATED",
            "template is cut short (an unclosed block, comment or '{{'): "
            "its end would never render",
        )
    return None


# Two tiers of caches by content (a compiled template costs ~40 bytes per source character
# and variant): templates from workflow configs, few and reused, and ad-hoc ones typed into
# renderTemplate, which must not be able to flush or bloat the first tier.
_compile = lru_cache(maxsize=2048)(_compile_raw)
_compile_ad_hoc = lru_cache(maxsize=64)(_compile_raw)


@lru_cache(maxsize=2048)
def _verify(source: str) -> TemplateError | None:
    # Config templates: checked once as text, whatever channels render them later.
    return _verify_raw(source, _compile, max_length=MAX_LENGTH, max_tags=MAX_TAGS)


@lru_cache(maxsize=64)
def _verify_ad_hoc(source: str, html: bool, escape: Escape | None) -> TemplateError | None:
    # Ad-hoc templates render in one mode: checked in that mode (one compilation in all).
    return _verify_raw(source, _compile_ad_hoc, max_length=MAX_AD_HOC_LENGTH,
                       max_tags=MAX_AD_HOC_TAGS,
                       max_tag_size=(MAX_AD_HOC_TAG_CHARS, MAX_AD_HOC_TAG_WORDS),
                       html=html, escape=escape)


def _without_sentinel(probe: Template) -> Template:
    """A compiled template renders its output plus the sentinel: strip it (the checked probe
    is the template that renders; pybars compiles slowly, ~60 ms per 1,000 characters)."""

    def render_text(context: Any, **kwargs: Any) -> str:
        output = str(probe(context, **kwargs))
        if not output.endswith(_SENTINEL):  # cannot happen for a verified template
            raise TemplateError("TEMPLATE_TRUNCATED", "template output was cut short")
        return output[: -len(_SENTINEL)]

    return render_text


def compile_checked(source: str, *, html: bool = False, ad_hoc: bool = False,
                    escape: Escape | None = None) -> Template:
    """The compiled template, cached by content; raises TemplateError if broken or truncated.

    `ad_hoc`: a one-off template (renderTemplate), kept in a small separate cache.
    `escape`: applied to every `{{value}}` (not to the template's own text nor `{{{value}}}`)
    instead of HTML escaping, e.g. a channel's own markup escaping; implies escaping.
    """
    html = html or escape is not None
    error = _verify_ad_hoc(source, html, escape) if ad_hoc else _verify(source)
    if error is not None:
        raise error
    template = (_compile_ad_hoc if ad_hoc else _compile)(source + _SENTINEL, html, escape)
    if isinstance(template, TemplateError):
        raise template
    return _without_sentinel(template)


def render(source: str, context: Mapping[str, Any], *, html: bool = False,
           ad_hoc: bool = False, escape: Escape | None = None) -> str:
    """Render `source` against `context`; values HTML-escaped when `html`, escaped with
    `escape` when given, raw otherwise. Bounded by the enclosing `metered` budget (or one
    of its own): over it, a TemplateError RENDER_TOO_LARGE or RENDER_LIMIT, no output."""
    template = compile_checked(source, html=html, ad_hoc=ad_hoc, escape=escape)
    try:
        with metered():
            return str(template(dict(context), helpers=_HELPERS))
    except RenderLimitExceeded as exc:
        raise TemplateError(exc.code, exc.message) from None
    except TemplateError:
        raise
    except pybars.PybarsError as exc:
        raise TemplateError("TEMPLATE_RENDER", f"template fails to render: {exc}") from exc
    except Exception as exc:  # never let a template turn into an internal error
        raise TemplateError("TEMPLATE_RENDER",
                            f"template fails to render: {type(exc).__name__}") from exc


def condition_holds(source: str, context: Mapping[str, Any]) -> bool:
    """A condition is true when it renders to anything but '', 'false', '0' or 'null'."""
    return truthy(render(source, context).strip())


def problems(source: str, *, path: str, ad_hoc: bool = False, html: bool = False
             ) -> list[Problem]:
    """Everything wrong with one template string, as problems at `path` (`html`: the mode
    an ad-hoc template will render in, so the check's compilation serves the render)."""
    try:
        compile_checked(source, ad_hoc=ad_hoc, html=html)
    except TemplateError as error:
        return [Problem(error.code, error.message, path)]
    unknown = sorted(referenced_roots(source) - CONTEXT_ROOTS)
    return [
        Problem("TEMPLATE_UNKNOWN_ROOT",
                f"'{root}' is not part of the context (known: {', '.join(sorted(CONTEXT_ROOTS))})",
                path)
        for root in unknown
    ]


def cache_info() -> dict[str, Any]:
    """Cache statistics (the benchmark reports them)."""
    return {"compile": _compile.cache_info()._asdict(), "verify": _verify.cache_info()._asdict(),
            "ad_hoc_compile": _compile_ad_hoc.cache_info()._asdict()}


def clear_caches() -> None:
    for cache in (_compile, _verify, _compile_ad_hoc, _verify_ad_hoc):
        cache.cache_clear()
