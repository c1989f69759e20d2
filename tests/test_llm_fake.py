"""domain.shared.llm through the real anthropic SDK against the local fake of the Messages API."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from typing import Any

import httpx
import pytest

from domain.shared import llm
from domain.shared.settings import Settings
from tests.fake_llm_fixtures import FakeLLM

pytestmark = pytest.mark.asyncio

ASK = [{"role": "user", "content": "How risky is the Acme renewal?"}]
WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


async def _collect(**kwargs: Any) -> list[llm.StreamEvent]:
    return [event async for event in llm.stream(**kwargs)]


async def _drain(seen: list[llm.StreamEvent], **kwargs: Any) -> None:
    """Stream into `seen`, so a test can look at what arrived before an error."""
    async for event in llm.stream(**kwargs):
        seen.append(event)


class TestCompletion:
    async def test_scripted_text_comes_back_with_model_and_stop_reason(
            self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"text": "Renewal risk is high."})
        done = await llm.complete(system="You help CSMs.", messages=ASK, max_tokens=200)
        assert done.text == "Renewal risk is high."
        assert done.tool_uses == ()
        assert done.stop_reason == "end_turn"
        assert done.model == "claude-fake-1"

    async def test_unscripted_reply_is_deterministic_and_quotes_the_question(
            self, fake_llm: FakeLLM) -> None:
        first = await llm.complete(messages=ASK)
        second = await llm.complete(messages=ASK)
        assert "How risky is the Acme renewal?" in first.text
        assert first.text == second.text
        assert first.usage == second.usage
        # tokens ~ words: the question has six, the reply its own word count
        assert first.usage.input_tokens == 6
        assert first.usage.output_tokens == len(first.text.split())

    async def test_usage_carries_the_cache_fields(self, fake_llm: FakeLLM) -> None:
        usage = {"input_tokens": 11, "output_tokens": 7, "cache_creation_input_tokens": 1200,
                 "cache_read_input_tokens": 3400}
        await fake_llm.script({"text": "cached", "usage": usage},
                              {"text": "cached, streamed", "usage": usage})
        assert (await llm.complete(messages=ASK)).usage == llm.Usage(**usage)
        final = (await _collect(messages=ASK))[-1]
        assert isinstance(final, llm.Completion)
        assert final.usage == llm.Usage(**usage)

    async def test_settings_reach_the_config(self) -> None:
        settings = Settings(database_url="x", app_database_url="y", jwt_secret="z",
                            llm_model="claude-test", llm_timeout=3.5, llm_max_retries=4)
        assert llm.LLMConfig.from_settings(settings) == llm.LLMConfig(
            model="claude-test", timeout=3.5, max_retries=4)


class TestStreaming:
    async def test_deltas_concatenate_to_the_final_text(self, fake_llm: FakeLLM) -> None:
        text = "First, call the champion. Then, send the ROI summary before Friday."
        await fake_llm.script({"text": text, "chunks": 5})
        events = await _collect(messages=ASK)
        deltas = [event.text for event in events if isinstance(event, llm.TextDelta)]
        final = events[-1]
        assert isinstance(final, llm.Completion)
        assert len(deltas) == 5
        assert "".join(deltas) == final.text == text
        assert final.stop_reason == "end_turn"

    async def test_unscripted_stream_matches_the_unscripted_completion(
            self, fake_llm: FakeLLM) -> None:
        events = await _collect(messages=ASK)
        whole = await llm.complete(messages=ASK)
        assert len([e for e in events if isinstance(e, llm.TextDelta)]) > 1
        assert "".join(e.text for e in events if isinstance(e, llm.TextDelta)) == whole.text

    async def test_wire_events_come_in_the_real_order(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"text": "Hi there", "chunks": 2,
                               "tool_use": {"name": "get_weather", "input": {"city": "Paris"}}})
        body = {"model": "m", "max_tokens": 50, "messages": ASK, "tools": [WEATHER],
                "stream": True}
        async with httpx.AsyncClient(base_url=fake_llm.base_url) as http:
            answer = await http.post("/v1/messages", json=body)
        assert answer.headers["content-type"].startswith("text/event-stream")
        frames = [frame for frame in answer.text.split("\n\n") if frame]
        names = [frame.split("\n")[0].removeprefix("event: ") for frame in frames]
        data = [json.loads(frame.split("\n")[1].removeprefix("data: ")) for frame in frames]
        assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                         "content_block_delta", "content_block_stop", "content_block_start",
                         *["content_block_delta"] * (names.count("content_block_delta") - 2),
                         "content_block_stop", "message_delta", "message_stop"]
        assert [d["type"] for d in data] == names
        json_parts = [d["delta"]["partial_json"] for d in data
                      if d["type"] == "content_block_delta" and d["index"] == 1]
        assert json_parts[0] == ""
        assert json.loads("".join(json_parts)) == {"city": "Paris"}
        assert data[0]["message"]["stop_reason"] is None
        assert data[-2]["delta"]["stop_reason"] == "tool_use"
        assert set(data[-2]["usage"]) >= {"input_tokens", "output_tokens",
                                          "cache_creation_input_tokens",
                                          "cache_read_input_tokens"}

    async def test_a_streamed_tool_use_arrives_whole_before_the_completion(
            self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"tool_use": {"name": "get_weather",
                                            "input": {"city": "Lyon", "days": [1, 2, 3]}}})
        events = await _collect(messages=ASK, tools=[WEATHER])
        assert [type(event) for event in events] == [llm.ToolUse, llm.Completion]
        tool, final = events
        assert isinstance(tool, llm.ToolUse)
        assert isinstance(final, llm.Completion)
        assert tool.input == {"city": "Lyon", "days": [1, 2, 3]}
        assert final.tool_uses == (tool,)
        assert final.stop_reason == "tool_use"


class TestTools:
    async def test_tool_use_then_tool_result_round_trip(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script(
            {"text": "Let me check.", "tool_use": {"name": "get_weather",
                                                   "input": {"city": "Oslo"}}},
            {"match": "-3C and snowing", "text": "It is cold in Oslo."})
        asked = await llm.complete(messages=ASK, tools=[WEATHER])
        assert asked.stop_reason == "tool_use"
        assert asked.text == "Let me check."
        (tool,) = asked.tool_uses
        assert (tool.name, dict(tool.input)) == ("get_weather", {"city": "Oslo"})
        follow_up = [*ASK, asked.assistant_message(),
                     {"role": "user", "content": [llm.tool_result(tool.id, "-3C and snowing")]}]
        answered = await llm.complete(messages=follow_up, tools=[WEATHER])
        assert answered.text == "It is cold in Oslo."
        second = (await fake_llm.calls())[1]
        assert second["messages"][1]["content"][1] == {
            "type": "tool_use", "id": tool.id, "name": "get_weather", "input": {"city": "Oslo"}}
        assert second["messages"][2]["content"][0]["tool_use_id"] == tool.id

    async def test_unscripted_tool_use_when_the_user_names_the_tool(
            self, fake_llm: FakeLLM) -> None:
        ask = [{"role": "user", "content": "Use get_weather for Rome"}]
        done = await llm.complete(messages=ask, tools=[WEATHER])
        (tool,) = done.tool_uses
        assert tool.name == "get_weather"
        assert tool.input == {"city": "Use get_weather for Rome"}
        result = {"role": "user", "content": [llm.tool_result(tool.id, "sunny")]}
        after = await llm.complete(messages=[*ask, done.assistant_message(), result],
                                   tools=[WEATHER])
        assert after.tool_uses == ()
        assert "sunny" in after.text

    async def test_forced_tool_choice_is_obeyed(self, fake_llm: FakeLLM) -> None:
        done = await llm.complete(messages=ASK, tools=[WEATHER],
                                  tool_choice={"type": "tool", "name": "get_weather"})
        assert [tool.name for tool in done.tool_uses] == ["get_weather"]

    async def test_sampling_parameters_are_refused_as_the_api_does(
            self, fake_llm: FakeLLM) -> None:
        import anthropic

        async with fake_llm.sdk(max_retries=0) as sdk:
            with pytest.raises(anthropic.BadRequestError) as raised:
                await sdk.messages.create(model="m", max_tokens=5,
                                          messages=[{"role": "user", "content": "hi"}],
                                          extra_body={"temperature": 0.2})
        assert raised.value.type == "invalid_request_error"

    async def test_a_tool_result_without_its_tool_use_is_a_bad_request(
            self, fake_llm: FakeLLM) -> None:
        orphan = [{"role": "user", "content": [llm.tool_result("toolu_nope", "x")]}]
        with pytest.raises(llm.LLMBadRequest) as raised:
            await llm.complete(messages=orphan)
        assert raised.value.code == "LLM_BAD_REQUEST"
        assert raised.value.retryable is False
        assert len(await fake_llm.calls()) == 1  # a 400 is not retried


class TestErrors:
    async def test_429_with_retry_after_is_retried_by_the_sdk(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script(
            {"error": {"status": 429, "retry_after": 0.01}, "times": 2},
            {"text": "third time lucky"})
        done = await llm.complete(messages=ASK)
        assert done.text == "third time lucky"
        calls = await fake_llm.calls()
        assert [call["status"] for call in calls] == [429, 429, 200]
        assert [call["retry_count"] for call in calls] == [0, 1, 2]

    async def test_529_beyond_max_retries_is_llm_overloaded(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"error": {"status": 529, "retry_after": 0.01}, "times": 3},
                              {"text": "too late"})
        with pytest.raises(llm.LLMOverloaded) as raised:
            await llm.complete(messages=ASK)
        assert raised.value.code == "LLM_OVERLOADED"
        assert raised.value.retryable is True
        assert raised.value.message == "the language model is overloaded; try again shortly"
        assert len(await fake_llm.calls()) == 3  # the first try and max_retries=2 retries
        assert [entry["text"] for entry in await fake_llm.pending()] == ["too late"]

    async def test_rate_limit_surfaces_with_its_retry_after(self, fake_llm: FakeLLM) -> None:
        await llm.configure(fake_llm.config(max_retries=0))
        await fake_llm.script({"error": {"type": "rate_limit_error", "retry_after": 30,
                                         "message": "org quota: secret-details"}})
        with pytest.raises(llm.LLMRateLimited) as raised:
            await llm.complete(messages=ASK)
        assert raised.value.code == "LLM_RATE_LIMITED"
        assert raised.value.retry_after == 30
        assert "secret" not in str(raised.value)
        assert "429" not in str(raised.value)

    async def test_500_is_llm_unavailable(self, fake_llm: FakeLLM) -> None:
        await llm.configure(fake_llm.config(max_retries=1))
        await fake_llm.script({"error": {"status": 500, "retry_after": 0.01}, "times": 2})
        with pytest.raises(llm.LLMError) as raised:
            await llm.complete(messages=ASK)
        assert type(raised.value) is llm.LLMUnavailable
        assert raised.value.code == "LLM_UNAVAILABLE"
        assert [call["status"] for call in await fake_llm.calls()] == [500, 500]

    @pytest.mark.parametrize("body", [
        "{not json", "[1, 2]", '{"type": "error"}', '{"type": "message", "content": "text"}',
        '{"type": "message", "content": [1]}',
        '{"type": "message", "content": [{"type": "tool_use", "name": "x", "input": {}}]}',
        '{"type": "message", "content": [], "usage": [1]}',
        '{"type": "message", "content": [], "usage": {"input_tokens": "many"}}'])
    async def test_a_200_that_is_not_a_message_is_llm_unavailable(
            self, fake_llm: FakeLLM, body: str) -> None:
        await fake_llm.script({"body": body})
        with pytest.raises(llm.LLMError) as raised:
            await llm.complete(messages=ASK)
        assert type(raised.value) is llm.LLMUnavailable
        assert raised.value.message == "the language model is unavailable; try again later"

    async def test_a_reply_without_usage_or_model_counts_nothing(
            self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"body": '{"type": "message", "content": [{"type": "text", '
                                       '"text": "bare"}], "stop_reason": "end_turn"}'})
        done = await llm.complete(messages=ASK)
        assert done.text == "bare"
        assert done.usage == llm.Usage()
        assert done.model == ""

    async def test_a_slow_answer_is_llm_timeout(self, fake_llm: FakeLLM) -> None:
        await llm.configure(fake_llm.config(timeout=0.2, max_retries=0))
        await fake_llm.script({"delay": 5, "text": "too slow"})
        with pytest.raises(llm.LLMTimeout) as raised:
            await llm.complete(messages=ASK)
        assert raised.value.code == "LLM_TIMEOUT"

    async def test_a_per_call_timeout_overrides_the_config(self, fake_llm: FakeLLM) -> None:
        await llm.configure(fake_llm.config(timeout=30, max_retries=0))
        await fake_llm.script({"delay": 5})
        with pytest.raises(llm.LLMTimeout):
            await llm.complete(messages=ASK, request_timeout=0.2)

    async def test_a_stalled_stream_is_llm_timeout_after_its_first_delta(
            self, fake_llm: FakeLLM) -> None:
        await llm.configure(fake_llm.config(timeout=0.3, max_retries=0))
        await fake_llm.script({"text": "one two three four", "chunks": 4, "stall": 5,
                               "stall_after": 1})
        seen: list[llm.StreamEvent] = []
        with pytest.raises(llm.LLMTimeout):
            await _drain(seen, messages=ASK)
        assert seen == [llm.TextDelta("one ")]

    async def test_a_mid_stream_error_is_raised_and_not_retried(
            self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"text": "partial answer here", "chunks": 3,
                               "error": {"type": "overloaded_error", "mid_stream": True,
                                         "after_deltas": 1}})
        seen: list[llm.StreamEvent] = []
        with pytest.raises(llm.LLMOverloaded):
            await _drain(seen, messages=ASK)
        assert seen == [llm.TextDelta("partial ")]
        assert len(await fake_llm.calls()) == 1

    async def test_errors_before_a_stream_are_retried(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"error": {"status": 529, "retry_after": 0.01}},
                              {"text": "streamed after a retry"})
        events = await _collect(messages=ASK)
        assert isinstance(events[-1], llm.Completion)
        assert events[-1].text == "streamed after a retry"

    async def test_the_error_body_has_anthropics_shape(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"error": {"status": 529, "retry_after": 2}})
        async with httpx.AsyncClient(base_url=fake_llm.base_url) as http:
            answer = await http.post("/v1/messages", json={"model": "m", "max_tokens": 5,
                                                           "messages": ASK})
        assert answer.status_code == 529
        assert answer.headers["retry-after"] == "2"
        body = answer.json()
        assert body["type"] == "error"
        assert body["error"]["type"] == "overloaded_error"
        assert isinstance(body["error"]["message"], str)


class TestScripting:
    async def test_match_routes_concurrent_requests_to_their_replies(
            self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"match": "customer Alpha", "text": "reply for Alpha",
                               "delay": 0.1},
                              {"match": "customer Beta", "text": "reply for Beta"})

        async def ask(name: str) -> str:
            done = await llm.complete(system=f"You help with customer {name}.", messages=ASK)
            return done.text

        assert await asyncio.gather(ask("Beta"), ask("Alpha")) == [
            "reply for Beta", "reply for Alpha"]
        assert await fake_llm.pending() == []

    async def test_times_then_the_default_reply(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"text": "scripted", "times": 2})
        texts = [(await llm.complete(messages=ASK)).text for _ in range(3)]
        assert texts[:2] == ["scripted", "scripted"]
        assert texts[2].startswith("Fake reply to:")

    async def test_the_call_log_records_every_request(self, fake_llm: FakeLLM) -> None:
        [scripted] = await fake_llm.script({"text": "ok"})
        await llm.complete(system="sys prompt", messages=ASK, tools=[WEATHER], max_tokens=77,
                           model="claude-other")
        await _collect(messages=ASK)
        first, second = await fake_llm.calls()
        assert first["model"] == "claude-other"
        assert first["system"] == "sys prompt"
        assert first["messages"] == ASK
        assert first["tools"] == [WEATHER]
        assert first["max_tokens"] == 77
        assert (first["stream"], second["stream"]) == (False, True)
        assert (first["script_id"], second["script_id"]) == (scripted, None)
        await fake_llm.reset()
        assert await fake_llm.calls() == []

    async def test_a_malformed_script_is_refused(self, fake_llm: FakeLLM) -> None:
        answer = await fake_llm.control.post("/_fake/script", json={"txet": "typo"})
        assert answer.status_code == 400
        assert "txet" in answer.json()["error"]
        assert await fake_llm.pending() == []

    async def test_the_bare_sdk_parses_the_fake(self, fake_llm: FakeLLM) -> None:
        await fake_llm.script({"text": "bare"})
        async with fake_llm.sdk() as sdk:
            message = await sdk.messages.create(model="claude-x", max_tokens=10,
                                                messages=[{"role": "user", "content": "hi"}])
        assert message.content[0].type == "text"
        assert message.usage.cache_read_input_tokens == 0
        assert message.id.startswith("msg_")


class TestCommand:
    async def test_stepwise_fake_llm_serves_the_fake(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scripts.cli", "fake-llm", "--port", str(port),
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert server.stdout is not None
            banner = (await server.stdout.readline()).decode()
            assert banner.strip() == f"export ANTHROPIC_BASE_URL=http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(100):  # uvicorn binds just after the banner
                    try:
                        answer = await http.get("/_fake/calls")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            assert answer.json() == {"calls": []}
        finally:
            server.terminate()
            await server.wait()
