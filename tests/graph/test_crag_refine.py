"""CRAG knowledge refinement as the paper defines it: strips scored, top-n kept, recomposed per source."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agentrag.graph import RunContext
from agentrag.nodes.crag import CorrectParams, RefineParams, correct, recompose, refine
from agentrag.state import RAGState
from agentrag.types import Evidence, Relevance
from tests.support.fakes import FakeReranker, FakeRetriever, passage

HAMLET = (
    "Hamlet is a tragedy. It was written by William Shakespeare. The play is set in Denmark. "
    "Shakespeare wrote it around 1600. It is his longest play."
)
OCEAN = "The Pacific Ocean is large. It covers a third of the Earth. Whales live there."


def _ev(p: Any, relevance: float, **update: Any) -> Evidence:
    ev = Evidence(
        passage_id=p.id,
        text=p.text,
        relevance=Relevance(p=relevance, origin="reranker"),
        source=p.source,
        title=p.title,
        start=p.start,
        end=p.end,
    )
    return ev.model_copy(update=update)


def _runtime(
    settings: Any, fake_llm: Any, reranker: Any = None, embedder: Any = None, retriever: Any = None
) -> Any:
    ctx = RunContext(
        settings=settings,
        llm=fake_llm,
        reranker=reranker,
        embedder=embedder,
        retriever=retriever,
        usage=fake_llm.usage,
    )
    return SimpleNamespace(context=ctx)


def shakespeare(text: str) -> float:
    return 0.9 if "Shakespeare" in text else 0.1


async def test_kept_strips_of_one_source_are_recomposed_into_one_passage(settings, fake_llm) -> None:
    hamlet, ocean = passage("hamlet", HAMLET, start=100), passage("ocean", OCEAN)
    state = RAGState(
        question="Who wrote Hamlet?", candidates=[hamlet, ocean], evidence=[_ev(hamlet, 0.8), _ev(ocean, 0.3)]
    )
    params = RefineParams(strip="sentences", size=1, top_n=2, scorer="reranker")
    out = await refine(state, _runtime(settings, fake_llm, FakeReranker(shakespeare)), params)
    # One refined passage per source (not one item per strip), its strips in source order.
    assert [e.passage_id for e in out["evidence"]] == ["hamlet"]
    refined = out["evidence"][0]
    assert refined.text == "It was written by William Shakespeare. Shakespeare wrote it around 1600."
    # Not contiguous in the source: no span that would quote the text cut out between them.
    assert refined.start is None and refined.end is None
    assert refined.relevance.p == 0.8  # the passage-level (calibrated) probability
    # The source with no kept strip is removed with a record.
    [drop] = out["dropped"]
    assert drop.passage_id == "ocean" and drop.stage == "refine" and "strips" in drop.reason


async def test_contiguous_strips_keep_an_exact_span(settings, fake_llm) -> None:
    hamlet = passage("hamlet", HAMLET, start=100)
    state = RAGState(question="q", candidates=[hamlet], evidence=[_ev(hamlet, 0.8)])
    reranker = FakeReranker(
        lambda t: 0.9 if ("Shakespeare" in t or "Denmark" in t) and "1600" not in t else 0.1
    )
    out = await refine(state, _runtime(settings, fake_llm, reranker), RefineParams(size=1, top_n=2))
    [ev] = out["evidence"]
    assert ev.text == "It was written by William Shakespeare. The play is set in Denmark."
    assert HAMLET[ev.start - hamlet.start : ev.end - hamlet.start] == ev.text


async def test_prism_evidence_is_the_strip_source(settings, fake_llm) -> None:
    hamlet = passage("hamlet", HAMLET)
    rewrite = "William Shakespeare wrote Hamlet. He wrote it around 1600. Denmark is the setting."
    state = RAGState(
        question="q", candidates=[hamlet], evidence=[_ev(hamlet, 0.9, text=rewrite, start=None, end=None)]
    )
    out = await refine(
        state, _runtime(settings, fake_llm, FakeReranker(shakespeare)), RefineParams(size=1, top_n=1)
    )
    [ev] = out["evidence"]
    assert ev.text == "William Shakespeare wrote Hamlet."  # cut from the evidence, not from the passage
    assert out["_event"]["data"]["strip_sources"] == {"evidence": 1, "passage": 0}
    # A fallback "evidence" (the passage text standing in) is not a rewrite: the passage is used.
    state = RAGState(question="q", candidates=[hamlet], evidence=[_ev(hamlet, 0.9, fallback=True)])
    out = await refine(
        state, _runtime(settings, fake_llm, FakeReranker(shakespeare)), RefineParams(size=1, top_n=1)
    )
    assert out["_event"]["data"]["strip_sources"] == {"evidence": 0, "passage": 1}


async def test_items_beyond_max_passages_leave_a_record(settings, fake_llm) -> None:
    ps = [passage(f"p{i}", f"Shakespeare fact number {i}.") for i in range(3)]
    state = RAGState(question="q", candidates=ps, evidence=[_ev(p, 0.9) for p in ps])
    out = await refine(
        state, _runtime(settings, fake_llm, FakeReranker(shakespeare)), RefineParams(max_passages=2)
    )
    assert [e.passage_id for e in out["evidence"]] == ["p0", "p1"]
    assert [(d.passage_id, d.stage) for d in out["dropped"]] == [("p2", "refine")]


def test_recompose_rules() -> None:
    assert recompose([(1, "b", 5, 6), (0, "a", 0, 4)]) == ("a b", 0, 6)
    assert recompose([(0, "a", 0, 4), (2, "c", 9, 10)]) == ("a c", None, None)
    assert recompose([(0, "a", None, None)]) == ("a", None, None)


async def test_correct_leaves_a_record_for_every_removed_item(settings, fake_llm) -> None:
    hamlet, ocean = passage("hamlet", HAMLET), passage("ocean", OCEAN)
    retriever = FakeRetriever([hamlet, ocean, passage("new", "Shakespeare was born in Stratford.")])
    ev = [_ev(hamlet, 0.4), _ev(ocean, 0.1)]
    for action, removed in (("ambiguous", {"ocean"}), ("incorrect", {"hamlet", "ocean"})):
        state = RAGState(
            question="Who wrote Hamlet?", candidates=[hamlet, ocean], evidence=ev, crag_action=action
        )
        out = await correct(state, _runtime(settings, fake_llm, retriever=retriever), CorrectParams())
        assert {d.passage_id for d in out["dropped"] if d.stage == "correct"} == removed
        assert {e.passage_id for e in out["evidence"]} == {"hamlet", "ocean"} - removed


@pytest.mark.slow
async def test_refine_with_the_real_minilm_embedder(settings, fake_llm) -> None:
    from agentrag.embed import embedder_from_settings

    hamlet, ocean = passage("hamlet", HAMLET), passage("ocean", OCEAN)
    state = RAGState(
        question="Who wrote the play Hamlet?",
        candidates=[hamlet, ocean],
        evidence=[_ev(hamlet, 0.8), _ev(ocean, 0.3)],
    )
    runtime = _runtime(settings, fake_llm, embedder=embedder_from_settings(settings))
    out = await refine(state, runtime, RefineParams(size=1, top_n=2, scorer="auto"))
    [ev] = out["evidence"]
    assert ev.passage_id == "hamlet" and "Shakespeare" in ev.text
    assert [d.passage_id for d in out["dropped"]] == ["ocean"]
