"""Ranking metrics through trec_eval (pytrec_eval), checked by hand; SQuAD-style QA metrics."""

from __future__ import annotations

import math

import pytest

from agentrag.scoring.metrics import (
    answer_contains,
    exact_match,
    f1_score,
    ir_metrics,
    ir_metrics_per_query,
    normalize_answer,
    qa_scores,
    run_from_rankings,
)

QRELS = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}, "q3": {"d9": 1}, "q4": {"dx": 0}}
RUN = {
    "q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1},
    "q2": {"d1": 0.5, "d2": 0.4, "d5": 0.3},
    # q3 unanswered; q4 has no relevant document.
}


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def test_values_match_hand_computation() -> None:
    per_q = ir_metrics_per_query(
        QRELS, RUN, ["ndcg@10", "ndcg@1", "recall@1", "recall@10", "mrr", "map", "precision@2"]
    )
    assert set(per_q) == {"q1", "q2", "q3"}  # q4 has nothing relevant: skipped, as trec_eval does
    q1 = per_q["q1"]
    assert q1["ndcg@10"] == pytest.approx(dcg([1, 0, 2]) / dcg([2, 1]))
    assert q1["ndcg@1"] == pytest.approx(1 / 2)
    assert q1["recall@1"] == 0.5 and q1["recall@10"] == 1.0
    assert q1["mrr"] == 1.0 and q1["map"] == pytest.approx((1 / 1 + 2 / 3) / 2) and q1["precision@2"] == 0.5
    q2 = per_q["q2"]
    assert q2["mrr"] == 0.5 and q2["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert per_q["q3"] == dict.fromkeys(q1, 0.0)  # unanswered counts as zero


def test_means_over_all_judged_queries() -> None:
    means = ir_metrics(QRELS, RUN, ["mrr", "ndcg@10"])
    assert means["mrr"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_run_from_rankings_keeps_the_order_and_first_occurrence() -> None:
    run = run_from_rankings({"q1": ["d3", "d2", "d3", "d1"]})
    assert list(run["q1"]) == ["d3", "d2", "d1"]
    assert ir_metrics_per_query(QRELS, run, ["ndcg@10"])["q1"]["ndcg@10"] == pytest.approx(
        dcg([2, 0, 1]) / dcg([2, 1])
    )


def test_ties_do_not_depend_on_insertion_order() -> None:
    a = ir_metrics({"q": {"b": 1}}, {"q": {"a": 1.0, "b": 1.0}}, ["mrr"])
    b = ir_metrics({"q": {"b": 1}}, {"q": {"b": 1.0, "a": 1.0}}, ["mrr"])
    assert a == b


def test_unknown_measure() -> None:
    with pytest.raises(ValueError, match="unknown measure"):
        ir_metrics(QRELS, RUN, ["ndcg10"])
    with pytest.raises(ValueError, match="k must be"):
        ir_metrics(QRELS, RUN, ["recall@0"])


def test_empty_qrels() -> None:
    assert ir_metrics({}, RUN, ["mrr"]) == {"mrr": 0.0}


@pytest.mark.parametrize(
    ("text", "norm"),
    [("The  Eiffel Tower!", "eiffel tower"), ("an apple, a pear", "apple pear"), ("U.S.A.", "usa"), ("", "")],
)
def test_squad_normalisation(text: str, norm: str) -> None:
    assert normalize_answer(text) == norm


def test_qa_metrics() -> None:
    gold = ["Eiffel Tower", "the tower"]
    assert exact_match("the eiffel tower.", gold) == 1.0
    assert exact_match("Eiffel", gold) == 0.0
    assert f1_score("Eiffel", gold) == pytest.approx(2 / 3)
    assert f1_score("tower", gold) == 1.0  # "the tower" normalises to "tower"
    assert f1_score("", [""]) == 1.0 and f1_score("x", [""]) == 0.0
    assert answer_contains("It is the Eiffel Tower in Paris.", gold) == 1.0
    assert answer_contains("100 years", "10") == 0.0 and answer_contains("10 years", "10") == 1.0
    assert qa_scores("Paris", "paris") == {"em": 1.0, "f1": 1.0, "contains": 1.0}
