"""GraphiQL renders and runs a query in headless Chromium, offline.

Usage: python -m scripts.check_graphiql [--screenshot graphiql.png] [--chromium PATH]

Needs Chromium (Debian: `apt-get install -y chromium`). Starts everything itself: a
scratch database (DATABASE_URL's server, or the embedded one) with one tenant and its
admin, the server (uvicorn on a free loopback port), and Chromium with every host name but
127.0.0.1 unresolvable and a dead proxy for anything else, driven over its DevTools
protocol (the `websockets` package). It loads /graphql with the admin's token in the
Headers tab, types `{ viewer { id } }` into the query editor, presses the run button and
waits for the admin's id in the result pane. It fails if the page asked for anything that
is not on the server (every request the page makes is recorded), or if the result does
not appear. Exit status 0 means GraphiQL works without a network.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import websockets

from domain.auth import tokens
from domain.shared.settings import Settings
from domain.tenants.onboarding import create_tenant_with_admin
from domain.users.models import Role
from scripts import benchlib

QUERY = "{ viewer { id } }"


class DevTools:
    """A minimal Chrome DevTools protocol client: commands by id, events collected."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with suppress(websockets.ConnectionClosed):
            await self._dispatch()

    async def _dispatch(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            future = self.waiting.pop(message.get("id", -1), None)
            if future is not None:
                future.set_result(message)
            elif "method" in message:
                self.events.append(message)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        identifier = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[identifier] = future
        await self.socket.send(json.dumps({"id": identifier, "method": method,
                                           "params": params}))
        answer = await asyncio.wait_for(future, timeout=30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression!r}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    async def until(self, expression: str, *, what: str, seconds: float = 30) -> Any:
        """Poll `expression` until it is truthy (a deadline, not a sleep-and-hope)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


async def _tenant(settings: Settings) -> tuple[str, str]:
    made = await create_tenant_with_admin(settings.database_url, name="GraphiQL check",
                                          admin_email="admin@graphiql.test")
    token = tokens.mint(secret=settings.jwt_secret, tenant_id=made.tenant_id,
                        user_id=made.admin.id, role=Role.ADMIN)
    return token, str(made.admin.id)


def _chromium(binary: str, profile: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--disable-default-apps", "--mute-audio",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
         # No network but the loopback server: names do not resolve, other traffic goes
         # to a proxy that is not there.
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _page_socket(port: int) -> str:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    url: str = pages[0]["webSocketDebuggerUrl"]
                    return url
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("Chromium's DevTools endpoint did not come up")


async def _run_query(tools: DevTools, base: str, token: str) -> tuple[str, str]:
    """Load GraphiQL with the token header, type the query, run it: (editor text, result)."""
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    await tools.send("Page.navigate", url=f"{base}/graphql?headers={quote(headers)}")
    await tools.until("!!document.querySelector('.graphiql-execute-button') && "
                      "!!document.querySelector('.graphiql-query-editor .CodeMirror')",
                      what="GraphiQL to render")
    # Type the query into the emptied editor, as a person would, then press run.
    await tools.evaluate("(() => { const cm = document.querySelector("
                         "'.graphiql-query-editor .CodeMirror').CodeMirror; "
                         "cm.focus(); cm.execCommand('selectAll'); "
                         "cm.replaceSelection(''); return true; })()")
    await tools.send("Input.insertText", text=QUERY)
    typed: str = await tools.evaluate("document.querySelector('.graphiql-query-editor "
                                      ".CodeMirror').CodeMirror.getValue()")
    await tools.evaluate("document.querySelector('.graphiql-execute-button').click(), true")
    shown: str = await tools.until(
        "(() => { const r = document.querySelector('.graphiql-response .CodeMirror'); "
        "const v = r && r.CodeMirror.getValue(); "
        "return v && v.includes('viewer') ? v : null; })()", what="the result to appear")
    return typed, shown


async def check(base: str, token: str, viewer_id: str, *, binary: str) -> dict[str, Any]:
    port = benchlib.free_port()
    with tempfile.TemporaryDirectory(prefix="graphiql-check-") as profile:
        browser = _chromium(binary, profile, port)
        try:
            async with websockets.connect(await _page_socket(port), max_size=None) as socket:
                tools = DevTools(socket)
                for domain in ("Page", "Network", "Runtime"):
                    await tools.send(f"{domain}.enable")
                problems: list[str] = []
                typed, shown = "", "{}"
                try:
                    typed, shown = await _run_query(tools, base, token)
                except AssertionError as error:
                    problems.append(str(error))
                shot = await tools.send("Page.captureScreenshot", format="png")
                requested = [e["params"]["request"]["url"] for e in tools.events
                             if e["method"] == "Network.requestWillBeSent"]
                failed = [e["params"].get("errorText") for e in tools.events
                          if e["method"] == "Network.loadingFailed"]
                tools.reader.cancel()
        finally:
            browser.terminate()
            browser.wait(timeout=15)
    elsewhere = [u for u in requested if not u.startswith((base, "data:"))]
    result = json.loads(shown)
    if typed.strip() != QUERY:
        problems.append(f"the editor holds {typed!r}, not the typed query")
    if elsewhere:
        problems.append(f"the page requested URLs off the server: {elsewhere}")
    if failed:
        problems.append(f"requests failed: {failed}")
    if result.get("data", {}).get("viewer", {}).get("id") != viewer_id:
        problems.append(f"unexpected result: {shown}")
    return {"requests": requested, "result": result, "problems": problems,
            "png": base64.b64decode(shot["data"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chromium", default=shutil.which("chromium")
                        or shutil.which("chromium-browser") or "chromium")
    parser.add_argument("--screenshot", type=Path, default=None)
    args = parser.parse_args()
    if not shutil.which(args.chromium) and not Path(args.chromium).exists():
        raise SystemExit("Chromium is not installed (Debian: apt-get install -y chromium)")
    with benchlib.scratch_database("stepwise_graphiql") as url:
        settings = Settings.from_env(database_url=url)
        os.environ["STEPWISE_JWT_SECRET"] = settings.jwt_secret
        token, viewer_id = asyncio.run(_tenant(settings))
        with benchlib.server_process(url) as base:
            outcome = asyncio.run(check(base, token, viewer_id, binary=args.chromium))
    if args.screenshot is not None:
        args.screenshot.write_bytes(outcome["png"])
    print(f"requests made by the page ({len(outcome['requests'])}):")
    for requested in outcome["requests"]:
        print(f"  {requested[:120]}")
    print(f"result pane: {json.dumps(outcome['result'])}")
    if outcome["problems"]:
        for problem in outcome["problems"]:
            print(f"FAIL: {problem}")
        sys.exit(1)
    print("OK: GraphiQL rendered, ran the typed query and showed the viewer, all from the "
          "server, with no network")


if __name__ == "__main__":
    main()
