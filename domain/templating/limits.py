"""Bounds on one render: output size, work and time, enforced inside pybars' generated code.

A Handlebars template is short, but `{{#each}}` multiplies: six nested `{{#each @root}}`
(178 characters) iterate the context's keys to the sixth power and printed 1 MB over
9-17 s. Caps on the template text cannot bound that, so the render itself is metered.

pybars' generated code builds its output in `strlist`s: every block invocation creates one
(`strlist()`), literal text is `append`ed, values and block results are `grow`n into it.
Compiled templates get `BoundedOutput` in place of `strlist` (engine._compile_raw), and the
block helpers that build their own lists (`each`, `with`, the implicit block) are replaced
by copies that use it. Every leaf string is counted once, when it is first appended; a
child list is merged with `extend` (it is already flat), so output is counted exactly and
nested blocks no longer cost a copy per level. Each block invocation (weighted) and each append is a
step; every `_CHECK_EVERY` steps the deadline is checked and the GIL is released once, so a
render in a worker thread leaves the event loop its share of the interpreter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pybars
from pybars._compiler import Scope

# What one template may produce and cost. The seed templates need a few hundred steps and
# under 2,000 characters; a notification or a prompt of 100,000 characters is a mistake.
# 50,000 steps (12,500 block invocations) are ~30-40 ms of CPU at worst
# (scripts/bench_render_bomb.py).
MAX_OUTPUT = 100_000
MAX_STEPS = 50_000
# Wall clock for one render (or one preview of all of a workflow's notifications): a safety
# net under load, far above what MAX_STEPS costs alone.
MAX_SECONDS = 2.0
_CHECK_EVERY = 256
# A block invocation (a new output list: one {{#each}} iteration, one {{#if}} branch) costs
# pybars ~5 us, an append ~1 us: steps are weighted so a budget is about time.
_BLOCK_WEIGHT = 4


class TooMuchForTheLoop(BaseException):
    """A render tried on the event loop needs more than its small allowance: it goes to the
    render thread instead. A BaseException, so no template error handling swallows it."""


class RenderLimitExceeded(Exception):
    """The render went over a bound; `code` is RENDER_TOO_LARGE or RENDER_LIMIT."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Budget:
    """Steps and a deadline shared by the renders of one operation; output per render."""

    max_steps: int = MAX_STEPS
    max_output: int = MAX_OUTPUT
    seconds: float = MAX_SECONDS
    clock: Callable[[], float] = time.monotonic
    steps: int = 0
    output: int = 0
    deadline: float = field(default=0.0)
    next_check: int = _CHECK_EVERY

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.seconds

    def step(self, chars: int = 0, *, weight: int = 1) -> None:
        self.steps += weight
        quick = _local.__dict__.get("quick")
        if quick is not None:  # an attempt on the event loop (offload.off_loop)
            quick[0] += weight
            if quick[0] > quick[1]:
                raise TooMuchForTheLoop
        if chars:
            self.output += chars
            if self.output > self.max_output:
                raise RenderLimitExceeded(
                    "RENDER_TOO_LARGE",
                    f"the rendered text would exceed {self.max_output} characters")
        if self.steps >= self.next_check:
            self.next_check = self.steps + _CHECK_EVERY
            if self.steps > self.max_steps:
                raise RenderLimitExceeded(
                    "RENDER_LIMIT", f"the template does too much work (over {self.max_steps} "
                    "steps; nested {{#each}} blocks multiply)")
            if self.clock() > self.deadline:
                raise RenderLimitExceeded(
                    "RENDER_LIMIT", f"rendering took longer than {self.seconds:g} s")
            time.sleep(0)  # let the event loop's thread take the GIL


_local = threading.local()


@contextmanager
def on_the_loop(steps: int) -> Iterator[None]:
    """Every render in this block, whatever its own budget, may take `steps` in all before
    TooMuchForTheLoop is raised."""
    _local.quick = [0, steps]
    try:
        yield
    finally:
        _local.quick = None


def current() -> Budget:
    """The budget of the render running on this thread (engine renders only inside
    `metered`; a helper called directly gets a throwaway one)."""
    budget: Budget | None = getattr(_local, "budget", None)
    return budget if budget is not None else Budget()


@contextmanager
def metered(budget: Budget | None = None) -> Iterator[Budget]:
    """Run renders in this block against `budget` (the enclosing one, else a new one);
    each render's output is counted afresh."""
    outer: Budget | None = getattr(_local, "budget", None)
    active = budget or outer or Budget()
    _local.budget = active
    output = active.output
    active.output = 0
    try:
        yield active
    finally:
        active.output = output
        _local.budget = outer


class BoundedOutput(pybars.strlist):
    """pybars' output list, metered (see the module docstring)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        current().step(weight=_BLOCK_WEIGHT)

    def append(self, thing: Any) -> None:
        current().step(len(thing))
        super().append(thing)

    def grow(self, thing: Any) -> None:
        if type(thing) is str:
            current().step(len(thing))
            super().append(thing)
        elif isinstance(thing, pybars.strlist):  # already flat and counted
            self.extend(thing)
        else:  # pybars' semantics for other iterables (a helper's list), metered
            for element in thing:
                self.grow(element)


# Copies of pybars' block helpers that build their own output lists, with BoundedOutput.

def _each(this: Any, options: Any, context: Any) -> Any:
    result = BoundedOutput()
    try:
        last_index = len(context) - 1
        if last_index < 0:
            raise IndexError
    except (TypeError, IndexError):
        return options["inverse"](this)
    has_keys = hasattr(context, "keys")
    for index, item in enumerate(context):
        kwargs: dict[str, Any] = {"index": index, "first": index == 0,
                                  "last": index == last_index}
        value = item
        if has_keys:
            kwargs["key"] = item
            value = context[item]
        scope = Scope(value, this, options["root"], **kwargs)
        with suppress(TypeError):  # as pybars: {{^each things}} has no fn
            result.grow(options["fn"](scope))
    return result


def _block_helper_missing(this: Any, options: Any, context: Any) -> Any:
    if callable(context):
        context = context(this)
    if context != "" and not context:
        return options["inverse"](this)
    if type(context) in (list, tuple) or isinstance(context, pybars.strlist):
        return _each(this, options, context)
    return options["fn"](this if context is True else context)


BUILTIN_HELPERS: dict[str, Callable[..., Any]] = {
    "each": _each,
    "blockHelperMissing": _block_helper_missing,
    "log": lambda this, *args: None,  # pybars' log prints to stdout
}
