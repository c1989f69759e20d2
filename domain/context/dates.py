"""Renewal arithmetic in a tenant's time zone.

- daysUntilRenewal: calendar days from today (in the tenant's zone) to the renewal date;
  0 on the renewal day, negative after it.
- hoursUntilRenewal: whole hours (floored) from now until the start (00:00, tenant's zone)
  of the renewal day; negative once that day has begun. DST-aware.
- daysOverdue: max(0, -daysUntilRenewal).

The clock is read once per set of figures (and once per batch of contexts): two readings
straddling midnight would make daysUntilRenewal and hoursUntilRenewal disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.shared import clock as shared_clock


def zone(name: str | None) -> tzinfo:
    """The tenant's zone; UTC when unset or unknown (the setting is validated on write)."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def clock() -> datetime:
    """The current time, from the one clock (domain.shared.clock: controllable in tests)."""
    return shared_clock.now()


def aware_now(now: datetime | None) -> datetime:
    """`now` as an aware datetime (naive values are taken as UTC); the clock if None."""
    if now is None:
        return clock()
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def today_in(tz: tzinfo, now: datetime | None = None) -> date:
    return aware_now(now).astimezone(tz).date()


def days_until(renewal: date | None, tz: tzinfo, now: datetime | None = None) -> int | None:
    if renewal is None:
        return None
    return (renewal - today_in(tz, now)).days


def hours_until(renewal: date | None, tz: tzinfo, now: datetime | None = None) -> int | None:
    if renewal is None:
        return None
    start = datetime.combine(renewal, time.min, tzinfo=tz)
    # Both in UTC: Python subtracts wall times when two datetimes share a tzinfo object,
    # which would ignore a DST change in between.
    seconds = (start.astimezone(UTC) - aware_now(now).astimezone(UTC)).total_seconds()
    return math.floor(seconds / 3600)


def renewal_figures(renewal: date | None, tz: tzinfo, now: datetime | None = None
                    ) -> dict[str, int | None]:
    now = aware_now(now)  # once: both figures from the same instant
    days = days_until(renewal, tz, now)
    return {
        "daysUntilRenewal": days,
        "hoursUntilRenewal": hours_until(renewal, tz, now),
        "daysOverdue": None if days is None else max(0, -days),
    }


def schedule_moment(schedule: Mapping[str, Any], renewal: date | None, time_zone: str | None
                    ) -> datetime | None:
    """When a scheduled notification is due: the start of the day (in the tenant's zone) on
    which daysOverdue (or daysUntilRenewal) reaches the configured number."""
    if renewal is None:
        return None
    if isinstance(schedule.get("daysOverdue"), int):
        day = renewal + timedelta(days=int(schedule["daysOverdue"]))
    elif isinstance(schedule.get("daysUntilRenewal"), int):
        day = renewal - timedelta(days=int(schedule["daysUntilRenewal"]))
    else:
        return None
    return datetime.combine(day, time.min, tzinfo=zone(time_zone)).astimezone(UTC)
