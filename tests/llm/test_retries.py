"""Retry, timeout and concurrency behaviour against a local fault-injecting server."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import BaseModel

from agentrag.errors import (
    LLMBadRequestError,
    LLMConnectionError,
    LLMError,
    LLMOutputError,
    LLMServerError,
    LLMTimeoutError,
)
from agentrag.llm import LLMClient
from agentrag.settings import LLMEndpoint
from tests.support.fault_server import FaultServer

MSG = [{"role": "user", "content": "hi"}]


def client(*bases: str, **kw) -> LLMClient:
    params = {"timeout_s": 5.0, "max_retries": 2, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    params.update(kw)
    return LLMClient(LLMEndpoint(model="hosted_vllm/fake", api_base=list(bases), **params))


async def test_503_then_200_is_retried(fault_server: FaultServer) -> None:
    fault_server.script(["503", "ok"])
    llm = client(fault_server.api_base)
    result = await llm.chat(MSG)
    assert result.text == "ok"
    assert len(fault_server.requests) == 2
    assert llm.usage.calls == 1 and llm.usage.failed_calls == 1


async def test_persistent_503_gives_up_after_max_retries(fault_server: FaultServer) -> None:
    fault_server.script(["503"])
    llm = client(fault_server.api_base, max_retries=3)
    with pytest.raises(LLMServerError) as info:
        await llm.chat(MSG)
    assert len(fault_server.requests) == 4  # 1 + 3 retries
    assert info.value.details["status"] == 503


async def test_429_is_retried(fault_server: FaultServer) -> None:
    fault_server.script(["429", "429", "ok"])
    assert (await client(fault_server.api_base).chat(MSG)).text == "ok"
    assert len(fault_server.requests) == 3


async def test_hang_past_timeout_is_retried_then_fails(fault_server: FaultServer) -> None:
    fault_server.script(["hang"])
    llm = client(fault_server.api_base, timeout_s=0.5, max_retries=1)
    t0 = time.perf_counter()
    with pytest.raises(LLMTimeoutError):
        await llm.chat(MSG)
    elapsed = time.perf_counter() - t0
    assert len(fault_server.requests) == 2
    assert elapsed < 5  # two attempts of ~0.5 s, not the server's 30 s hang


async def test_hang_then_answer_recovers(fault_server: FaultServer) -> None:
    fault_server.script(["hang", "ok"])
    assert (await client(fault_server.api_base, timeout_s=0.5).chat(MSG)).text == "ok"
    assert len(fault_server.requests) == 2


async def test_400_is_not_retried(fault_server: FaultServer) -> None:
    fault_server.script(["400", "ok"])
    with pytest.raises(LLMBadRequestError):
        await client(fault_server.api_base).chat(MSG)
    assert len(fault_server.requests) == 1


class Out(BaseModel):
    answer: str


async def test_malformed_json_is_repaired_once_then_fails(fault_server: FaultServer) -> None:
    fault_server.script(["malformed"])
    llm = client(fault_server.api_base, repair_attempts=1)
    with pytest.raises(LLMOutputError) as info:
        await llm.structured(MSG, Out)
    # Not a transport failure: no tenacity retries, one repair request.
    assert len(fault_server.requests) == 2
    assert "unterminated" in info.value.details["raw"]
    # The repair request shows the model its bad answer and asks again.
    repair = fault_server.requests[1]["messages"]
    assert repair[-2]["role"] == "assistant" and "unterminated" in repair[-2]["content"]
    # And the schema went to the server as a constrained-decoding request.
    fmt = fault_server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["answer"]


async def test_malformed_then_valid_json_succeeds() -> None:
    with FaultServer(["malformed", "ok"], content='{"answer": "42"}') as server:
        out = await client(server.api_base).structured(MSG, Out)
        assert out == Out(answer="42")
        assert len(server.requests) == 2


async def test_connection_refused_is_retried_then_reported() -> None:
    llm = client("http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(LLMConnectionError) as info:
        await llm.chat(MSG)
    assert llm.usage.failed_calls == 2
    assert "agentrag models" in info.value.hint


async def test_concurrency_limit_caps_requests_in_flight() -> None:
    from agentrag.llm.transport import Transport

    with FaultServer(["delay:0.3"]) as server:
        transport = Transport()
        llm = LLMClient(
            LLMEndpoint(model="hosted_vllm/fake", api_base=[server.api_base], max_concurrency=2),
            transport=transport,
        )
        in_flight = 0
        peak = 0
        original = transport._attempt

        async def counting(call, **kw):
            async def wrapped(base, seconds):
                nonlocal in_flight, peak
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    return await call(base, seconds)
                finally:
                    in_flight -= 1

            return await original(wrapped, **kw)

        transport._attempt = counting  # type: ignore[method-assign]
        t0 = time.perf_counter()
        await asyncio.gather(*(llm.chat(MSG) for _ in range(6)))
        elapsed = time.perf_counter() - t0
        assert peak == 2
        assert len(server.requests) == 6
        assert elapsed >= 0.85  # 6 requests, 2 at a time, 0.3 s each
        await transport.aclose()


async def test_replicas_share_load_and_survive_one_down() -> None:
    with FaultServer(["delay:0.1"]) as a, FaultServer(["delay:0.1"]) as b:
        llm = client(a.api_base, b.api_base, max_concurrency=4)
        await asyncio.gather(*(llm.chat(MSG) for _ in range(16)))
        assert len(a.requests) + len(b.requests) == 16
        assert len(a.requests) >= 3 and len(b.requests) >= 3  # both replicas served

        a.script(["503"])
        b.script(["ok"])
        results = await asyncio.gather(*(llm.chat(MSG) for _ in range(8)))
        assert all(r.text == "ok" for r in results)
        assert len(b.requests) == 8


async def test_streaming_retries_before_first_token() -> None:
    with FaultServer(["503", "ok"], content="one two three") as server:
        llm = client(server.api_base)
        pieces = [p async for p in llm.stream(MSG)]
        assert "".join(pieces) == "one two three"
        assert len(server.requests) == 2


async def test_streaming_failure_after_first_token_is_raised_not_retried() -> None:
    with FaultServer(["cut"], content="one two three") as server:
        llm = client(server.api_base)
        pieces: list[str] = []

        async def consume() -> None:
            async for piece in llm.stream(MSG):
                pieces.append(piece)

        with pytest.raises(LLMError):
            await consume()
        assert pieces == ["one"]
        assert len(server.requests) == 1


async def test_usage_scope_counts_per_run_across_tasks(fault_server: FaultServer) -> None:
    from agentrag.llm import usage_scope
    from agentrag.types import Usage

    fault_server.script(["ok"])
    llm = client(fault_server.api_base)
    run_a, run_b = Usage(), Usage()

    async def run(meter: Usage, n: int) -> None:
        with usage_scope(meter):
            await asyncio.gather(*(llm.chat(MSG) for _ in range(n)))

    await asyncio.gather(run(run_a, 2), run(run_b, 3))
    assert (run_a.calls, run_b.calls, llm.usage.calls) == (2, 3, 5)
    assert run_a.prompt_tokens == 10 and run_b.completion_tokens == 6
