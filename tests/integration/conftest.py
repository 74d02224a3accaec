"""Real parts for end-to-end tests: a knowledge base of real HotpotQA paragraphs, the real vLLM."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

N_QUESTIONS = 6


@pytest.fixture(scope="session")
def hotpot_questions(shared_data) -> list[dict]:
    rows = []
    with (shared_data / "hotpotqa" / "dev250.jsonl").open() as fh:
        for line in fh:
            rows.append(json.loads(line))
            if len(rows) == N_QUESTIONS:
                break
    return rows


@pytest.fixture(scope="session")
def e2e_settings(tmp_path_factory, vllm_server, server_settings):
    from agentrag.settings import Settings

    return Settings.load(
        config=None,
        data_dir=tmp_path_factory.mktemp("e2e") / "data",
        server=server_settings.model_dump(),
        # Small generations keep a 135M model on 2 CPU cores inside the test budget.
        rerank={"max_document_chars": 1200},
    )


@pytest.fixture(scope="session")
def hotpot_kb(e2e_settings, embedder, hotpot_questions) -> Iterator:
    """A real knowledge base (Chroma embedded + bm25s + MiniLM) of the questions' 60 paragraphs."""
    from agentrag.ingest.loaders import Document
    from agentrag.kb import KnowledgeBase

    kb = KnowledgeBase.open(e2e_settings, "hotpot", embedder=embedder)
    docs = [
        Document(
            source=f"hotpotqa/{q['question_id']}/{i}",
            title=ctx["title"],
            text=ctx["paragraph_text"],
            metadata={"qid": q["question_id"], "supporting": bool(ctx["is_supporting"])},
        )
        for q in hotpot_questions
        for i, ctx in enumerate(q["contexts"])
    ]
    kb.ingest_documents(docs)
    yield kb
    kb.close()


@pytest.fixture(scope="session")
def real_reranker(llm_endpoint):
    from agentrag.llm import LLMClient
    from agentrag.rerank import PrismConfig, PrismReranker

    return PrismReranker(
        LLMClient(llm_endpoint, role="reranker"),
        PrismConfig(max_document_chars=1200, max_tokens=96),
    )
