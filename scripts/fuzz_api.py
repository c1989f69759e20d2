"""Fuzz the GraphQL API for longer than CI does and print the figures.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python -m scripts.fuzz_api --ops 5000 --seed 1

The same strategies as tests/test_fuzz_api.py (tests/fuzzlib.py: hypothesis-graphql over the
live schema, as the admin of a seeded tenant, the app in-process) on a scratch database of
its own. Prints how many operations ran, how they ended (data, user error codes, GraphQL
error codes, 4xx), and each failure class (INTERNAL, 5xx, a leak) with the smallest document
that showed it; exits 1 when there is any. Needs the dev extras (hypothesis-graphql).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections import defaultdict

import typer

from domain.shared.settings import Settings
from scripts.benchlib import scratch_database


def main(ops: int = typer.Option(5000, "--ops", min=1, help="Operations to send."),
         seed: int = typer.Option(0, "--seed", help="Hypothesis seed (same seed, same run)."),
         include_known: bool = typer.Option(
             False, "--include-known", help="Also send the families other branches fix."),
         ) -> None:
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import seed as hypothesis_seed
    from hypothesis import settings as hypothesis_settings

    from tests.fuzzlib import Fuzzer, Operation, describe, known_families, operations

    os.environ.setdefault("STEPWISE_JWT_SECRET", secrets.token_urlsafe(48))
    started = time.monotonic()
    with scratch_database("stepwise_fuzz") as url:
        fuzzer = Fuzzer(Settings.from_env(database_url=url))
        with fuzzer.running(quiet=True):
            exclude = None if include_known else known_families

            @hypothesis_seed(seed)
            @hypothesis_settings(max_examples=ops, database=None, deadline=None,
                                 phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(operation=operations(fuzzer.world, fuzzer.schema, exclude=exclude))
            def send(operation: Operation) -> None:
                fuzzer.check(operation)

            send()
    tally = fuzzer.tally
    elapsed = time.monotonic() - started
    print(f"operations run: {tally.operations} in {elapsed:.0f} s (seed {seed})")
    print("by outcome:")
    for kind, count in tally.by_kind.most_common():
        print(f"  {kind:<10} {count}")
    print("codes (payload user errors and GraphQL error codes):")
    for code, count in tally.by_code.most_common():
        print(f"  {code:<28} {count}")
    never = sorted(set(tally.by_field) - set(tally.reached))
    print(f"root fields sent: {len(tally.by_field)}, reached a resolver: {len(tally.reached)}"
          + (f" (never: {', '.join(never)})" if never else ""))
    groups = defaultdict(list)
    for failure in tally.failures:
        where = failure.cause.rsplit(" at ", 1)[-1] if failure.cause else failure.outcome.failure
        groups[(failure.outcome.failure, where)].append(failure)
    print(f"failures: {len(tally.failures)} in {len(groups)} classes")
    for (what, where), failures in sorted(groups.items(), key=lambda g: -len(g[1])):
        smallest = min(failures, key=lambda f: len(json.dumps(f.body)))
        print(f"\n== {len(failures)} x {what} at {where}\n{describe(smallest)}")
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    typer.run(main)
