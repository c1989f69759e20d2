"""`./scripts/demo` as a newcomer runs it, on an embedded PostgreSQL of its own: the server,
the worker and the fake LLM come up, a run started with the printed token moves to its end,
and SIGTERM (what process managers send) leaves no process behind, PostgreSQL included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.shared.settings import PROJECT_ROOT
from tests.workerlib import free_port


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in command:
                found.append(int(entry.name))
    return found


def _wait_for(probe: Any, *, deadline: float, what: str) -> Any:
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {deadline}s waiting for {what}")


class Demo:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.log = data / "demo.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("STEPWISE_", "ANTHROPIC_", "DATABASE_URL"))}
        env.update(STEPWISE_DATA_DIR=str(data / "state"), PORT=str(self.port),
                   FAKE_LLM_PORT=str(free_port()))
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen([str(PROJECT_ROOT / "scripts" / "demo")],
                                            cwd=PROJECT_ROOT, env=env, stdout=handle,
                                            stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self) -> str:
        for line in self.output().splitlines():
            if line.startswith("{") and '"token"' in line:
                return str(json.loads(line)["token"])
        raise AssertionError("the demo printed no token:\n" + self.output()[-2000:])

    def gql(self, query: str, **variables: Any) -> dict[str, Any]:
        answer = httpx.post(f"http://127.0.0.1:{self.port}/graphql",
                            json={"query": query, "variables": variables},
                            headers={"Authorization": f"Bearer {self.token()}"}, timeout=10)
        body = answer.json()
        assert "errors" not in body, body
        return dict(body["data"])


@pytest.fixture
def demo() -> Iterator[Demo]:
    # Not under pytest's tmp_path: the embedded server runs as another OS user under root.
    data = Path(tempfile.mkdtemp(prefix="stepwise-demo-"))
    os.chmod(data, 0o755)  # noqa: S103 - the server's OS user must reach its data directory
    started = Demo(data)
    try:
        yield started
    finally:
        if started.process.poll() is None:
            os.kill(started.process.pid, signal.SIGKILL)
            started.process.wait(10)
        for pid in _processes_mentioning(str(data)):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(data, ignore_errors=True)


def test_the_demo_runs_a_workflow_and_sigterm_stops_everything(demo: Demo) -> None:
    _wait_for(lambda: "Stepwise: http" in demo.output() or demo.process.poll() is not None,
              deadline=180, what="the demo to start")
    assert demo.process.poll() is None, demo.output()[-3000:]
    customers = demo.gql("{ customers(first: 50) { edges { node { id name } } } }")
    northwind = next(edge["node"]["id"] for edge in customers["customers"]["edges"]
                     if edge["node"]["name"] == "Northwind Traders")
    started = demo.gql("""mutation($input: StartRunInput!) { startRun(input: $input) {
        run { id } errors { code } } }""", input={"workflowKey": "critical",
                                                  "customerId": northwind})
    assert started["startRun"]["errors"] == []
    run_id = started["startRun"]["run"]["id"]
    choose = """mutation($r: ID!, $b: String!) { chooseBranch(runId: $r, branchId: $b) {
        errors { code } } }"""
    for branch in ("activate-war-room", "needs-alternatives"):
        assert demo.gql(choose, r=run_id, b=branch)["chooseBranch"]["errors"] == []

    def finished() -> dict[str, Any] | None:
        run = demo.gql("query($id: ID!) { run(id: $id) { status steps { stepId output } } }",
                       id=run_id)["run"]
        return run if run["status"] == "completed" else None

    run = _wait_for(finished, deadline=60, what="the llm step to be done by the worker")
    last = next(s for s in run["steps"] if s["stepId"] == "alternative-options")
    assert "Northwind Traders" in last["output"]  # the fake's answer quotes the prompt
    assert _processes_mentioning(str(demo.data / "state" / "pg"))  # the embedded PostgreSQL

    os.kill(demo.process.pid, signal.SIGTERM)
    demo.process.wait(60)
    _wait_for(lambda: not _processes_mentioning(str(demo.data)), deadline=30,
              what="every process the demo started to exit")
    assert "Traceback" not in demo.output(), demo.output()[-3000:]
