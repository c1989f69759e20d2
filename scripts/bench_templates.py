"""Compile and render times of the core workflows' notifications (in process, no database).

Usage: python -m scripts.bench_templates [--rounds 2000]

- compile: every template string of every notification (title, message, recipients,
  condition) compiled from a cold cache, in the escaping mode its channel uses, including
  the truncation check (a second compilation with a sentinel). Reported per template.
- render: `render_notification` (condition + title + message + every recipient, exactly
  what a preview or a run does) with a warm cache against a context from the real context
  builder, many rounds; µs per notification: mean, p50, p99.
Target: under 100 µs per notification with a warm cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from domain.context.builder import compose
from domain.customers.models import Customer
from domain.seeding.service import SEEDS_DIR
from domain.templating import engine
from domain.templating.notifications import is_html, notifications_of, render_notification
from domain.templating.preview import run_context
from domain.tenants.models import CompanyContacts
from domain.users.models import User

TARGET_US = 100.0


def _context(config: dict[str, Any]) -> dict[str, Any]:
    tenant = uuid.uuid4()
    manager = User(tenant_id=tenant, email="boss@acme.test", name="Morgan", role="editor")
    csm = User(tenant_id=tenant, email="csm@acme.test", name="Casey", role="editor",
               manager_id=manager.id)
    customer = Customer(tenant_id=tenant, external_id="crm-1", name="Smith & Co",
                        arr=Decimal("300000"), renewal_date=date(2026, 12, 20),
                        has_account_plan=True, health_score=35, csm_id=csm.id,
                        account_team={"ae": "ae@acme.test", "sa": "sa@acme.test"})
    contacts = CompanyContacts(tenant_id=tenant, vp_customer_success="vp@acme.test",
                               ceo="ceo@acme.test")
    context = compose(customer, time_zone="Europe/Berlin", csm=csm, manager=manager,
                      contacts=contacts, now=datetime(2026, 12, 10, 9, tzinfo=UTC))
    return run_context(context, config)


def _templates(notification: Mapping[str, Any]) -> list[tuple[str, bool]]:
    html = is_html(notification.get("type"))
    found = [(notification.get("title"), False), (notification.get("message"), html),
             (notification.get("condition"), False)]
    found += [(r, False) for r in notification.get("recipients") or []]
    return [(text, mode) for text, mode in found if isinstance(text, str)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    workflows = {p.stem: json.loads(p.read_text())
                 for p in sorted((SEEDS_DIR / "workflows").glob("*.json"))}
    print(f"{'workflow':<10} {'notes':>5} {'templates':>9} {'compile ms/tpl':>14} "
          f"{'render µs/note mean':>19} {'p50':>7} {'p99':>7}")
    all_samples: list[float] = []
    for key, config in workflows.items():
        notes = [n for _, _, n in notifications_of(config)]
        context = _context(config)
        engine.clear_caches()
        templates = [t for n in notes for t in _templates(n)]
        started = time.perf_counter()
        for text, html in templates:
            engine.compile_checked(text, html=html)
        compile_ms = (time.perf_counter() - started) * 1000 / max(1, len(templates))
        for note in notes:  # warm: the condition path compiles the text variant too
            render_notification(note, context)
        samples: list[float] = []
        gc.disable()
        try:
            for _ in range(args.rounds):
                for note in notes:
                    t0 = time.perf_counter_ns()
                    render_notification(note, context)
                    samples.append((time.perf_counter_ns() - t0) / 1000)
        finally:
            gc.enable()
        all_samples += samples
        ordered = sorted(samples)
        print(f"{key:<10} {len(notes):>5} {len(templates):>9} {compile_ms:>14.2f} "
              f"{statistics.fmean(samples):>19.1f} {ordered[len(ordered) // 2]:>7.1f} "
              f"{ordered[int(len(ordered) * 0.99)]:>7.1f}")
    ordered = sorted(all_samples)
    mean = statistics.fmean(all_samples)
    print(f"{'all':<10} {'':>5} {'':>9} {'':>14} {mean:>19.1f} "
          f"{ordered[len(ordered) // 2]:>7.1f} {ordered[int(len(ordered) * 0.99)]:>7.1f}")
    verdict = "OK" if mean < TARGET_US else "OVER"
    print(f"target < {TARGET_US:.0f} µs per notification (warm cache): {verdict}; "
          f"cache {engine.cache_info()['compile']}")


if __name__ == "__main__":
    main()
