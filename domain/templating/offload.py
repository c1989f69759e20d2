"""Where renders run: a small one on the event loop, anything more in one render thread, one
render at a time per tenant.

Handing a render to the thread costs a thread switch and, as pure Python holds the GIL, up to
a switch interval of the event loop's time; most templates (a route's condition, a
notification) need a few hundred steps. So each is first tried on the loop with an allowance
of QUICK_STEPS (about a millisecond of CPU); a render that needs more is abandoned there
(TooMuchForTheLoop) and run again in the thread under its full budget. Renders are pure, so
running one again changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from domain.templating.limits import TooMuchForTheLoop, on_the_loop

T = TypeVar("T")
# Renders never run on the event loop: they run in this one thread. Pure Python holds the
# GIL, so a second thread would add no throughput, only contention with the event loop
# (scripts/bench_render_bomb.py: another tenant's viewer p99 ~20 ms with one, ~35-60 ms
# with two). Each render is bounded (limits.py), so the thread is never held for long.
RENDER_THREADS = 1
_executor = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="render")
QUICK_STEPS = 1_500  # weighted steps (limits.py) a render may take on the event loop


class _Lane:
    """One render at a time per lane (a tenant): its other renders wait here, not in the
    executor's queue ahead of other tenants' renders."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


_lanes: dict[tuple[int, Hashable], _Lane] = {}


async def off_loop(function: Callable[..., T], /, *args: Any, lane: Hashable | None = None,
                   **kwargs: Any) -> T:
    """`function(*args, **kwargs)` (checks, renders) in the render thread; with `lane`
    (e.g. the tenant id), after that lane's previous call has finished."""
    loop = asyncio.get_running_loop()
    call = partial(function, *args, **kwargs)
    try:
        with on_the_loop(QUICK_STEPS):
            return call()
    except TooMuchForTheLoop:
        pass  # more than a moment's work: the render thread, under the full budget
    if lane is None:
        return await loop.run_in_executor(_executor, call)
    key = (id(loop), lane)
    entry = _lanes.setdefault(key, _Lane())
    entry.users += 1
    try:
        async with entry.lock:
            return await loop.run_in_executor(_executor, call)
    finally:
        entry.users -= 1
        if entry.users == 0:
            _lanes.pop(key, None)
