"""The tools a chat model may call, each run and logged: rag_search (the tenant's knowledge
base), database_query (the governed NL->SQL of domain/queries) and create_chart (a
Vega-Lite spec over the last query result, stored as a `chart` message).

A tool never raises to the loop: a failure becomes an `is_error` tool_result the model can
read (and a logged call with its error), so one bad call does not end the conversation.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from uuid import UUID

from domain.knowledge import service as knowledge
from domain.queries import service as queries
from domain.shared import clock
from domain.shared.db import Database
from domain.shared.errors import DomainError
from domain.usage import service as usage

log = logging.getLogger("stepwise.chat")

DEFINITIONS: list[dict[str, Any]] = json.loads(
    (resources.files("domain.chat") / "prompts" / "tools.json").read_text())
BY_NAME = {tool["name"]: tool for tool in DEFINITIONS}
FOR_THREAD = {"llm": ["rag_search", "database_query", "create_chart"],
              "custom": ["rag_search", "database_query", "create_chart"],
              "analysis": ["database_query", "create_chart"],
              "rag": ["rag_search"]}
MAX_RESULT_CHARS = 6000  # what a tool_result may put back into the context
CHART_ROWS = 500
VEGA_LITE = "https://vega.github.io/schema/vega-lite/v5.json"


def definitions(names: list[str]) -> list[dict[str, Any]]:
    return [BY_NAME[name] for name in names if name in BY_NAME]


class ToolFailed(DomainError):
    code = "TOOL_FAILED"


@dataclass
class ToolBox:
    """What one reply's tools share: the tenant, the last query result, what to store."""

    db: Database
    tenant_id: UUID
    thread: Mapping[str, Any]
    allowed: list[str]
    last_query: queries.Result | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    charts: list[dict[str, Any]] = field(default_factory=list)
    tokens: int = 0  # what the tools' own model calls used (database_query)

    async def run(self, name: str, arguments: Mapping[str, Any]) -> tuple[str, bool]:
        """The tool_result content for one call, and whether it is an error; logged."""
        started = time.perf_counter()
        output: Any = None
        error: str | None = None
        try:
            if name not in self.allowed:
                raise ToolFailed(f"no tool {name!r} in this conversation")
            output = await getattr(self, f"_{name}")(arguments)
        except DomainError as failure:
            error = failure.message
        except Exception:  # a bug in a tool: logged here, the model is told it failed
            log.exception("chat tool %s failed", name)
            error = "the tool failed"
        self.calls.append({"tool_name": name, "input": dict(arguments), "output": output,
                           "success": error is None, "error": error,
                           "duration_ms": round((time.perf_counter() - started) * 1000)})
        if error is not None:
            return error, True
        text = json.dumps(output, default=str)
        return (text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "…"), False

    async def _rag_search(self, arguments: Mapping[str, Any]) -> Any:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("rag_search needs a query")
        limit = arguments.get("limit", 5)
        async with self.db.transaction(self.tenant_id, read_only=True) as tx:
            found = await knowledge.search(tx.session, query,
                                           limit=limit if isinstance(limit, int) else 5)
        for hit in found:
            if not any(c["chunkId"] == hit["chunkId"] for c in self.citations):
                self.citations.append({k: hit[k] for k in ("documentId", "chunkId", "title",
                                                           "ordinal", "rank")})
        return {"results": found}

    async def _database_query(self, arguments: Mapping[str, Any]) -> Any:
        from domain.shared import llm

        question = arguments.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolFailed("database_query needs a question")
        system = queries.system_prompt()
        async with self.db.transaction(self.tenant_id) as tx:
            reservation = await usage.reserve(tx.session, self.tenant_id, usage.Call(
                purpose="chat_query", model=llm.config().model,
                prompt_chars=len(system) + len(question), max_tokens=queries.MAX_TOKENS,
                run_id=self.thread["run_id"], step_id=self.thread["step_id"]),
                now=clock.now())
        try:
            completion = await llm.complete(system=system, max_tokens=queries.MAX_TOKENS,
                                            messages=[{"role": "user", "content": question}])
        except llm.LLMError:
            async with self.db.transaction(self.tenant_id) as tx:
                await usage.release(tx.session, self.tenant_id, reservation, now=clock.now())
            raise
        async with self.db.transaction(self.tenant_id) as tx:
            await usage.settle(tx.session, self.tenant_id, reservation, model=completion.model,
                               usage=completion.usage.__dict__, now=clock.now())
        self.tokens += completion.usage.input_tokens + completion.usage.output_tokens
        result = await queries.run(self.db, self.tenant_id, queries.extract_sql(completion.text))
        self.last_query = result
        return result.as_output()

    async def _create_chart(self, arguments: Mapping[str, Any]) -> Any:
        result = self.last_query
        if result is None:
            raise ToolFailed("create_chart draws the last database_query result: run one first")
        x, y = arguments.get("x"), arguments.get("y")
        for axis, column in (("x", x), ("y", y)):
            if column not in result.columns:
                raise ToolFailed(f"{axis}: {column!r} is not a column of the last result "
                                 f"({', '.join(result.columns)})")
        mark = arguments.get("mark")
        if mark not in BY_NAME["create_chart"]["input_schema"]["properties"]["mark"]["enum"]:
            raise ToolFailed("mark: one of bar, line, point, area, arc")
        title = str(arguments.get("title") or "Chart")[:200]
        spec = vega_lite(result, title=title, mark=str(mark), x=str(x), y=str(y))
        self.charts.append({"title": title, "spec": spec})
        return {"chart": title, "rows": len(spec["data"]["values"])}


def _value(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def vega_lite(result: queries.Result, *, title: str, mark: str, x: str, y: str
              ) -> dict[str, Any]:
    """A Vega-Lite v5 spec with the result's rows inline (at most CHART_ROWS)."""
    rows = list(csv.DictReader(io.StringIO(result.csv)))[:CHART_ROWS]
    values = [{key: _value(value) for key, value in row.items()} for row in rows]

    def kind(column: str) -> str:
        numbers = [v[column] for v in values if v.get(column) not in ("", None)]
        return "quantitative" if numbers and all(
            isinstance(n, int | float) for n in numbers) else "nominal"

    if mark == "arc":
        encoding = {"theta": {"field": y, "type": "quantitative"},
                    "color": {"field": x, "type": "nominal"}}
    else:
        encoding = {"x": {"field": x, "type": kind(x)}, "y": {"field": y, "type": kind(y)}}
    return {"$schema": VEGA_LITE, "title": title, "data": {"values": values}, "mark": mark,
            "encoding": encoding}
