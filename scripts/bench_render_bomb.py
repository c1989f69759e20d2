"""One tenant renders the worst templates the caps allow; another tenant's `{ viewer }` waits?

Usage: python -m scripts.bench_render_bomb [--seconds 20] [--attackers 4] [--templates mixed]

A scratch database (DATABASE_URL's server, or the embedded one) gets two tenants; the
server runs as a uvicorn process (scripts/benchlib.py). Tenant B's `{ viewer { id } }` is
measured alone first (the baseline), then again while tenant A's clients (a separate
process, each client one request at a time) send renderTemplate in a loop with:

- `bomb`: six nested `{{#each @root}}` (178 characters): refused at the work budget
  (RENDER_LIMIT) after the most work a render may do;
- `wide`: three nested each printing `{{@root}}` as JSON: refused at the output cap
  (RENDER_TOO_LARGE);
- `fresh`: the bomb with a different literal each time, so every request also pays the
  check and compilation (no cache helps);
- `mixed` (default): all three in turn.

Printed: B's viewer p50/p99 alone and under attack (target: p99 under 100 ms under attack),
B's own short renderTemplate under attack (renders queue per tenant: B waits for at most
one of A's), and A's render latencies with the codes it got back.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
from collections import Counter
from typing import Any

import httpx

from domain.auth import tokens
from domain.shared.settings import Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import benchlib
from tests.factories import contract_operation

TARGET_P99_MS = 100.0
BOMB = "{{#each @root}}" * 6 + "{{@index}}" + "{{/each}}" * 6
WIDE = "{{#each @root}}" * 3 + "{{@root}}" + "{{/each}}" * 3
RENDER = ("query($t: String!, $c: ID!) { renderTemplate(template: $t, customerId: $c) "
          "{ output errors { code } } }")


def _templates(kind: str, n: int) -> str:
    if kind == "mixed":
        kind = ("bomb", "wide", "fresh")[n % 3]
    if kind == "bomb":
        return BOMB
    if kind == "wide":
        return WIDE
    return BOMB.replace("{{@index}}", f"{n}-{{{{@index}}}}")  # a new template every time


async def _tokens(settings: Settings) -> tuple[str, str]:
    minted = []
    for name in ("A", "B"):
        made = await create_tenant_with_admin(settings.database_url, name=f"Tenant {name}",
                                              admin_email=f"admin-{name.lower()}@bench.test")
        minted.append(tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                                  user_id=made.admin.id, role=Role.ADMIN))
    return minted[0], minted[1]


def _customer(base: str, token: str) -> str:
    response = httpx.post(f"{base}/graphql", headers={"Authorization": f"Bearer {token}"},
                          json={"query": contract_operation("UpsertCustomer"), "variables": {
                              "input": {"externalId": "bomb-1", "name": "Target",
                                        "arr": 250000, "renewalDate": "2027-01-15",
                                        "accountTeam": {"ae": "ae@bench.test"}}}},
                          timeout=30)
    made = response.json()["data"]["upsertCustomer"]
    if made["errors"]:
        raise RuntimeError(made["errors"])
    customer: str = made["customer"]["id"]
    return customer


def _attack(base: str, token: str, customer: str, kind: str, clients: int, seconds: float,
            out: Any) -> None:
    """Tenant A's clients (run in their own process): latencies and codes to `out`."""

    async def main() -> tuple[list[float], Counter[str]]:
        latencies: list[float] = []
        codes: Counter[str] = Counter()
        stop = time.monotonic() + seconds
        headers = {"Authorization": f"Bearer {token}"}

        async def client(http: httpx.AsyncClient, offset: int) -> None:
            n = offset
            while time.monotonic() < stop:
                body = {"query": RENDER, "variables": {"t": _templates(kind, n), "c": customer}}
                started = time.perf_counter()
                response = await http.post(f"{base}/graphql", json=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                result = (response.json().get("data") or {}).get("renderTemplate")
                if result is None:
                    codes[f"HTTP {response.status_code} / no result"] += 1
                else:
                    codes[result["errors"][0]["code"] if result["errors"]
                          else f"rendered {len(result['output'] or '') // 1000} kB"] += 1
                n += clients

        async with httpx.AsyncClient(timeout=60) as http:
            await asyncio.gather(*(client(http, i) for i in range(clients)))
        return latencies, codes

    out.put(asyncio.run(main()))


async def _viewer(base: str, token: str, seconds: float) -> list[float]:
    return await _timed(base, token, seconds, {"query": "{ viewer { id } }"})


async def _timed(base: str, token: str, seconds: float, body: dict[str, Any]) -> list[float]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=60) as http:
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = await http.post(f"{base}/graphql", json=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or "errors" in response.json():
                raise RuntimeError(f"request failed: {response.text[:200]}")
            await asyncio.sleep(0.005)  # a client clicking, not a load generator
    return latencies


def _cuts(samples: list[float]) -> tuple[float, float, float]:
    if len(samples) < 2:
        return (samples[0],) * 3 if samples else (float("nan"),) * 3
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98], max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--attackers", type=int, default=4, help="tenant A's clients")
    parser.add_argument("--templates", default="mixed",
                        choices=("mixed", "bomb", "wide", "fresh"))
    args = parser.parse_args()
    with benchlib.scratch_database("stepwise_bomb") as url:
        settings = Settings.from_env(database_url=url)
        os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret
        token_a, token_b = asyncio.run(_tokens(settings))
        with benchlib.server_process(url) as base:
            customer = _customer(base, token_a)
            asyncio.run(_viewer(base, token_b, 1))  # warm-up
            alone = asyncio.run(_viewer(base, token_b, min(args.seconds, 10)))
            results: Any = multiprocessing.get_context("spawn").Queue()
            attacker = multiprocessing.get_context("spawn").Process(
                target=_attack, args=(base, token_a, customer, args.templates,
                                      args.attackers, args.seconds + 1, results))
            attacker.start()
            time.sleep(1)  # let the attack get going before measuring
            customer_b = _customer(base, token_b)
            legit = {"query": RENDER, "variables": {
                "t": "{{customer.name}} renews in {{workflow.daysUntilRenewal}} days",
                "c": customer_b}}

            async def tenant_b() -> tuple[list[float], list[float]]:
                return await asyncio.gather(  # type: ignore[return-value]
                    _viewer(base, token_b, args.seconds - 1),
                    _timed(base, token_b, args.seconds - 1, legit))

            under, b_renders = asyncio.run(tenant_b())
            renders, codes = results.get(timeout=120)
            attacker.join(timeout=30)
    p50, p99, worst = _cuts(alone)
    print(f"B {{ viewer }} alone:        p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {worst:6.1f} ms"
          f"  ({len(alone)} requests)")
    p50, p99, worst = _cuts(under)
    verdict = "OK" if p99 < TARGET_P99_MS else "OVER TARGET"
    print(f"B {{ viewer }} under attack: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {worst:6.1f} ms"
          f"  ({len(under)} requests) -> {verdict} (target p99 < {TARGET_P99_MS:.0f} ms)")
    r50, r99, rmax = _cuts(b_renders)
    print(f"B renderTemplate (a short one) under attack: p50 {r50:6.1f} ms  p99 {r99:6.1f} ms"
          f"  max {rmax:6.1f} ms  ({len(b_renders)} renders)")
    r50, r99, rmax = _cuts(renders)
    print(f"A renderTemplate ({args.templates}, {args.attackers} clients): p50 {r50:6.1f} ms  "
          f"p99 {r99:6.1f} ms  max {rmax:6.1f} ms  ({len(renders)} renders, "
          f"{len(renders) / args.seconds:.1f}/s; codes {dict(codes)})")


if __name__ == "__main__":
    main()
