"""Throughput of `{ viewer }` with one server process: requests/s, p50 and p99.

Usage: python -m scripts.bench_viewer [--seconds 10] [--connections 16]
Uses DATABASE_URL's server (or the embedded one) with a scratch database it drops afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from domain.auth import tokens
from domain.shared.settings import Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import benchlib

VIEWER = "query Viewer { viewer { id email name role tenant { id name } } }"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with benchlib.scratch_database() as url:
        settings = Settings.from_env(database_url=url)
        made = asyncio.run(create_tenant_with_admin(
            settings.database_url, name="Bench", admin_email="b@bench.test"))
        token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                            user_id=made.admin.id, role=Role.ADMIN)
        os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret
        with benchlib.server_process(url) as base:
            body = {"query": VIEWER, "operationName": "Viewer"}
            benchlib.load(f"{base}/graphql", body, token=token, seconds=2)  # warm-up
            result = benchlib.load(f"{base}/graphql", body, token=token, seconds=args.seconds,
                                   connections=args.connections)
            health = benchlib.load(f"{base}/healthz", None, seconds=3,
                                   connections=args.connections)
    print(result.line("GraphQL { viewer } (1 process)"))
    print(health.line("GET /healthz (no GraphQL, no DB)"))


if __name__ == "__main__":
    main()
