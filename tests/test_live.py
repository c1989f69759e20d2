"""Live runs over real sockets: runEvents resumes from the log, survives a lost listener,
crosses server processes, and never streams another tenant's events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from domain.auth import tokens
from domain.shared.actor import Role
from schema.app import create_app
from scripts.benchlib import server_process
from tests.conftest import _plain, serving
from tests.factories_runs import Team, act, make_customer, make_team, run, start
from tests.factories_workflows import seed_core
from tests.workerlib import eventually

pytestmark = pytest.mark.asyncio

RUN_EVENTS = ("subscription RunEvents($runId: ID!, $afterSeq: Int) { "
              "runEvents(runId: $runId, afterSeq: $afterSeq) { seq type stepId at payload } }")


@pytest_asyncio.fixture(autouse=True)
async def _core(settings) -> None:  # type: ignore[no-untyped-def]
    await seed_core(settings)


@pytest_asyncio.fixture
async def served(settings):  # type: ignore[no-untyped-def]
    """A server of this test's own, with its app (and its broker) at hand."""
    application = create_app(settings)
    async with serving(application) as address:
        await asyncio.wait_for(application.state.broker.listening.wait(), 10)
        yield address, application


class Socket:
    """A graphql-transport-ws (or legacy graphql-ws) client over a real socket."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol

    @classmethod
    async def open(cls, address: str, token: str, protocol: str = "graphql-transport-ws"
                   ) -> Socket:
        ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=[protocol])
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": f"Bearer {token}"}}))
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "connection_ack":
                return cls(ws, protocol)
            assert message["type"] == "ka", message

    async def subscribe(self, query: str, variables: dict[str, Any], op_id: str = "1") -> None:
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        await self.ws.send(json.dumps({"type": kind, "id": op_id,
                                       "payload": {"query": query, "variables": variables}}))

    async def message(self, wait: float = 10) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
            if message["type"] not in ("ka", "ping", "pong"):
                return message

    async def events(self, *, until_seq: int | None = None, wait: float = 15
                     ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Events until `until_seq` is seen, or until the operation ends (its last message)."""
        seen: list[dict[str, Any]] = []
        while True:
            message = await self.message(wait)
            if message["type"] in ("next", "data") and "errors" not in message["payload"]:
                seen.append(message["payload"]["data"]["runEvents"])
                if until_seq is not None and seen[-1]["seq"] >= until_seq:
                    return seen, None
            else:
                return seen, message

    async def close(self) -> None:
        await self.ws.close()


async def _waiting_run(gql, settings) -> tuple[Team, str]:  # type: ignore[no-untyped-def]
    team = await make_team(gql, settings)
    customer = await make_customer(gql, team, days=10, arr=300000)
    run_id = (await start(gql, team, "critical", customer["id"]))["run"]["id"]
    return team, run_id


async def _last_seq(gql, team: Team, run_id: str) -> int:  # type: ignore[no-untyped-def]
    return int((await run(gql, team, run_id))["events"][-1]["seq"])


async def _pause_resume(gql, team: Team, run_id: str, times: int = 1) -> None:  # type: ignore[no-untyped-def]
    for _ in range(times):
        assert (await act(gql, team, "PauseRun", "pauseRun", runId=run_id))["errors"] == []
        assert (await act(gql, team, "ResumeRun", "resumeRun", runId=run_id))["errors"] == []


def _same_as_log(seen: list[dict[str, Any]], detail: dict[str, Any]) -> None:
    logged = [{k: e[k] for k in ("seq", "type", "stepId", "at", "payload")}
              for e in detail["events"]]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))  # in order, no duplicates
    assert seen == logged


