from __future__ import annotations

import pytest

from tests.support.fakes import FakeLLM, FakeRetriever, passage

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
