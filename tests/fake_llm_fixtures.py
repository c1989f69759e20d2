"""Fixtures for the local fake of the Messages API (scripts/fake_llm.py), served on loopback.

`fake_llm` gives each test a reset fake and points domain.shared.llm at it; scripting and the
call log go through the fake's HTTP control API, so worker subprocesses (given `fake.env`)
share the same fake.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest_asyncio

from domain.shared import llm
from scripts.fake_llm import create_app

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

FAKE_API_KEY = "sk-ant-fake-for-tests"


@dataclass
class FakeLLM:
    """A running fake: where it is, and its control API."""

    base_url: str  # http://127.0.0.1:PORT, what ANTHROPIC_BASE_URL should be
    control: httpx.AsyncClient

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess (a worker, the CLI) that should talk to this fake."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": FAKE_API_KEY}

    async def script(self, *responses: Mapping[str, Any]) -> list[int]:
        """Queue responses (see scripts/fake_llm.py `Scripted`); returns their ids."""
        answer = await self.control.post("/_fake/script", json=list(responses))
        answer.raise_for_status()
        return list(answer.json()["ids"])

    async def pending(self) -> list[dict[str, Any]]:
        """Queued responses not yet used up."""
        return list((await self.control.get("/_fake/script")).json()["pending"])

    async def calls(self) -> list[dict[str, Any]]:
        """Every request the fake received, oldest first."""
        return list((await self.control.get("/_fake/calls")).json()["calls"])

    async def reset(self) -> None:
        (await self.control.post("/_fake/reset")).raise_for_status()

    def config(self, *, timeout: float = 5.0, max_retries: int = 2,
               model: str = "claude-fake-1") -> llm.LLMConfig:
        """An LLMConfig for domain.shared.llm pointing at this fake."""
        return llm.LLMConfig(model=model, timeout=timeout, max_retries=max_retries,
                             base_url=self.base_url, api_key=FAKE_API_KEY)

    def sdk(self, *, timeout: float = 5.0, max_retries: int = 2) -> AsyncAnthropic:
        """A bare SDK client pointing at this fake."""
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(base_url=self.base_url, api_key=FAKE_API_KEY, timeout=timeout,
                              max_retries=max_retries)


@pytest_asyncio.fixture(scope="session")
async def fake_llm_server() -> AsyncIterator[FakeLLM]:
    """The fake under uvicorn on a free loopback port, for the whole session."""
    from tests.conftest import serving

    async with serving(create_app()) as address:
        base_url = f"http://{address}"
        async with httpx.AsyncClient(base_url=base_url) as control:
            yield FakeLLM(base_url=base_url, control=control)


@pytest_asyncio.fixture
async def fake_llm(fake_llm_server: FakeLLM) -> AsyncIterator[FakeLLM]:
    """A reset fake, with domain.shared.llm pointed at it for the test's duration."""
    await fake_llm_server.reset()
    previous = await llm.configure(fake_llm_server.config())
    try:
        yield fake_llm_server
    finally:
        await llm.configure(previous)
