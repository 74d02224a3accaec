"""KBSystem.arank counts distinct documents: Recall@100 and MAP look at 100 of them."""

from __future__ import annotations

import asyncio
from typing import Any

from agentrag.evaluation.retrieval import KBSystem, check_configs
from agentrag.settings import RetrievalSettings
from agentrag.types import Passage


class ChunkyKB:
    """A corpus of ``docs`` documents of ``per_doc`` chunks each, ranked doc by doc, interleaved.

    Like the real KB, ``asearch`` returns at most ``k`` chunks and fewer when the corpus ends.
    """

    name = "chunky"
    retrieval = RetrievalSettings()

    def __init__(self, docs: int, per_doc: int) -> None:
        # A document's chunks come one after another in the ranking.
        self.chunks = [(f"d{d}", c) for d in range(docs) for c in range(per_doc)]
        self.calls: list[dict[str, Any]] = []

    async def asearch(self, query: str, **kw: Any) -> list[Passage]:
        self.calls.append(kw)
        return [
            Passage(id=f"{d}-{c}", doc_id=d, source=f"x#{d}", text="t", metadata={"row_id": d}, query=query)
            for d, c in self.chunks[: kw["k"]]
        ]


def test_arank_searches_deeper_until_depth_distinct_documents() -> None:
    kb = ChunkyKB(docs=500, per_doc=3)
    system = KBSystem("hybrid", kb, "hybrid")  # type: ignore[arg-type]
    ranking = asyncio.run(system.arank("q", 100))
    assert len(ranking) == 100 and len(set(ranking)) == 100
    assert ranking[:3] == ["d0", "d1", "d2"]
    assert [c["k"] for c in kb.calls] == [150, 300]  # 150 chunks = 50 docs, 300 chunks = 100


def test_arank_stops_when_the_corpus_ends() -> None:
    kb = ChunkyKB(docs=40, per_doc=2)
    ranking = asyncio.run(KBSystem("bm25", kb, "bm25").arank("q", 100))  # type: ignore[arg-type]
    assert len(ranking) == 40
    assert [c["k"] for c in kb.calls] == [150]  # 80 chunks < 150 asked: nothing more to find


def test_fusion_variants_pass_their_fusion_and_record_it() -> None:
    kb = ChunkyKB(docs=10, per_doc=1)
    system = KBSystem("hybrid-minmax", kb, "hybrid", fusion="convex", normalization="minmax")  # type: ignore[arg-type]
    asyncio.run(system.arank("q", 5))
    assert kb.calls[0]["fusion"] == "convex" and kb.calls[0]["normalization"] == "minmax"
    setup = system.fusion_setup()
    assert setup["normalization"] == "minmax" and setup["alpha"] == kb.retrieval.alpha
    assert check_configs(["bm25", "hybrid-rrf", "bm25"]) == ["bm25", "hybrid-rrf"]
