"""YesNoReranker: prompt shape, token cut, and the fallback a failing server gives."""

from __future__ import annotations

from agentrag.errors import LLMConnectionError
from agentrag.llm import LLMClient
from agentrag.rerank.yesno import YesNoReranker, cut_to_tokens
from agentrag.settings import LLMEndpoint
from agentrag.types import Passage
from tests.support.fakes import FakeLLM

PASSAGES = [
    Passage(id="p1", source="a.md", text="The warranty lasts two years."),
    Passage(id="p2", source="b.md", text="Clean the burrs weekly."),
    Passage(id="p3", source="c.md", text="The grinder was designed in Ghent."),
]


def test_query_comes_before_the_cut_document() -> None:
    reranker = YesNoReranker(FakeLLM(), max_document_tokens=16)  # type: ignore[arg-type]
    long = Passage(id="x", source="s", title="Warranty", text="word " * 200)
    messages = reranker.messages("How long is the warranty?", long)
    user = messages[-1]["content"]
    assert messages[0]["role"] == "system" and "yes" in messages[0]["content"]
    # The shared part (system turn, query) precedes the document, for the prefix cache.
    assert user.index("How long is the warranty?") < user.index("Warranty\nword")
    document = user.split("Document: ", 1)[1].split("\n\nIs the document", 1)[0]
    assert len(document) <= 16 * 4 and document.startswith("Warranty\nword")
    assert cut_to_tokens("short", 16) == "short"


async def test_orders_by_p_yes() -> None:
    llm = FakeLLM(p_yes=lambda text: 0.9 if "warranty" in text.split("Document:")[1] else 0.2)
    result = await YesNoReranker(llm).arerank("warranty?", PASSAGES, top_n=2)  # type: ignore[arg-type]
    assert result.passages[0].id == "p1" and not result.fallback
    assert (result.passages[0].scores.rerank or 0) > 0.8 and llm.calls["first_token"] == 3


async def test_a_failing_server_gives_the_retrieval_order(caplog) -> None:
    class Down(FakeLLM):
        async def yes_no(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
            raise LLMConnectionError("server down")

    result = await YesNoReranker(Down()).arerank("q", PASSAGES, top_n=2)  # type: ignore[arg-type]
    assert result.fallback and "llm.connection" in result.fallback_reason
    assert [p.id for p in result.passages] == ["p1", "p2"] and all(
        "rerank" not in p.scores for p in result.passages
    )


async def test_a_real_http_error_falls_back(fault_server) -> None:
    fault_server.script(["400"])
    llm = LLMClient(LLMEndpoint(model="hosted_vllm/fake", api_base=[fault_server.api_base], max_retries=0))
    result = await YesNoReranker(llm).arerank("q", PASSAGES, top_n=3)
    assert result.fallback and "llm.bad_request" in result.fallback_reason
    assert [p.id for p in result.passages] == ["p1", "p2", "p3"]


async def test_retrieval_scores_without_scores_fall_back() -> None:
    from agentrag.rerank.retrieval import RetrievalScoreReranker

    result = await RetrievalScoreReranker().arerank("q", PASSAGES, top_n=2)  # every score is 0
    assert result.fallback and [p.id for p in result.passages] == ["p1", "p2"]
    scored = [p.model_copy(update={"score": s}) for p, s in zip(PASSAGES, (0.2, 0.8, 0.4), strict=True)]
    result = await RetrievalScoreReranker().arerank("q", scored)
    assert not result.fallback and [p.score for p in result.passages] == [1.0, 0.5, 0.25]
