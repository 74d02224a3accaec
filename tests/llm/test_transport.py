"""The shared transport: one pool, one retry policy bounded by the run's deadline, one ledger."""

from __future__ import annotations

import time

import pytest

from agentrag._async import run_sync
from agentrag._deadline import check, deadline_scope, remaining
from agentrag.embed.remote import OpenAIEmbedder
from agentrag.errors import (
    DeadlineExceededError,
    EmbeddingError,
    LLMBadRequestError,
    LLMOutputError,
    LLMServerError,
    is_retryable,
)
from agentrag.llm import LLMClient, usage_scope
from agentrag.llm.transport import Transport, shared_transport
from agentrag.llm.vllm_api import VLLMApi
from agentrag.settings import LLMEndpoint
from agentrag.types import Usage
from tests.llm._embed_server import DIM, EmbedServer
from tests.support.fault_server import FaultServer

MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True, scope="module")
def _litellm_imported() -> None:
    # Importing litellm takes seconds on a loaded box; keep it out of the timed sections.
    from agentrag.llm._litellm import litellm

    litellm()


def endpoint(base: str, **kw) -> LLMEndpoint:
    params = {"timeout_s": 10.0, "max_retries": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    params.update(kw)
    return LLMEndpoint(model="hosted_vllm/fake", api_base=[base], **params)


# ---------------------------------------------------------------- the deadline


def test_deadline_scope_nests_tighter_only() -> None:
    assert remaining() is None
    with deadline_scope(10.0):
        outer = remaining()
        with deadline_scope(600.0):
            inner = remaining()
            assert inner is not None and outer is not None and inner <= outer
        with deadline_scope(0.0), pytest.raises(DeadlineExceededError) as info:
            check()
    assert remaining() is None
    assert info.value.code == "budget.wall_time" and not is_retryable(info.value)


async def test_hang_past_the_deadline_ends_at_the_deadline(fault_server: FaultServer) -> None:
    fault_server.script(["hang"])
    llm = LLMClient(endpoint(fault_server.api_base))  # 10 s timeout x 4 attempts = 40 s unbounded
    t0 = time.perf_counter()
    with deadline_scope(1.0), pytest.raises(DeadlineExceededError) as info:
        await llm.chat(MSG)
    elapsed = time.perf_counter() - t0
    assert 0.9 <= elapsed < 3.0
    assert len(fault_server.requests) == 1  # not retried: the deadline is not a transient failure
    assert info.value.code == "budget.wall_time"


async def test_vllm_api_hang_ends_at_the_deadline(fault_server: FaultServer) -> None:
    fault_server.script(["hang"])
    api = VLLMApi(endpoint(fault_server.api_base))
    t0 = time.perf_counter()
    with deadline_scope(1.0), pytest.raises(DeadlineExceededError):
        await api.next_token_logprob([1, 2, 3], 4)
    assert time.perf_counter() - t0 < 3.0


async def test_no_attempt_after_the_deadline(fault_server: FaultServer) -> None:
    fault_server.script(["ok"])
    llm = LLMClient(endpoint(fault_server.api_base))
    with deadline_scope(0.0), pytest.raises(DeadlineExceededError):
        await llm.complete("hi")
    assert fault_server.requests == []


async def test_retries_stop_before_a_back_off_would_pass_the_deadline(fault_server: FaultServer) -> None:
    fault_server.script(["503"])
    # Back-off of up to 2 s between attempts, 5 retries allowed, but only 0.5 s left.
    llm = LLMClient(endpoint(fault_server.api_base, max_retries=5, backoff_initial_s=2.0, backoff_max_s=2.0))
    t0 = time.perf_counter()
    with deadline_scope(0.5), pytest.raises((LLMServerError, DeadlineExceededError)):
        await llm.chat(MSG)
    assert time.perf_counter() - t0 < 1.5
    assert len(fault_server.requests) < 6


# ---------------------------------------------------------------- the retry policy


async def test_503_then_200_is_retried_once_through_the_shared_transport(fault_server: FaultServer) -> None:
    fault_server.script(["503", "ok"])
    llm = LLMClient(endpoint(fault_server.api_base))
    assert llm.transport is shared_transport()
    calls, failed = llm.transport.ledger.calls, llm.transport.ledger.failed_calls
    run = Usage()
    with usage_scope(run):
        assert (await llm.chat(MSG)).text == "ok"
    assert len(fault_server.requests) == 2
    assert (llm.transport.ledger.calls - calls, llm.transport.ledger.failed_calls - failed) == (1, 1)
    assert (run.calls, run.failed_calls) == (1, 1)


async def test_400_is_not_retried_by_llm_calls_nor_vllm_api(fault_server: FaultServer) -> None:
    fault_server.script(["400", "ok"])
    with pytest.raises(LLMBadRequestError):
        await LLMClient(endpoint(fault_server.api_base)).complete("hi")
    assert len(fault_server.requests) == 1

    fault_server.script(["400", "ok"])
    with pytest.raises(LLMBadRequestError):
        await VLLMApi(endpoint(fault_server.api_base)).next_token_logprob([1, 2], 3)
    assert len(fault_server.requests) == 1


async def test_vllm_api_503_then_200_is_retried(fault_server: FaultServer) -> None:
    fault_server.script(["503", "ok"])
    api = VLLMApi(endpoint(fault_server.api_base))
    # The fault server's /tokenize answer is a completion, not a token list: the retried
    # request got through, and its body is reported as what it is.
    with pytest.raises(LLMOutputError):
        await api.tokenize("hello")
    assert len(fault_server.requests) == 2
    assert api.usage.failed_calls >= 1


# ---------------------------------------------------------------- one pool, one ledger


def test_litellm_vllm_api_and_the_embedder_share_one_pool(fault_server: FaultServer) -> None:
    """Everything runs on agentrag's loop, as under the CLI: one client, connections reused."""
    fault_server.script(["ok"])
    transport = Transport()
    ep = endpoint(fault_server.api_base)

    async def scenario() -> dict[str, object]:
        llm = LLMClient(ep, transport=transport)
        api = VLLMApi(ep, usage=llm.usage, transport=transport)
        with EmbedServer() as emb_server:
            emb = OpenAIEmbedder("fake-embed", api_base=emb_server.api_base, transport=transport)
            await llm.chat(MSG)
            await llm.complete("hi")
            await llm.chat(MSG)
            with pytest.raises(LLMOutputError):
                await api.tokenize("hello")  # the fault server has no /tokenize of its own
            vec = await emb.aembed_query("a cat")  # worker thread -> agentrag's loop -> the pool
            pool = transport.client()
            out = {
                "connections": transport.connection_count(),
                "litellm_client": transport.litellm_handler().client is pool,
                "sdk_client": transport.openai_client(fault_server.api_base, "EMPTY")._client is pool,
                "dim": vec.shape[0],
                "emb_requests": emb_server.requests,
                "usage": llm.usage.model_copy(),
            }
        await transport.aclose()
        return out

    out = run_sync(scenario())
    # One connection to the fault server for chat, text completion and /tokenize, one to the
    # embeddings server: litellm made no client of its own.
    assert out["connections"] == 2
    assert out["litellm_client"] and out["sdk_client"]
    assert out["dim"] == DIM and out["emb_requests"] == 1
    usage = out["usage"]
    assert isinstance(usage, Usage) and usage.calls == 3
    assert transport.ledger.calls == 4  # + the embedding request
    assert transport.ledger.by_model["fake-embed"]["calls"] == 1


async def test_closed_pool_reopens_on_next_call(fault_server: FaultServer) -> None:
    fault_server.script(["ok"])
    transport = Transport()
    llm = LLMClient(endpoint(fault_server.api_base), transport=transport)
    await llm.chat(MSG)
    first = transport.client()
    await llm.aclose()
    assert first.is_closed and transport.connection_count() == 0
    assert (await llm.chat(MSG)).text == "ok"
    assert transport.client() is not first
    await transport.aclose()


# ---------------------------------------------------------------- the real server


def test_real_server_calls_share_one_pool_and_count_usage(llm_endpoint: LLMEndpoint) -> None:
    """Chat, completions with logprobs, vLLM's own endpoints and embeddings, on the 135M server."""
    transport = Transport()

    async def scenario() -> dict[str, object]:
        llm = LLMClient(llm_endpoint, transport=transport)
        api = VLLMApi(llm_endpoint, usage=llm.usage, transport=transport)
        base = llm_endpoint.api_base[0]
        emb = OpenAIEmbedder(api.model, api_base=base, transport=transport, max_retries=0)
        run = Usage()
        with usage_scope(run):
            chat = await llm.chat([{"role": "user", "content": "Say hi."}], max_tokens=4)
            dist = await llm.first_token(prompt="Question: is the sky blue? Answer (yes or no):")
            ids = await api.tokenize("The sky is blue", add_special_tokens=False)
            lp = await api.next_token_logprob(ids[:-1], ids[-1])
            # A generation-only vLLM serves no /v1/embeddings: the request still goes through
            # the pool and comes back as a typed error.
            with pytest.raises(EmbeddingError):
                await emb.aembed_query("a cat")
        out = {
            "connections": transport.connection_count(),
            "chat": chat.completion_tokens,
            "top": len(dist.top),
            "lp": lp,
            "run": run.model_copy(),
        }
        await transport.aclose()
        return out

    out = run_sync(scenario())
    assert out["connections"] == 1  # every call, embeddings included, on one reused connection
    assert isinstance(out["chat"], int) and out["chat"] >= 1
    assert isinstance(out["top"], int) and out["top"] >= 5
    assert isinstance(out["lp"], float) and out["lp"] <= 0.0
    run = out["run"]
    assert isinstance(run, Usage)
    # chat + first token + prompt logprobs count against the run; /tokenize runs no model.
    assert run.calls == 3 and run.prompt_tokens > 0
    assert run.failed_calls == 0  # the embeddings 404 is not an LLM call of the run
    assert transport.ledger.failed_calls >= 1  # the embeddings 404
