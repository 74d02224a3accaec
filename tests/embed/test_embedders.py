"""Embedders against the real all-MiniLM-L6-v2 (in-process and served by vLLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentrag.embed import (
    EmbeddingCache,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    embedder_from_settings,
)
from agentrag.errors import ConfigError, EmbeddingError

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The girl is carrying a baby.",
]
QUERY = "A man is eating pasta."


def test_minilm_similarity_ordering(embedder: SentenceTransformerEmbedder) -> None:
    docs = embedder.embed_documents(SENTENCES)
    query = embedder.embed_query(QUERY)
    assert docs.shape == (4, 384) and docs.dtype == np.float32
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    sims = docs @ query
    # Known ordering for all-MiniLM-L6-v2: the two eating sentences first, the baby last.
    assert list(np.argsort(-sims)) == [0, 1, 2, 3]
    assert sims[0] > 0.6 and sims[3] < 0.1


def test_cache_hits_skip_the_model(tmp_path: Path) -> None:
    emb = SentenceTransformerEmbedder(cache_path=tmp_path / "c.sqlite")
    calls: list[int] = []
    original = emb._embed_batch

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return original(texts)

    emb._embed_batch = counting  # type: ignore[method-assign]
    first = emb.embed_documents([*SENTENCES, SENTENCES[0]])  # a duplicate is embedded once
    assert calls == [4]
    again = emb.embed_documents(SENTENCES[::-1])
    assert calls == [4]  # all hits
    assert np.allclose(again, first[:4][::-1])
    assert emb.cache is not None and emb.cache.hits >= 4

    # A new embedder over the same file (a new process) sees the same vectors.
    fresh = SentenceTransformerEmbedder(cache_path=tmp_path / "c.sqlite")
    fresh._embed_batch = counting  # type: ignore[method-assign]
    assert np.allclose(fresh.embed_documents(SENTENCES), first[:4])
    assert calls == [4]


def test_prefixes_change_identity_and_vectors(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    prefixed = SentenceTransformerEmbedder(query_prefix="query: ", cache_path=tmp_path / "c.sqlite")
    assert prefixed.name != embedder.name
    assert not np.allclose(prefixed.embed_query(QUERY), embedder.embed_query(QUERY))


def test_token_spans_are_character_offsets(embedder: SentenceTransformerEmbedder) -> None:
    text = "Tokenization splits words."
    spans = embedder.token_spans(text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    assert all(text[a:b].strip() for a, b in spans)
    assert embedder.max_tokens == 254


async def test_async_api(embedder: SentenceTransformerEmbedder) -> None:
    vecs = await embedder.aembed_documents(SENTENCES[:2])
    q = await embedder.aembed_query(QUERY)
    assert vecs.shape == (2, 384) and q.shape == (384,)


def test_empty_and_bad_input(embedder: SentenceTransformerEmbedder) -> None:
    assert embedder.embed_documents([]).shape == (0, 384)
    with pytest.raises(EmbeddingError, match="list of texts"):
        embedder.embed_documents("one string")  # type: ignore[arg-type]


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    emb = SentenceTransformerEmbedder(tmp_path / "nope")
    with pytest.raises(EmbeddingError, match="does not exist"):
        emb.embed_query("x")


def test_from_settings(settings) -> None:
    emb = embedder_from_settings(settings)
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert emb.cache is not None and emb.cache.path.parent == settings.cache_dir()
    bad = settings.model_copy(update={"embedder": settings.embedder.model_copy(update={"backend": "openai"})})
    with pytest.raises(ConfigError, match="api_base"):
        embedder_from_settings(bad)


def test_cache_ignores_vectors_of_another_dimension(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    key = EmbeddingCache.key("x")
    cache.put_many("m", [(key, np.ones(3, dtype=np.float32))])
    assert cache.get_many("m", [key], 3)[key].shape == (3,)
    assert cache.get_many("m", [key], 4) == {}
    assert cache.get_many("other", [key], 3) == {}


def test_openai_embedder_retries_503(fault_server) -> None:
    import json

    fault_server.script(["503", "ok"])
    fault_server.content = ""
    # The fault server answers chat-shaped JSON; only the attempt count matters here.
    emb = OpenAIEmbedder("m", api_base=fault_server.api_base, max_retries=2)
    with pytest.raises(EmbeddingError, match="embedding list"):
        emb.embed_documents(["a"])
    assert len(fault_server.requests) == 2
    assert json.dumps(fault_server.requests[0]["input"]) == '["a"]'


@pytest.mark.slow
def test_openai_embedder_against_vllm(vllm_embedding_server: str, embedder, tmp_path: Path) -> None:
    remote = OpenAIEmbedder("minilm", api_base=vllm_embedding_server, cache_path=tmp_path / "c.sqlite")
    assert remote.dim == 384
    docs = remote.embed_documents(SENTENCES)
    local = embedder.embed_documents(SENTENCES)
    # The same model served by vLLM gives the same vectors (up to float noise).
    cos = np.sum(docs * local, axis=1)
    assert np.all(cos > 0.99)
    sims = docs @ remote.embed_query(QUERY)
    assert list(np.argsort(-sims)) == [0, 1, 2, 3]
    assert remote.cache is not None and remote.cache.count() >= 5
