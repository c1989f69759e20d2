"""The one clock: real time, or a controllable one for tests and demos.

Time-based behaviour (snooze days, scheduled escalations, renewal windows) is tested by
moving this clock, never by sleeping. With STEPWISE_CLOCK_FILE set, the file holds an
offset in seconds added to real time (so time keeps flowing, and every process reading the
same file, the server and the worker alike, agrees on "now"); `advance` moves it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

_cache: tuple[float, float] | None = None  # (file mtime, offset seconds)


def _offset() -> float:
    global _cache
    path = os.environ.get("STEPWISE_CLOCK_FILE")
    if not path:
        return 0.0
    try:
        mtime = os.stat(path).st_mtime_ns / 1e9
    except FileNotFoundError:
        return 0.0
    if _cache is None or _cache[0] != mtime:
        try:
            text = Path(path).read_text().strip()
            _cache = (mtime, float(text) if text else 0.0)
        except (OSError, ValueError):
            return 0.0
    return _cache[1]


def now() -> datetime:
    """The current time (aware, UTC), shifted by the controllable offset if one is set."""
    current = datetime.now(UTC)
    offset = _offset()
    return current + timedelta(seconds=offset) if offset else current


def advance(by: timedelta, *, path: str | Path | None = None) -> None:
    """Move the controllable clock forward (tests, demos); needs STEPWISE_CLOCK_FILE."""
    target = Path(path or os.environ["STEPWISE_CLOCK_FILE"])
    current = float(target.read_text().strip() or 0) if target.exists() else 0.0
    temporary = target.with_suffix(".tmp")
    temporary.write_text(str(current + by.total_seconds()))
    os.replace(temporary, target)  # atomic: readers never see a half-written offset
