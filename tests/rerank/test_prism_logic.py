"""PrismReranker's decisions and fallbacks, with a scripted fake LLM (unit tests of logic).

The real-server path is in test_prism.py and the conformance suite.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

import pytest

from agentrag.errors import LLMConnectionError, LLMServerError
from agentrag.llm import Completion, LLMClient, YesNo
from agentrag.rerank import PrismConfig, PrismReranker
from agentrag.scoring.calibration import Calibration
from agentrag.settings import LLMEndpoint
from agentrag.types import Passage

PASSAGES = [
    Passage(id="p1", text="The Pacific Ocean is the largest ocean.", source="doc1", start=0),
    Passage(
        id="p2",
        text="Hamlet is a tragedy written by William Shakespeare around 1600.",
        source="doc2",
        start=500,
    ),
    Passage(id="p3", text="Spiders have eight legs.", source="doc3", start=40),
]


@dataclass
class FakeLLM:
    """Answers yes_no by a keyword -> p(yes) table and complete() from a script."""

    p_yes: dict[str, float]
    completions: dict[str, tuple[str, str]] = field(default_factory=dict)
    fail_scoring: Exception | None = None
    fail_evidence_for: set[str] = field(default_factory=set)
    model: str = "hosted_vllm/fake"
    role: str = "fake"
    scored: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)

    def _key(self, prompt: str, table) -> str:
        doc = prompt.rsplit("<Document>: ", 1)[1]
        return next(k for k in table if k in doc)

    async def yes_no(self, messages=None, *, prompt: str, yes=("yes",), no=("no",), exact=False) -> YesNo:
        await asyncio.sleep(0)
        if self.fail_scoring is not None:
            raise self.fail_scoring
        key = self._key(prompt, self.p_yes)
        self.scored.append(key)
        p = self.p_yes[key]
        logit = math.log(p / (1 - p))
        return YesNo(p_yes=p, logit=logit, logprob_yes=math.log(p), logprob_no=math.log(1 - p))

    async def complete(
        self, prompt: str, *, max_tokens=None, temperature=None, stop=None, extra_body=None
    ) -> Completion:
        assert prompt.endswith("<think>\n\n</think>\n\nyes\n<contribution>")
        assert stop == ["</evidence>"] and temperature == 0.0
        key = self._key(prompt, self.completions or self.p_yes)
        self.completed.append(key)
        if key in self.fail_evidence_for:
            raise LLMServerError("boom")
        text, finish = self.completions.get(key, ("", "stop"))
        return Completion(text=text, finish_reason=finish)


TABLE = {"Pacific": 0.2, "Hamlet": 0.9, "Spiders": 0.6}


async def test_orders_by_p_yes_and_explains_only_the_kept() -> None:
    llm = FakeLLM(
        TABLE,
        completions={
            "Hamlet": (
                "It names the author.</contribution>\n"
                "<evidence>Hamlet is a tragedy written by William\nShakespeare",
                "stop",
            ),
            "Spiders": ("Leg count.</contribution>\n<evidence>A spider has 8 legs.", "stop"),
        },
    )
    result = await PrismReranker(llm).arerank("Who wrote Hamlet?", PASSAGES, top_n=2)  # type: ignore[arg-type]
    assert [p.id for p in result.passages] == ["p2", "p3"]
    assert sorted(llm.scored) == sorted(TABLE)  # every candidate scored
    assert sorted(llm.completed) == ["Hamlet", "Spiders"]  # evidence only for the kept
    hamlet, spiders = result.evidence
    # Verbatim (up to whitespace) evidence gets its span in the source: passage start 500 + offset.
    assert hamlet.text == "Hamlet is a tragedy written by William\nShakespeare" and not hamlet.fallback
    assert (hamlet.start, hamlet.end) == (
        500,
        500 + len("Hamlet is a tragedy written by William Shakespeare"),
    )
    assert hamlet.contribution == "It names the author." and hamlet.relevance.p == pytest.approx(0.9)
    # A rewrite is kept as evidence but has no span.
    assert spiders.text == "A spider has 8 legs." and spiders.start is None and not spiders.fallback
    assert result.dropped[0].passage_id == "p1" and "top_n=2" in result.dropped[0].reason


async def test_threshold_and_calibrated_relevance() -> None:
    llm = FakeLLM(TABLE, completions=dict.fromkeys(TABLE, ("c</contribution><evidence>e", "stop")))
    # p = sigmoid(4 s - 2.4) maps 0.9 -> 0.77, 0.6 -> 0.5, 0.2 -> 0.17
    cal = Calibration(method="platt", a=4.0, b=-2.4)
    result = await PrismReranker(llm, calibration=cal).arerank("q", PASSAGES, threshold=0.5)  # type: ignore[arg-type]
    assert [p.id for p in result.passages] == ["p2", "p3"]
    assert result.passages[0].relevance.p == pytest.approx(cal(0.9))
    assert result.passages[0].relevance.origin == "calibrated"
    assert result.passages[0].score == pytest.approx(0.9)  # ordering stays on the raw score
    assert result.evidence[0].relevance.p == pytest.approx(cal(0.9))
    assert "p(relevant)=" in result.dropped[0].reason and "< 0.5" in result.dropped[0].reason


@pytest.mark.parametrize(
    ("text", "finish", "why"),
    [
        ("It names the author.</contribution>\n<evidence>Hamlet is a trag", "length", "cut off"),
        ("It names the author.</contribution>", "stop", "no evidence"),
        ("</contribution><evidence>   ", "stop", "empty"),
    ],
)
async def test_unusable_evidence_falls_back_to_the_passage(text: str, finish: str, why: str, caplog) -> None:
    llm = FakeLLM(TABLE, completions={"Hamlet": (text, finish)})
    result = await PrismReranker(llm).arerank("q", PASSAGES, top_n=1)  # type: ignore[arg-type]
    (ev,) = result.evidence
    assert ev.fallback and ev.text == PASSAGES[1].text
    assert (ev.start, ev.end) == (500, 500 + len(PASSAGES[1].text))
    assert not result.fallback  # the ranking itself stands
    assert "fell back" in caplog.text


async def test_failed_evidence_call_falls_back_for_that_passage_only() -> None:
    llm = FakeLLM(
        TABLE,
        completions=dict.fromkeys(TABLE, ("c</contribution><evidence>x", "stop")),
        fail_evidence_for={"Hamlet"},
    )
    result = await PrismReranker(llm).arerank("q", PASSAGES, top_n=2)  # type: ignore[arg-type]
    assert [e.fallback for e in result.evidence] == [True, False]


async def test_failed_scoring_keeps_retrieval_order(caplog) -> None:
    llm = FakeLLM(TABLE, fail_scoring=LLMConnectionError("server down"))
    result = await PrismReranker(llm).arerank("q", PASSAGES, top_n=2, threshold=0.99)  # type: ignore[arg-type]
    assert result.fallback and "llm.connection" in result.fallback_reason
    assert [p.id for p in result.passages] == ["p1", "p2"]  # retrieval order, threshold not applicable
    # No rerank score, and a relevance that is unknown (fallback), never 0.
    assert all(p.scores.rerank is None for p in result.passages)
    assert all(p.relevance.origin == "fallback" and not p.relevance.known for p in result.passages)
    assert all(e.relevance.p is None and e.relevance.origin == "fallback" for e in result.evidence)
    assert [e.passage_id for e in result.evidence] == ["p1", "p2"] and all(
        e.fallback for e in result.evidence
    )
    assert result.dropped[0].passage_id == "p3"
    assert llm.completed == []
    assert "kept the retrieval order" in caplog.text


async def test_scores_only_mode_generates_nothing() -> None:
    llm = FakeLLM(TABLE)
    result = await PrismReranker(llm, PrismConfig(generate_evidence=False)).arerank("q", PASSAGES)  # type: ignore[arg-type]
    assert result.evidence == [] and llm.completed == []
    assert [p.id for p in result.passages] == ["p2", "p3", "p1"]


async def test_titles_and_truncation_reach_the_prompt() -> None:
    llm = FakeLLM({"Hamlet": 0.5})
    passage = Passage(id="x", text="Hamlet " + "x" * 500, source="s", title="A Play")
    reranker = PrismReranker(llm, PrismConfig(max_document_chars=120))  # type: ignore[arg-type]
    prompt = reranker.prompt("q", passage)
    doc = prompt.split("<Document>: ", 1)[1].split("<|im_end|>", 1)[0]
    assert doc.startswith("A Play\nHamlet ") and len(doc) == 120


def test_general_model_config() -> None:
    cfg = PrismConfig.for_general_models(max_tokens=64)
    assert len(cfg.examples) == 2 and cfg.think.endswith("</think>\n") and cfg.max_tokens == 64
    assert {e.answer.split("\n", 1)[0] for e in cfg.examples} == {"yes", "no"}


async def test_rejected_by_a_real_http_server_falls_back_requests_fall_back_to_retrieval_order(
    fault_server, scifact_candidates
) -> None:
    fault_server.script(["400"])
    llm = LLMClient(LLMEndpoint(model="hosted_vllm/fake", api_base=[fault_server.api_base], max_retries=0))
    c = scifact_candidates[0]
    result = await PrismReranker(llm).arerank(c.query, c.passages, top_n=3)
    assert result.fallback and "llm.bad_request" in result.fallback_reason
    assert [p.id for p in result.passages] == [p.id for p in c.passages[:3]]
    assert all(e.fallback and e.text == p.text for e, p in zip(result.evidence, result.passages, strict=True))
