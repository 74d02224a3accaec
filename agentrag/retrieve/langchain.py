"""A knowledge base as a LangChain retriever."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from agentrag.types import Passage

__all__ = ["KBRetriever", "passage_to_document"]


def passage_to_document(passage: Passage) -> Document:
    """A passage as a LangChain ``Document`` (span, scores and ids in the metadata)."""
    meta: dict[str, Any] = {
        **passage.metadata,
        "source": passage.source,
        "title": passage.title,
        "start": passage.start,
        "end": passage.end,
        "doc_id": passage.doc_id,
        "score": passage.score,
        "scores": passage.scores.as_dict(),
    }
    return Document(id=passage.id, page_content=passage.text, metadata=meta)


class KBRetriever(BaseRetriever):
    """Searches a :class:`~agentrag.kb.KnowledgeBase` (hybrid by default).

    Example:
        >>> retriever = kb.as_retriever(k=5, mode="hybrid")  # doctest: +SKIP
        >>> docs = await retriever.ainvoke("what causes scurvy?")  # doctest: +SKIP
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    """The knowledge base."""

    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Arguments for ``KnowledgeBase.asearch`` (``k``, ``mode``, ``filters``, ``fusion``, ...)."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [passage_to_document(p) for p in self.kb.search(query, **self.search_kwargs)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        passages = await self.kb.asearch(query, **self.search_kwargs)
        return [passage_to_document(p) for p in passages]
