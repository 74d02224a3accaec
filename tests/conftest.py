"""Shared fixtures: settings in a temp dir, the real vLLM server, the real embedder, fault servers.

Tests marked ``vllm`` talk to the real local vLLM server. The session uses one already serving
the configured name on the configured port (``AGENTRAG_SERVER__PORT`` etc.), or starts one
with ``agentrag.models.server.serve`` and stops it at the end. If vLLM is not set up, those
tests fail with the command to run: a missing server must never pass silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrag import _offline

_offline.apply()

REPO = Path(__file__).resolve().parent.parent


def _find_shared_data() -> Path:
    # ../shared/data beside the repository; from a git worktree (/work/wt/NAME) it is further up.
    if env := os.environ.get("AGENTRAG_SHARED_DATA"):
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    return REPO.parent / "shared" / "data"


SHARED_DATA = _find_shared_data()
# Vectors of real texts (SciFact, HotpotQA) survive across runs here: embedding them is the
# slowest part of many tests, and the cache is keyed by model + text hash, so it cannot go stale.
TEST_CACHE = Path(os.environ.get("AGENTRAG_TEST_CACHE", REPO / ".agentrag" / "test-cache"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Anything using the real server is an integration test; mark it so `-m vllm` selects it.
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "vllm_server" in names or "vllm_embedding_server" in names:
            item.add_marker(pytest.mark.vllm)


@pytest.fixture
def settings(tmp_path: Path):
    """Settings with no config file and a fresh data directory."""
    from agentrag.settings import Settings

    return Settings.load(config=None, data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def server_settings():
    from agentrag.settings import Settings

    return Settings.load(config=None).server


@pytest.fixture(scope="session")
def vllm_server(server_settings) -> Iterator[str]:
    """Base URL (``.../v1``) of a real, healthy vLLM server serving the configured model."""
    from agentrag.errors import ModelServerError
    from agentrag.models.server import serve, status, stop
    from agentrag.models.setup import venv_python

    current = status(server_settings, port=server_settings.port)[0]
    if current.healthy and server_settings.served_name in current.served:
        yield current.url
        return
    if not venv_python(server_settings).exists():
        pytest.fail(
            f"vLLM is not set up under {server_settings.home}; run `agentrag models setup` "
            "(bash .ci/run does it for CI)",
            pytrace=False,
        )
    t0 = time.perf_counter()
    try:
        info = serve(server_settings)
    except ModelServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"\n[vllm] started on port {info.port} in {time.perf_counter() - t0:.1f}s")
    try:
        yield info.url
    finally:
        stop(server_settings, port=info.port)


@pytest.fixture(scope="session")
def vllm_embedding_server(server_settings) -> Iterator[str]:
    """Base URL of a real vLLM server serving all-MiniLM-L6-v2 on ``/v1/embeddings`` (port + 1)."""
    from agentrag.embed import default_model_path
    from agentrag.errors import ModelServerError
    from agentrag.models.server import serve, status, stop

    port = server_settings.port + 1
    current = status(server_settings, port=port)[0]
    if current.healthy and "minilm" in current.served:
        yield current.url
        return
    try:
        info = serve(
            server_settings,
            port=port,
            model_path=default_model_path(),
            served_name="minilm",
            max_model_len=256,
            embedding=True,
        )
    except ModelServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield info.url
    finally:
        stop(server_settings, port=port)


@pytest.fixture(scope="session")
def llm_endpoint(vllm_server: str, server_settings):
    from agentrag.settings import LLMEndpoint

    return LLMEndpoint(
        model=f"hosted_vllm/{server_settings.served_name}",
        api_base=[vllm_server],
        timeout_s=120,
        max_concurrency=16,
    )


@pytest.fixture
def llm(llm_endpoint):
    """A client for the real local model (fresh usage meter per test)."""
    from agentrag.llm import LLMClient

    return LLMClient(llm_endpoint, role="test")


@pytest.fixture(scope="session")
def embedder():
    """The real default embedder (all-MiniLM-L6-v2), with a cache that persists across runs."""
    from agentrag.embed import SentenceTransformerEmbedder

    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return SentenceTransformerEmbedder(cache_path=TEST_CACHE / "embeddings.sqlite")


@pytest.fixture
def fault_server():
    """A scriptable OpenAI-compatible server for retry tests (see tests/support/fault_server.py)."""
    from tests.support.fault_server import FaultServer

    with FaultServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real benchmark data); fails loudly if it is not beside the repo."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA}", pytrace=False)
    return SHARED_DATA
