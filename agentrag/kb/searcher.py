"""The read side of a knowledge base: dense and BM25 candidates, fusion, filter masks.

A :class:`Searcher` never writes, repairs or embeds documents. Before each search it compares
the manifest's version with the one it last saw; when another process has published a newer
index it loads the new BM25 folder and reopens an embedded vector store (embedded Chroma keeps
its HNSW graph in memory and does not see another process's writes otherwise).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from agentrag.errors import RetrievalError
from agentrag.kb.models import SearchMode
from agentrag.retrieve.fusion import Normalization, convex, rrf
from agentrag.stores.filters import FilterLike, to_filter
from agentrag.types import Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.embed.base import Embedder
    from agentrag.ingest.manifest import Manifest
    from agentrag.kb.sidecar import BM25Sidecar, Rebuild
    from agentrag.retrieve.bm25 import BM25Index
    from agentrag.settings import RetrievalSettings
    from agentrag.stores.base import VectorStore
    from agentrag.stores.filters import Filter

__all__ = ["Searcher", "StoreHandle"]

log = logging.getLogger(__name__)

_MASK_CACHE = 32

T = TypeVar("T")
# Backends whose open handle caches the index in this process; a server backend always
# answers with what the server has.
_EMBEDDED = frozenset({"chroma", "memory"})


class StoreHandle:
    """The vector store, which searches share and a reload swaps (a small readers-writer lock).

    Args:
        store: The open store.
        factory: Opens the same store again (``None``: the caller gave the store; never reopened).
        version: The manifest version the store's contents reflect.
    """

    def __init__(self, store: VectorStore, factory: Callable[[], VectorStore] | None, version: int) -> None:
        self.store = store
        self.factory = factory
        self.version = version
        self._cond = threading.Condition()
        self._users = 0
        self._swapping = False

    @contextlib.contextmanager
    def use(self) -> Iterator[VectorStore]:
        """The store, guaranteed not to be swapped while the block runs."""
        with self._cond:
            while self._swapping:
                self._cond.wait()
            self._users += 1
        try:
            yield self.store
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def reload(self, version: int) -> None:
        """Reopen an embedded store so it reads what other processes wrote up to ``version``."""
        if version == self.version:
            return
        if self.factory is None or self.store.backend not in _EMBEDDED:
            self.version = version
            return
        with self._cond:
            if version == self.version:
                return
            self._swapping = True
            while self._users:
                self._cond.wait()
            try:
                # Close first: embedded Chroma shares one in-memory system per path and process,
                # and only a closed (last) client lets the next one read the files afresh.
                with contextlib.suppress(Exception):
                    self.store.close()
                self.store = self.factory()
                self.version = version
                log.info("vector store reopened at manifest version %d", version)
            finally:
                self._swapping = False
                self._cond.notify_all()


class Searcher:
    """Hybrid (BM25 + dense) search over a knowledge base's committed chunks.

    Args:
        name: Knowledge base name (for messages).
        manifest: The manifest (committed chunks, their text and metadata).
        stores: The vector store handle.
        sidecar: The BM25 sidecar.
        embedder: Embeds queries.
        retrieval: Search defaults.
        may_rebuild: Whether this searcher may rebuild and publish a stale BM25 index now (it
            takes the writer lock if free); ``None``: never.
        may_reload_store: Whether reopening the store is safe now (not while this process writes).
    """

    def __init__(
        self,
        *,
        name: str,
        manifest: Manifest,
        stores: StoreHandle,
        sidecar: BM25Sidecar,
        embedder: Embedder,
        retrieval: RetrievalSettings,
        may_rebuild: Rebuild | None = None,
        may_reload_store: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.manifest = manifest
        self.stores = stores
        self.sidecar = sidecar
        self.embedder = embedder
        self.retrieval = retrieval
        self._may_rebuild = may_rebuild
        self._may_reload_store = may_reload_store
        self._masks: OrderedDict[tuple[str, int, int], NDArray[np.float32]] = OrderedDict()
        self._mask_lock = threading.Lock()

    # -- freshness ----------------------------------------------------------------------------

    def refresh(self) -> BM25Index | None:
        """Catch up with the newest published index (BM25 and store); returns the BM25 index."""
        index = self.sidecar.current(rebuild=self._may_rebuild)
        version = self.manifest.version
        if version != self.stores.version and (self._may_reload_store is None or self._may_reload_store()):
            self.stores.reload(version)
        return index

    # -- the two sides ------------------------------------------------------------------------

    def bm25_hits(
        self, index: BM25Index | None, query: str, depth: int, flt: Filter | None
    ) -> list[tuple[str, float]]:
        """BM25 candidates as ``(chunk id, score)``, best first (committed chunks only)."""
        if index is None or index.size == 0:
            return []
        mask = self._mask(index, flt) if flt is not None else None
        hits = index.search(query, depth, mask=mask)
        if index.version == self.manifest.version:
            # Built at the manifest's current version: every indexed row is live, and the index
            # knows its rows' ids. (A change committed meanwhile is caught by the final read.)
            known = index.ids_of([r for r, _ in hits])
            if known is not None:
                return [(cid, s) for cid, (_, s) in zip(known, hits, strict=True)]
        ids = self.manifest.live_ids_by_rowids([r for r, _ in hits])
        return [(ids[r], s) for r, s in hits if r in ids]

    def _mask(self, index: BM25Index, flt: Filter) -> NDArray[np.float32]:
        # Evaluating a filter scans the manifest's JSON metadata (about a second per million
        # chunks); agents repeat the same few filters, so masks are kept per index version.
        key = (flt.model_dump_json(), index.version, id(index))
        with self._mask_lock:
            mask = self._masks.get(key)
            if mask is not None:
                self._masks.move_to_end(key)
                return mask
        mask = index.mask_for(self.manifest.live_rowids(flt))
        with self._mask_lock:
            self._masks[key] = mask
            while len(self._masks) > _MASK_CACHE:
                self._masks.popitem(last=False)
        return mask

    def dense_hits(
        self, vector: NDArray[np.float32], depth: int, flt: Filter | None
    ) -> list[tuple[str, float]]:
        """Dense candidates as ``(chunk id, score)``, best first: ids and scores only.

        The text of the final ``k`` is read from the manifest afterwards.
        """
        with self.stores.use() as store:
            return store.candidates(vector, depth, filters=flt)

    # -- search -------------------------------------------------------------------------------

    async def asearch(
        self,
        query: str,
        k: int,
        mode: SearchMode,
        filters: FilterLike | None,
        *,
        fusion: Literal["rrf", "convex"] | None,
        alpha: float | None,
        candidates: int | None,
        normalization: Normalization | None = None,
    ) -> list[Passage]:
        """Search (arguments already validated: see :meth:`agentrag.kb.KnowledgeBase.asearch`).

        The search is one worker-thread call (:meth:`_search`): a hop between the event loop
        and a thread costs a wake-up on each side, which on a busy machine is a wait for a
        core, while the manifest reads and the fusion take well under a millisecond each. The
        query is embedded on the loop's side meanwhile, so a slow embedder overlaps the
        freshness check and the BM25 side.
        """
        if mode not in ("hybrid", "bm25", "dense"):
            raise RetrievalError(f"unknown search mode {mode!r}", hint="use hybrid, bm25 or dense")
        if not query.strip():
            return []
        flt = to_filter(filters)
        depth = max(candidates or self.retrieval.candidates, k)
        vector: concurrent.futures.Future[NDArray[np.float32]] | None = None
        embedding: asyncio.Future[NDArray[np.float32]] | None = None
        if mode != "bm25":
            vector = concurrent.futures.Future()
            embedding = asyncio.ensure_future(self.embedder.aembed_query(query))
            embedding.add_done_callback(functools.partial(_relay, vector))
        # Its own pool, not the loop's default executor: the search thread may wait for the
        # embedding, which a local embedder computes in a default-executor thread; with every
        # default thread waiting here, that embedding would never start.
        loop = asyncio.get_running_loop()
        call = functools.partial(
            contextvars.copy_context().run,
            self._search,
            query,
            k,
            mode,
            flt,
            depth,
            None if vector is None else functools.partial(_wait, vector, loop),
            fusion=fusion,
            alpha=alpha,
            normalization=normalization,
        )
        try:
            return await loop.run_in_executor(_pool("search"), call)
        finally:
            if embedding is not None and not embedding.done():
                embedding.cancel()  # the search failed or was cancelled: the vector is not wanted

    def _search(
        self,
        query: str,
        k: int,
        mode: SearchMode,
        flt: Filter | None,
        depth: int,
        vector: Callable[[], NDArray[np.float32]] | None,
        *,
        fusion: Literal["rrf", "convex"] | None,
        alpha: float | None,
        normalization: Normalization | None,
    ) -> list[Passage]:
        """The blocking search: freshness, both sides at once, fusion, the final k passages."""
        cfg = self.retrieval
        index = self.refresh()
        lexical: concurrent.futures.Future[list[tuple[str, float]]] | None = None
        bm25_hits: list[tuple[str, float]] = []
        dense_hits: list[tuple[str, float]] = []
        if mode == "hybrid":
            # BM25 in a helper thread beside the dense side in this one: Chroma's query releases
            # the GIL, and bm25s spends much of its time in numpy.
            lexical = _pool("bm25").submit(self.bm25_hits, index, query, depth, flt)
        elif mode == "bm25":
            bm25_hits = self.bm25_hits(index, query, depth, flt)
        if vector is not None:
            dense_hits = self.dense_hits(vector(), depth, flt)
        if lexical is not None:
            bm25_hits = lexical.result()
        bm25 = dict(bm25_hits)
        dense_scores = dict(dense_hits)
        method = "bm25" if mode == "bm25" else "dense" if mode == "dense" else fusion or cfg.fusion
        if method == "bm25":
            fused = bm25
        elif method == "dense":
            fused = dense_scores
        elif method == "rrf":
            fused = rrf(
                [[i for i, _ in bm25_hits], [i for i, _ in dense_hits]],
                weights=list(cfg.rrf_weights),
                k=cfg.rrf_k,
            )
        else:
            a = cfg.alpha if alpha is None else alpha
            fused = convex(bm25, dense_scores, alpha=a, method=normalization or cfg.normalization)
        order = sorted(fused, key=lambda d: (-fused[d], d))
        passages: list[Passage] = []
        start = 0
        while start < len(order):
            # The first read asks for k records (usually all live: one small query); when some
            # are not (an ingest in flight, a deletion), the next reads take bigger steps.
            step = k if start == 0 else max(2 * k, 32)
            part = order[start : start + step]
            start += step
            chunks = self.manifest.live_by_ids(part)
            for cid in part:
                chunk = chunks.get(cid)
                if chunk is None:
                    continue  # not committed (an ingest in flight) or already deleted
                scores: dict[str, float] = {}
                if cid in bm25:
                    scores["bm25"] = bm25[cid]
                if cid in dense_scores:
                    scores["dense"] = dense_scores[cid]
                if method not in scores:
                    scores[method] = fused[cid]
                passages.append(Passage(**chunk.model_dump(), score=fused[cid], scores=scores, query=query))
                if len(passages) == k:
                    return passages
        return passages


def _relay(target: concurrent.futures.Future[T], source: asyncio.Future[T]) -> None:
    """Hand an event-loop future's outcome to a thread that waits on ``target``."""
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def _wait(future: concurrent.futures.Future[T], loop: asyncio.AbstractEventLoop) -> T:
    """``future``'s result, set by ``loop``; gives up if the loop stops first (never hangs at exit)."""
    while True:
        try:
            return future.result(timeout=0.5)
        except TimeoutError:
            if loop.is_closed() or not loop.is_running():
                raise RetrievalError("the event loop stopped while the query was being embedded") from None


_POOLS: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def _pool(name: Literal["search", "bm25"]) -> concurrent.futures.ThreadPoolExecutor:
    # Two pools: a search thread waits for its BM25 side, so that side must not queue behind
    # other searches in the same pool. Small: there is nothing to gain past the core count,
    # and a busy pool only queues (no thread waits for anything in its own pool).
    with _POOLS_LOCK:
        pool = _POOLS.get(name)
        if pool is None:
            pool = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix=f"agentrag-{name}")
            _POOLS[name] = pool
        return pool
