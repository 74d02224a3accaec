"""Fixtures shared by the premise tests: a real premise knowledge base over the sample Lean files."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrag.kb import KnowledgeBase
from agentrag.premise.corpus import index_tree

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def premise_kb(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any
) -> Iterator[tuple[Any, KnowledgeBase]]:
    """``(settings, kb)``: the sample Lean files indexed with the real embedder (gpu profile)."""
    from agentrag.settings import Settings

    root = tmp_path_factory.mktemp("premises")
    tree = root / "lean"
    tree.mkdir()
    for f in DATA.glob("*.lean"):
        shutil.copy(f, tree / f.name)
    settings = Settings.load(config=None, data_dir=root / "data", profile="gpu").for_premises()
    kb = KnowledgeBase.open(settings, "premises", embedder=embedder)
    index_tree(kb, tree)
    yield settings, kb
    kb.close()


def unreachable(settings: Any, role: str) -> Any:
    """``settings`` with the ``role`` endpoint (generator, reranker) on a port nobody listens on."""
    down = f"http://127.0.0.1:{free_port()}/v1"
    endpoint = getattr(settings, role).model_copy(
        update={"api_base": [down], "max_retries": 0, "timeout_s": 5.0}
    )
    return settings.model_copy(update={role: endpoint})


def free_port() -> int:
    """A local TCP port nobody listens on (a real connection error for a client)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