class TestResuming:
    async def test_disconnect_then_resume_with_after_seq_equals_the_log(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        first = await Socket.open(address, team.tenant.token)
        await first.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        seen, _ = await first.events(until_seq=await _last_seq(gql, team, run_id))
        await _pause_resume(gql, team, run_id)  # live events
        more, _ = await first.events(until_seq=await _last_seq(gql, team, run_id))
        seen += more
        await first.close()
        await _pause_resume(gql, team, run_id, times=2)  # committed while disconnected
        second = await Socket.open(address, team.tenant.token)
        await second.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": seen[-1]["seq"]})
        assert (await act(gql, team, "CancelRun", "cancelRun", runId=run_id))["errors"] == []
        rest, end = await second.events()
        assert end == {"type": "complete", "id": "1"}  # completes after run_cancelled
        seen += rest
        assert seen[-1]["type"] == "run_cancelled"
        _same_as_log(seen, await run(gql, team, run_id))

    async def test_the_original_after_seq_resent_replays_the_log_once(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        await _pause_resume(gql, team, run_id)
        assert (await act(gql, team, "CancelRun", "cancelRun", runId=run_id))["errors"] == []
        for _ in range(2):  # graphql-ws re-sends the original payload on retry
            socket = await Socket.open(address, team.tenant.token)
            await socket.subscribe(RUN_EVENTS, {"runId": run_id})
            seen, end = await socket.events()
            assert end == {"type": "complete", "id": "1"}
            _same_as_log(seen, await run(gql, team, run_id))
            await socket.close()

    async def test_a_finished_run_seen_to_its_end_completes_at_once(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
        socket = await Socket.open(address, team.tenant.token)
        await socket.subscribe(RUN_EVENTS, {"runId": run_id,
                                            "afterSeq": await _last_seq(gql, team, run_id)})
        assert await socket.events() == ([], {"type": "complete", "id": "1"})


class TestFanOut:
    async def test_the_listener_killed_mid_stream_loses_nothing(
        self, gql, settings, served
    ) -> None:
        address, application = served
        broker = application.state.broker
        team, run_id = await _waiting_run(gql, settings)
        socket = await Socket.open(address, team.tenant.token)
        await socket.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        seen, _ = await socket.events(until_seq=await _last_seq(gql, team, run_id))
        connects, pid = broker.connects, broker.backend_pid
        owner = await asyncpg.connect(_plain(settings.database_url))
        try:
            assert await owner.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await owner.close()
        await _pause_resume(gql, team, run_id, times=2)  # perhaps while nobody listens
        await eventually(lambda: asyncio.sleep(0, broker.connects > connects),
                         what="the listener to reconnect")
        assert broker.backend_pid != pid
        await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
        rest, end = await socket.events()
        assert end == {"type": "complete", "id": "1"}
        _same_as_log(seen + rest, await run(gql, team, run_id))

    async def test_events_cross_server_processes(self, gql, settings, database_url) -> None:
        team, run_id = await _waiting_run(gql, settings)
        manager = server_process(database_url)
        base = await asyncio.to_thread(manager.__enter__)
        try:
            socket = await Socket.open(base.removeprefix("http://"), team.tenant.token)
            await socket.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
            seen, _ = await socket.events(until_seq=await _last_seq(gql, team, run_id))
            # Driven by this process (the test's app); streamed by the other one.
            await _pause_resume(gql, team, run_id)
            await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
            rest, end = await socket.events()
            assert end == {"type": "complete", "id": "1"}
            _same_as_log(seen + rest, await run(gql, team, run_id))
            await socket.close()
        finally:
            await asyncio.to_thread(manager.__exit__, None, None, None)


    async def test_a_client_that_stops_reading_holds_back_no_one_and_loses_nothing(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        host, port = address.rsplit(":", 1)
        # A client that stops reading (a tiny receive buffer, a queue of one message) with
        # heavy streams: what the kernel buffers cannot hold waits in uvicorn's flow control
        # for this socket only. (The wake-up buffer a blocked stream overflows is proven in
        # tests/test_live_broker.py.)
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        raw.connect((host, int(port)))
        ws = await websockets.connect(f"ws://{address}/graphql", sock=raw, max_queue=1,
                                      subprotocols=[Subprotocol("graphql-transport-ws")])
        await ws.send(json.dumps({"type": "connection_init",
                                  "payload": {"Authorization": f"Bearer {team.tenant.token}"}}))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        slow = Socket(ws, "graphql-transport-ws")
        streams = [str(i) for i in range(20)]  # the server's limit per connection
        # Heavy messages (the payload under 29 aliases): megabytes queue up for the slow
        # client, more than the kernel's socket buffers hold.
        heavy = RUN_EVENTS.replace("payload }", "payload " + " ".join(
            f"p{i}: payload" for i in range(29)) + " }")
        for op_id in streams:
            await slow.subscribe(heavy, {"runId": run_id, "afterSeq": 0}, op_id=op_id)
        fast = await Socket.open(address, team.tenant.token)
        await fast.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        seen, _ = await fast.events(until_seq=await _last_seq(gql, team, run_id))
        for _ in range(40):  # 80 events while the slow client reads nothing
            await _pause_resume(gql, team, run_id)
            more, _ = await fast.events(until_seq=await _last_seq(gql, team, run_id), wait=10)
            seen += more  # each arrives while the slow one is still stuck
        await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
        rest, end = await fast.events()
        assert end == {"type": "complete", "id": "1"}
        detail = await run(gql, team, run_id)
        _same_as_log(seen + rest, detail)
        # The slow client reads at last: every stream has every event once, in order.
        got: dict[str, list[dict[str, Any]]] = {op_id: [] for op_id in streams}
        done: set[str] = set()
        while done != set(streams):
            message = await slow.message(wait=15)
            if message["type"] == "complete":
                done.add(message["id"])
            else:
                assert message["type"] == "next", message
                event = message["payload"]["data"]["runEvents"]
                got[message["id"]].append({k: event[k] for k in ("seq", "type", "stepId", "at",
                                                               "payload")})
        for op_id in streams:
            _same_as_log(got[op_id], detail)
        await fast.close()
        await slow.close()


class TestWhoListens:
    async def test_another_tenants_run_is_not_found_and_streams_nothing(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        other = await make_team(gql, settings)
        socket = await Socket.open(address, other.tenant.token)
        await socket.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        await _pause_resume(gql, team, run_id)
        seen, end = await socket.events()
        assert seen == []
        assert end is not None
        errors = end["payload"] if end["type"] == "error" else end["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
        for unknown in (str(uuid.uuid4()), "not-an-id"):
            await socket.subscribe(RUN_EVENTS, {"runId": unknown}, op_id=unknown)
            seen, end = await socket.events()
            assert seen == []
            assert end is not None

    async def test_an_expiring_token_ends_the_stream_with_an_error(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        short = team.tenant.token_for(team.tenant.admin_id, Role.ADMIN, ttl=2)
        socket = await Socket.open(address, short)
        await socket.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        seen, end = await socket.events(wait=10)  # no events come: the token runs out
        assert seen
        assert end is not None
        errors = end["payload"] if end["type"] == "error" else end["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"

    async def test_a_deleted_user_stream_ends_at_the_next_event(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        socket = await Socket.open(address, team.manager_token)
        await socket.subscribe(RUN_EVENTS, {"runId": run_id, "afterSeq": 0})
        _seen, _ = await socket.events(until_seq=await _last_seq(gql, team, run_id))
        owner = await asyncpg.connect(_plain(settings.database_url))
        try:
            await owner.execute("UPDATE users SET manager_id = NULL WHERE manager_id = $1",
                                team.manager_id)
            await owner.execute("DELETE FROM users WHERE id = $1", team.manager_id)
        finally:
            await owner.close()
        await _pause_resume(gql, team, run_id)
        more, end = await socket.events()
        assert more == []
        assert end is not None
        errors = end["payload"] if end["type"] == "error" else end["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


@contextlib.asynccontextmanager
async def _raw(address: str, protocol: str) -> AsyncIterator[Any]:
    ws = await websockets.connect(f"ws://{address}/graphql", subprotocols=[protocol])
    try:
        yield ws
    finally:
        await ws.close()


class TestCloseCodes:
    @pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
    async def test_bad_and_expired_tokens_close_4403_before_anything_runs(
        self, settings, served, protocol
    ) -> None:
        address, _ = served
        from tests.factories import make_tenant

        tenant = await make_tenant(settings)
        expired = tokens.mint(secret=settings.jwt_secret, tenant_id=tenant.id,
                              user_id=tenant.admin_id, role=Role.ADMIN, ttl=-10)
        for payload in ({"Authorization": "Bearer nope"}, {"Authorization": f"Bearer {expired}"},
                        {}):
            async with _raw(address, protocol) as ws:
                await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
                with pytest.raises(ConnectionClosed):  # noqa: PT012 - messages, then the close
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        assert message["type"] == "connection_error", message
                assert ws.close_code == 4403, (protocol, payload)

    @pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
    async def test_documents_graphql_refuses_end_the_operation_with_a_code(
        self, settings, served, protocol
    ) -> None:
        address, _ = served
        from tests.factories import make_tenant

        tenant = await make_tenant(settings)
        socket = await Socket.open(address, tenant.token, protocol)
        for op_id, (document, variables, code) in enumerate([
            ("subscription { runEvents(runId: ", {}, "GRAPHQL_PARSE_FAILED"),
            ("subscription { runEvents(runId: \"x\") { nope } }", {},
             "GRAPHQL_VALIDATION_FAILED"),
            ("subscription($r: ID!) { runEvents(runId: $r) { seq } }", {},
             "BAD_USER_INPUT"),
            ("{ viewer { " + "id " * 5000 + "} }", {}, "GRAPHQL_PARSE_FAILED"),  # tokens
        ]):
            await socket.subscribe(document, variables, op_id=str(op_id))
            end = await socket.message()
            assert end["type"] in ("error", "data", "next"), end
            payload = end["payload"]
            errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
            assert [e["extensions"]["code"] for e in errors] == [code], (protocol, end)
        await socket.close()

    async def test_the_legacy_protocol_answers_queries_and_streams_runs(
        self, gql, settings, served
    ) -> None:
        address, _ = served
        team, run_id = await _waiting_run(gql, settings)
        socket = await Socket.open(address, team.tenant.token, "graphql-ws")
        await socket.subscribe("{ viewer { id } }", {}, op_id="q")
        answer = await socket.message()
        assert answer["type"] == "data", answer
        assert "errors" not in answer["payload"], answer
        assert answer["payload"]["data"]["viewer"]["id"]
        assert (await socket.message())["type"] == "complete"
        await socket.subscribe(RUN_EVENTS, {"runId": run_id})
        await act(gql, team, "CancelRun", "cancelRun", runId=run_id)
        seen, end = await socket.events()
        assert end == {"type": "complete", "id": "1"}
        _same_as_log(seen, await run(gql, team, run_id))
