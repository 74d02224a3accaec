"""Shared fixtures: settings in a temp dir, the real vLLM servers, the real embedder, fault servers.

Tests marked ``vllm`` talk to a real local vLLM server. Two models are used:

- ``vllm_server``: the small test model (SmolLM2-135M, served name ``smollm2-135m``) on its
  catalog port 8410, for tests of mechanics (its answers are not judged);
  ``AGENTRAG_TEST_LLM_PORT`` overrides the port.
- ``default_llm_server``: the default model users get (Qwen2.5-Coder-1.5B, served name
  ``qwen2.5-coder-1.5b``) on 8400, for tests that judge answer quality;
  ``AGENTRAG_DEFAULT_LLM_PORT`` overrides the port.

Each reuses a healthy server already serving the right name on its port, or starts one with
``agentrag.models.server.serve`` and stops it at the end. If vLLM or the model is not set up,
those tests fail with the command to run: a missing server must never pass silently.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentrag import _offline
from tests.support.fakes import FakeLLM, FakeRetriever, passage

_offline.apply()

REPO = Path(__file__).resolve().parent.parent


def _find_shared_data() -> Path:
    # CI clones the repo with shared/ beside it; a git worktree sits deeper (…/wt/NAME), so
    # look up the tree. AGENTRAG_SHARED_DATA names it outright.
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
        if {"vllm_server", "default_llm_server", "vllm_embedding_server"} & set(names):
            item.add_marker(pytest.mark.vllm)


@pytest.fixture
def settings(tmp_path: Path):
    """Settings with no config file and a fresh data directory.

    The ``gpu`` profile runs the graphs as written, so tests do not depend on the machine.
    """
    from agentrag.settings import Settings

    return Settings.load(config=None, data_dir=tmp_path / "data", profile="gpu")


def _model_server_settings(model: str, port_env: str):
    """Server settings that serve catalog ``model`` under its catalog name on its test port."""
    from agentrag.models.catalog import get_model
    from agentrag.settings import ServerSettings, Settings

    base = Settings.load(config=None).server
    port = int(os.environ.get(port_env) or get_model(model).port)
    data = base.model_dump(exclude={"served_name", "model_path"})
    # One core each: the session runs two servers side by side (the CI run measured so).
    cpus = os.environ.get("AGENTRAG_TEST_SERVER_CPUS", "one")
    # Validated again (not model_copy) so the served name follows the model.
    return ServerSettings.model_validate({**data, "model": model, "port": port, "cpus": cpus})


@pytest.fixture(scope="session")
def server_settings():
    """Server settings of the test model (SmolLM2-135M on 8410 or ``AGENTRAG_TEST_LLM_PORT``).

    ``served_name`` and ``port`` are those ``vllm_server`` answers on.
    """
    from agentrag.models.catalog import TEST_MODEL

    return _model_server_settings(TEST_MODEL, "AGENTRAG_TEST_LLM_PORT")


@pytest.fixture(scope="session")
def default_server_settings():
    """Server settings of the default model (8400 or ``AGENTRAG_DEFAULT_LLM_PORT``)."""
    from agentrag.models.catalog import DEFAULT_MODEL

    return _model_server_settings(DEFAULT_MODEL, "AGENTRAG_DEFAULT_LLM_PORT")


def _reuse_or_start(server) -> Iterator[str]:
    from agentrag.errors import ModelServerError
    from agentrag.models.server import serve, status, stop
    from agentrag.models.setup import is_prepared, venv_python

    current = status(server, port=server.port)[0]
    if current.healthy and server.served_name in current.served:
        yield current.url
        return
    if current.healthy:
        pytest.fail(
            f"port {server.port} serves {current.served}, not {server.served_name!r}; stop it or "
            "point the tests elsewhere (AGENTRAG_TEST_LLM_PORT / AGENTRAG_DEFAULT_LLM_PORT)",
            pytrace=False,
        )
    if not venv_python(server).exists() or not is_prepared(server, server.model):
        pytest.fail(
            f"{server.model} is not set up under {server.home}; run "
            f"`agentrag models setup --model {server.model}` (bash .ci/setup does it for CI)",
            pytrace=False,
        )
    t0 = time.perf_counter()
    try:
        info = serve(server, model=server.model, port=server.port)
    except ModelServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    print(f"\n[vllm] {server.served_name} started on port {info.port} in {time.perf_counter() - t0:.1f}s")
    try:
        yield info.url
    finally:
        stop(server, port=info.port)


@pytest.fixture(scope="session")
def vllm_server(server_settings) -> Iterator[str]:
    """Base URL (``.../v1``) of a real, healthy vLLM server serving the test model."""
    yield from _reuse_or_start(server_settings)


@pytest.fixture(scope="session")
def default_llm_server(default_server_settings) -> Iterator[str]:
    """Base URL (``.../v1``) of a real, healthy vLLM server serving the default model."""
    yield from _reuse_or_start(default_server_settings)


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
def default_llm_endpoint(default_llm_server: str, default_server_settings):
    """The default model's endpoint (for tests that judge answers)."""
    from agentrag.settings import LLMEndpoint

    return LLMEndpoint(
        model=f"hosted_vllm/{default_server_settings.served_name}",
        api_base=[default_llm_server],
        timeout_s=300,
        max_concurrency=8,
    )


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


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Chroma server (`chroma run`, the CLI shipped with chromadb) on 127.0.0.1."""
    import signal
    import subprocess
    import sys

    import httpx

    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        pytest.fail(f"the chroma CLI is not installed beside {sys.executable}", pytrace=False)
    path = tmp_path_factory.mktemp("chroma-server")
    port = _free_port()
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"chroma run exited with {proc.returncode}; see {path / 'server.log'}", pytrace=False
                )
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chroma run did not answer in 60 s; see {path / 'server.log'}", pytrace=False)
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real benchmark data); fails loudly if it is not beside the repo."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"benchmark data not found at {SHARED_DATA}", pytrace=False)
    return SHARED_DATA


# ---- fakes for graph and agent logic tests (real parts are tested against real servers)

CORPUS = [
    passage(
        "hamlet",
        "Hamlet is a tragedy written by William Shakespeare. It was first performed around 1600. "
        "The play is set in Denmark.",
        source="plays.txt",
        start=0,
        title="Hamlet",
    ),
    passage(
        "globe",
        "The Globe Theatre was built in 1599 by Shakespeare's company. It burned down in 1613.",
        source="theatres.txt",
        start=40,
        title="Globe",
    ),
    passage("ocean", "The Pacific Ocean is the largest ocean on Earth.", source="geo.txt", start=0),
    passage(
        "stocks",
        "The stock market fell sharply on Monday after the announcement.",
        source="news.txt",
        start=5,
    ),
]


def relevance_by_keyword(text: str) -> float:
    return 0.9 if "Shakespeare" in text else 0.05


@pytest.fixture
def corpus():
    return list(CORPUS)


@pytest.fixture
def retriever(corpus):
    return FakeRetriever(corpus)


@pytest.fixture
def fake_llm():
    return FakeLLM(
        structured={
            "_Rewrite": {"query": "Hamlet author", "variants": [], "hypothetical_answer": ""},
            "_Query": {"query": "Shakespeare play Hamlet author"},
        },
        answer=lambda m: "Hamlet was written by William Shakespeare [1].",
    )


@pytest.fixture(scope="session")
def qdrant_rest() -> Iterator[str]:
    """URL of a stand-in Qdrant server: its REST API over qdrant-client's local engine.

    No real Qdrant server binary is installable here (see tests/support/qdrant_rest_shim.py).
    """
    from tests.support.qdrant_rest_shim import QdrantRestShim

    with QdrantRestShim() as url:
        yield url
