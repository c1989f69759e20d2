"""The collector, tuned for a long-running process (the server and the worker).

What start-up made (modules, the schema, caches) lives as long as the process: frozen out of
the collector's sight, no full collection walks it again. A first generation larger than
CPython's 700 lets a request's or a job's short-lived objects die young without a collection
every few hundred allocations; the older generations are collected as rarely as before.
"""

from __future__ import annotations

import gc

FIRST_GENERATION = 20_000


def settle() -> None:
    """Call once start-up is done."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(FIRST_GENERATION, 20, 20)
