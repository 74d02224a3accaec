"""QA per-question scoring: answer metrics and supporting-paragraph recall from the agent's answer."""

from __future__ import annotations

import pytest

from agentrag.errors import LLMConnectionError
from agentrag.evaluation.data import Paragraph, QAItem
from agentrag.evaluation.qa import QA_METRICS, _check_server, case_scores, paragraph_order, score_answer
from agentrag.types import Answer, Dropped, Evidence, Usage


def test_paragraph_order_is_context_then_dropped_distinct() -> None:
    answer = Answer(
        question="q",
        text="a",
        evidence=[Evidence(passage_id="c3#s1", text="x"), Evidence(passage_id="c1", text="y")],
        dropped=[
            Dropped(passage_id="c3", stage="pack_context", reason="dup"),
            Dropped(passage_id="c7", stage="rerank", reason="low"),
            Dropped(passage_id="unknown", stage="rerank", reason="?"),
        ],
    )
    paragraph_of = {"c1": "1", "c3": "3", "c7": "7"}
    assert paragraph_order(answer, paragraph_of) == ["3", "1", "7"]


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        (
            "The Chief of Protocol.",
            ["1", "4", "0", "2", "3", "5"],
            {"em": 1.0, "contains": 1.0, "sp": 0.5, "sp2": 0.5},
        ),
        ("She was chief of protocol", ["1", "5"], {"em": 0.0, "contains": 1.0, "sp": 1.0, "sp2": 1.0}),
        ("an ambassador", [], {"em": 0.0, "contains": 0.0, "sp": 0.0, "sp2": 0.0}),
        # Citation markers are not answer words.
        ("The Chief of Protocol [1][5].", ["1", "5"], {"em": 1.0, "contains": 1.0, "sp": 1.0, "sp2": 1.0}),
        ("x", ["0", "4", "1", "2", "5"], {"em": 0.0, "contains": 0.0, "sp": 1.0, "sp2": 0.0}),
    ],
)
def test_score_answer(text: str, order: list[str], expected: dict[str, float]) -> None:
    s = score_answer(text, ["Chief of Protocol"], order, supporting={"1", "5"})
    assert (s["em"], s["contains"], s["sp_recall@5"]) == (
        expected["em"],
        expected["contains"],
        expected["sp"],
    )
    assert 0.0 <= s["f1"] <= 1.0
    assert (s["f1"] == 1.0) == (expected["em"] == 1.0)


def test_score_answer_without_supporting_paragraphs() -> None:
    assert score_answer("x", ["x"], ["1"], supporting=set())["sp_recall@5"] == 0.0


def test_case_scores_from_a_record() -> None:
    item = QAItem(
        id="q",
        question="Who?",
        answers=["Ann Lee"],
        paragraphs=[Paragraph(id=str(i), title="t", text="x", supporting=i in (1, 3)) for i in range(5)],
    )
    s = case_scores(item, {"answer": "ann lee", "paragraphs": ["3", "0", "1"], "udcg": 0.7})
    assert s == {"em": 1.0, "f1": 1.0, "contains": 1.0, "sp_recall@2": 0.5, "sp_recall@5": 1.0, "udcg": 0.7}
    assert set(s) == set(QA_METRICS)
    assert case_scores(item, {}) == dict.fromkeys(QA_METRICS, 0.0)  # a failed question


def _answer(**kw) -> Answer:
    return Answer(question="q", text="a", usage=Usage(calls=3), **kw)


def test_answers_shaped_by_an_unreachable_server_are_failures_not_results() -> None:
    _check_server(_answer())  # a clean run
    _check_server(_answer(errors=["rerank: kept retrieval order (LLMOutputError: bad JSON)"]))
    with pytest.raises(LLMConnectionError, match="did not reach the model server"):
        _check_server(_answer(errors=["rewrite: kept the question (LLMConnectionError: cannot reach)"]))
    with pytest.raises(LLMConnectionError):
        _check_server(Answer(question="q", text="I cannot answer", outcome="abstained"))  # no call made
    with pytest.raises(LLMConnectionError):
        _check_server(_answer(outcome="failed"))
