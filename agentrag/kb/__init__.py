"""The knowledge base: one write path into a vector store and a BM25 sidecar, and hybrid search.

A knowledge base lives in ``settings.data_dir/kb/<name>/``::

    manifest.sqlite   source of truth: documents, chunks (text, span, metadata), state
    bm25/vNNN-xxxx/   the current bm25s index (rebuilt from the manifest, published by rename)
    chroma/           the vectors (embedded Chroma; other backends: see ``[kb.store]``)
    write.lock        one writer at a time (flock; released by the OS if the writer dies)

:class:`KnowledgeBase` is the facade; its parts are

- :mod:`agentrag.kb.writer`: locking, recovery, chunk planning, the threaded embed/write
  pipeline (a process killed at any moment leaves a state the next writer repairs);
- :mod:`agentrag.kb.sidecar`: the BM25 index, published by manifest version; readers reload it;
- :mod:`agentrag.kb.searcher`: dense and BM25 candidates, fusion, the filter-mask cache.

Opening to search never repairs or embeds. Search reads committed chunks only.

Example:
    >>> from agentrag.kb import KnowledgeBase
    >>> from agentrag.settings import Settings
    >>> kb = KnowledgeBase.open(Settings.load(), "notes")  # doctest: +SKIP
    >>> report = kb.ingest(["docs/"], include=["*.md"])  # doctest: +SKIP
    >>> for p in kb.search("how do I rotate the keys?", k=5):  # doctest: +SKIP
    ...     print(f"{p.score:.3f} {p.source}:{p.start}-{p.end} {p.scores}")
    >>> kb.close()  # doctest: +SKIP
"""

from __future__ import annotations

from agentrag.kb.facade import KnowledgeBase
from agentrag.kb.models import MANIFEST, IngestProgress, IngestReport, KBStats, SearchMode
from agentrag.kb.writer import _records

__all__ = ["MANIFEST", "IngestProgress", "IngestReport", "KBStats", "KnowledgeBase", "SearchMode", "_records"]
