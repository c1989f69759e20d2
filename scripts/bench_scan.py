"""The renewal scan over many customers: how long one tenant's scan takes.

Usage: python -m scripts.bench_scan [--customers 10000]

A scratch database gets the core seeds and one tenant with N customers whose renewal dates
spread from 60 days overdue to 365 days ahead (health scores 0-100, so the critical
workflow's early trigger applies to some). The scan runs twice as the system actor under
forced RLS: the first starts the matching runs (pending, with a start job each), the second
finds nothing to do (idempotent). Target on a 2-core machine: <= 5 s for 10,000 customers.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from uuid import UUID

import asyncpg

from domain.runs import scan
from domain.seeding import service as seeding
from domain.shared.db import Database
from domain.shared.settings import Settings
from domain.tenants.onboarding import create_tenant_with_admin
from scripts import benchlib


async def _populate(settings: Settings, customers: int) -> UUID:
    await seeding.seed_core(settings.database_url)
    made = await create_tenant_with_admin(settings.database_url, name="Scan bench",
                                          admin_email="admin@scan.bench")
    owner = await asyncpg.connect(benchlib._plain(settings.database_url))
    try:
        await owner.execute(
            "INSERT INTO customers (tenant_id, external_id, name, arr, renewal_date, "
            "has_account_plan, health_score) SELECT $1, 'c' || i, 'Customer ' || i, "
            "(i % 50) * 10000, current_date - 60 + (i % 426), i % 3 = 0, i % 101 "
            "FROM generate_series(1, $2) AS i", made.tenant_id, customers)
        await owner.execute("VACUUM ANALYZE customers")
    finally:
        await owner.close()
    return made.tenant_id


async def _measure(url: str, customers: int) -> None:
    settings = Settings.from_env(database_url=url)
    tenant_id = await _populate(settings, customers)
    db = Database(settings.app_database_url, pool_size=2)
    try:
        for label in ("first scan (starts runs)", "second scan (idempotent)"):
            started = time.perf_counter()
            [report] = await scan.scan_all(db, [tenant_id])
            elapsed = time.perf_counter() - started
            print(f"{label:28s} {elapsed:6.2f} s  customers={report.customers} "
                  f"started={dict(report.started)} already={report.already}")
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    args = parser.parse_args()
    with benchlib.scratch_database("stepwise_bench_scan") as url:
        asyncio.run(_measure(url, args.customers))


if __name__ == "__main__":
    main()
