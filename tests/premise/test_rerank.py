"""Reranking premise candidates: the yes/no premise question, blending with retrieval, fallbacks.

Logic with a fake model, a real client against a port nobody listens on (a transport error: the
search keeps its retrieval order and says so), and, in the slow test, the real default model.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentrag.premise.search import PremiseSearcher, blend
from agentrag.rerank.yesno import YesNoReranker
from agentrag.types import Passage
from tests.premise.conftest import unreachable
from tests.support.fakes import FakeLLM

LATTICE = (
    "a lattice is a partial order where every two elements have a least upper bound and a "
    "greatest lower bound"
)


def _passages(scores: list[float]) -> list[Passage]:
    return [Passage(id=f"p{i}", text=f"t{i}", source=f"s{i}", score=s) for i, s in enumerate(scores)]


def test_blend_mixes_normalised_scores_and_keeps_retrieval_order_on_ties() -> None:
    got = _passages([10.0, 6.0, 2.0, 1.0])
    # The reranker's order: p3 (0.9), p1 (0.5), p0 (0.1), p2 (0.1).
    reranked = [got[i].model_copy(update={"score": s}) for i, s in ((3, 0.9), (1, 0.5), (0, 0.1), (2, 0.1))]
    assert [p.id for p in blend(got, reranked, 1.0)] == ["p3", "p1", "p0", "p2"]
    # Retrieval normalised: 1, 5/9, 1/9, 0; model normalised: p3 1, p1 0.5, p0 0, p2 0.
    half = blend(got, reranked, 0.5)
    # p0 and p3 tie at 0.5: the retrieval order decides.
    assert [p.id for p in half] == ["p1", "p0", "p3", "p2"]
    assert [round(p.score, 4) for p in half] == [round((0.5 + 5 / 9) / 2, 4), 0.5, 0.5, round(1 / 18, 4)]
    # Weight 0 is the retrieval order.
    assert [p.id for p in blend(got, reranked, 0.0)] == ["p0", "p1", "p2", "p3"]
    assert blend(got, [], 0.5) == []


def test_the_default_premise_reranker_asks_the_premise_question(premise_kb: Any) -> None:
    settings, kb = premise_kb
    reranker = PremiseSearcher(kb, settings=settings).reranker
    assert isinstance(reranker, YesNoReranker)
    passage = Passage(id="x", text="class Lattice (α : Type u) extends SemilatticeSup α", source="s")
    system, user = reranker.messages("a poset with joins and meets", passage)
    assert "Mathlib" in system["content"] and "yes" in system["content"]
    assert "Request: a poset with joins and meets" in user["content"]
    assert user["content"].index("Request:") < user["content"].index("class Lattice")
    # [rerank] kind set by the user wins.
    chosen = settings.model_copy(update={"rerank": settings.rerank.model_copy(update={"kind": "embedding"})})
    assert PremiseSearcher(kb, settings=chosen).reranker.name.startswith("embedding")


async def test_rerank_reorders_by_the_model_and_blends(premise_kb: Any) -> None:
    settings, kb = premise_kb
    plain = await PremiseSearcher(kb, settings=settings).asearch(LATTICE, k=5)
    last = plain[-1].name

    # The model likes only the retrieval's fifth declaration (the prompt's "Declaration:" line
    # starts with its kind and name).
    likes = re.compile(rf"Declaration:\n\S+ {re.escape(last)}\s")
    llm = FakeLLM(p_yes=lambda text: 0.9 if likes.search(text) else 0.1)
    searcher = PremiseSearcher(
        kb, settings=settings, reranker=YesNoReranker(llm, template="rerank_yesno_premise")
    )
    result = await searcher.arun(LATTICE, k=5, rerank=True, candidates=5)
    assert result.errors == [] and result.hits[0].name == last
    assert all("rerank" in h.scores for h in result.hits)
    blended = settings.model_copy(
        update={"premise": settings.premise.model_copy(update={"rerank_weight": 0.3})}
    )
    mixed = await PremiseSearcher(
        kb, settings=blended, reranker=YesNoReranker(llm, template="rerank_yesno_premise")
    ).asearch(LATTICE, k=5, rerank=True, candidates=5)
    # Weighted 0.3: the retrieval's best stays first (0.7 against the favourite's 0.3 + 0).
    assert mixed[0].name == plain[0].name and mixed[0].score == pytest.approx(0.7)
    assert [h.score for h in mixed] == sorted((h.score for h in mixed), reverse=True)
    assert next(h.score for h in mixed if h.name == last) == pytest.approx(0.3)


async def test_rerank_with_no_server_keeps_the_retrieval_order(premise_kb: Any) -> None:
    settings, kb = premise_kb
    offline = unreachable(settings, "reranker")
    plain = await PremiseSearcher(kb, settings=settings).asearch(LATTICE, k=5)
    result = await PremiseSearcher(kb, settings=offline).arun(LATTICE, k=5, rerank=True, candidates=10)
    assert result.degraded and result.errors[0].startswith("rerank:"), result.errors
    assert [h.name for h in result.hits] == [h.name for h in plain]


@pytest.mark.slow
async def test_rerank_with_the_real_default_model(premise_kb: Any, default_llm_server: str) -> None:
    settings, kb = premise_kb
    endpoint = settings.reranker.model_copy(update={"api_base": [default_llm_server]})
    live = settings.model_copy(update={"reranker": endpoint})
    searcher = PremiseSearcher(kb, settings=live)
    result = await searcher.arun(LATTICE, k=5, rerank=True, candidates=8)
    assert result.errors == [], result.errors
    scores = [h.scores["rerank"] for h in result.hits]
    assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
    # The class itself is what the request describes; the model says so.
    assert "Lattice" in [h.name for h in result.hits[:2]], [(h.name, h.scores["rerank"]) for h in result.hits]
