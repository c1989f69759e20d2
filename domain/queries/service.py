"""Governed NL->SQL (M12): the model writes one SELECT, the guard checks it, the query role
runs it read-only for the tenant, and the result comes back as CSV with its SQL and timing.

The LLM call happens outside any transaction; the query runs in its own READ ONLY one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any
from uuid import UUID

from domain.queries import guard, repository
from domain.shared.db import Database

ROW_LIMIT = 1000
STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
MAX_CSV_BYTES = 1_000_000
MAX_TOKENS = 1024

_SYSTEM = (resources.files("domain.queries") / "prompts" / "query_system.txt").read_text()
_FENCE = re.compile(r"^```(?:sql)?\s*(.*?)\s*```$", re.S | re.I)


def system_prompt() -> str:
    return _SYSTEM.replace("{row_limit}", str(ROW_LIMIT)).strip()


def extract_sql(text: str) -> str:
    """The SQL of a model's answer (a Markdown fence around it is tolerated)."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    return fenced.group(1).strip() if fenced else stripped


@dataclass(frozen=True)
class Result:
    sql: str
    csv: str
    columns: tuple[str, ...]
    row_count: int
    truncated: bool
    duration_ms: float

    def as_output(self) -> dict[str, Any]:
        return {"sql": self.sql, "csv": self.csv, "columns": list(self.columns),
                "rowCount": self.row_count, "truncated": self.truncated,
                "durationMs": round(self.duration_ms, 2)}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_csv(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> tuple[str, int, bool]:
    """CSV text, rows written, and whether the byte cap cut it short."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    written = 0
    for row in rows:
        mark = out.tell()
        writer.writerow([_cell(v) for v in row])
        if out.tell() > MAX_CSV_BYTES:
            out.seek(mark)
            out.truncate()
            return out.getvalue(), written, True
        written += 1
    return out.getvalue(), written, False


async def run(db: Database, tenant_id: UUID, sql: str) -> Result:
    """Check and run one generated statement for the tenant (QueryRefused / QueryFailed)."""
    # Parsing a join takes ~3 ms of CPU here: off the event loop, like anything heavy.
    checked = await asyncio.to_thread(guard.check, sql)
    started = time.perf_counter()
    found = await repository.run_read_only(
        db, tenant_id, checked.sql, row_limit=ROW_LIMIT,
        statement_timeout_ms=STATEMENT_TIMEOUT_MS, lock_timeout_ms=LOCK_TIMEOUT_MS)
    elapsed = (time.perf_counter() - started) * 1000
    text, written, cut = to_csv(found.columns, found.rows)
    return Result(sql=checked.sql, csv=text, columns=found.columns, row_count=written,
                  truncated=found.truncated or cut, duration_ms=elapsed)
