"""`KnowledgeBase`: the public facade over the writer, the BM25 sidecar and the searcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agentrag._async import run_sync
from agentrag.errors import ConfigError, IngestError, KBBusyError, KBNotFoundError, RetrievalError, StoreError
from agentrag.ingest.manifest import Manifest
from agentrag.kb.lock import WriterLock
from agentrag.kb.models import MANIFEST, IngestProgress, IngestReport, KBStats, SearchMode
from agentrag.kb.searcher import Searcher, StoreHandle
from agentrag.kb.sidecar import BM25Sidecar
from agentrag.kb.writer import Writer
from agentrag.stores.filters import FilterLike
from agentrag.types import Chunk, Passage

if TYPE_CHECKING:
    from agentrag.embed.base import Embedder
    from agentrag.ingest.loaders import Document
    from agentrag.retrieve.bm25 import BM25Index
    from agentrag.retrieve.fusion import Normalization
    from agentrag.settings import KBSettings, RetrievalSettings, Settings
    from agentrag.stores.base import VectorStore

__all__ = ["KnowledgeBase"]

log = logging.getLogger(__name__)


class KnowledgeBase:
    """A named collection of chunked, embedded documents with hybrid (BM25 + dense) search.

    Open one with :meth:`open`. Opening never repairs, rebuilds vectors or embeds documents:
    an interrupted earlier write is rolled back by the next write (ingest, sync, delete) or by
    :meth:`recover`; search reads committed chunks only, so it is right meanwhile. Searching
    is safe from many tasks and threads at once, and picks up what other processes publish;
    writing takes the knowledge base's writer lock.

    Args:
        name: Knowledge base name.
        directory: Its folder (manifest, BM25 index, embedded stores).
        store: The vector store.
        embedder: The embedder (must be the one the knowledge base was built with).
        kb_settings: Chunking and ingestion settings.
        retrieval: Search defaults.
        store_factory: Opens ``store`` again (to see other processes' writes in an embedded
            store); ``None`` when the caller passed its own store.
    """

    def __init__(
        self,
        *,
        name: str,
        directory: Path,
        store: VectorStore,
        embedder: Embedder,
        kb_settings: KBSettings,
        retrieval: RetrievalSettings,
        store_factory: Callable[[], VectorStore] | None = None,
    ) -> None:
        self.name = name
        self.directory = directory
        self.embedder = embedder
        self.kb_settings = kb_settings
        self.retrieval = retrieval
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.manifest = Manifest(directory / MANIFEST)
        except (OSError, sqlite3.OperationalError) as exc:
            raise ConfigError(
                f"cannot open knowledge base {name!r} in {directory}: {exc}",
                hint="set data_dir in the config file (or AGENTRAG_DATA_DIR) to a writable folder",
            ) from exc
        self._closed = False
        self._check_embedder()
        self._stores = StoreHandle(store, store_factory, self.manifest.version)
        self.sidecar = BM25Sidecar(directory / "bm25", self.manifest, retrieval.bm25)
        self.writer = Writer(
            name=name,
            directory=directory,
            manifest=self.manifest,
            stores=self._stores,
            sidecar=self.sidecar,
            embedder=embedder,
            kb_settings=kb_settings,
        )
        self.searcher = Searcher(
            name=name,
            manifest=self.manifest,
            stores=self._stores,
            sidecar=self.sidecar,
            embedder=embedder,
            retrieval=retrieval,
            may_rebuild=self._may_rebuild_bm25,
            may_reload_store=lambda: not self.writer.active,
        )

    def _may_rebuild_bm25(self, build: Callable[[], BM25Index]) -> BM25Index | None:
        # A stale or missing BM25 index (a writer died before publishing, or the BM25 settings
        # changed) is rebuilt from the manifest -- text only, nothing embedded -- when no one
        # writes; the lock is held for the rebuild so no writer publishes beside it.
        if self.writer.active:
            return None
        lock = WriterLock(self.directory / "write.lock")
        if not lock.try_acquire():
            return None
        try:
            return build()
        finally:
            lock.release()

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        settings: Settings,
        name: str | None = None,
        *,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
        create: bool = True,
    ) -> KnowledgeBase:
        """Open (or create) the knowledge base ``name`` as ``settings`` describe it.

        Args:
            settings: Settings (data directory, ``[kb]``, ``[retrieval]``, ``[embedder]``).
            name: Knowledge base name (default ``settings.kb.default_name``).
            embedder: Use this embedder instead of the one ``settings.embedder`` describes.
            store: Use this vector store instead of the one ``settings.kb.store`` describes.
            create: If False, raise :class:`~agentrag.errors.KBNotFoundError` when it does not exist.

        Example:
            >>> kb = KnowledgeBase.open(Settings.load(), "notes")  # doctest: +SKIP
        """
        if name is not None and not isinstance(name, str):
            raise StoreError(
                f"knowledge base name must be a string, not {type(name).__name__}", hint="e.g. 'notes'"
            )
        if not isinstance(create, bool):
            raise StoreError(f"create must be True or False, not {create!r}")
        name = name or settings.kb.default_name
        directory = settings.kb_dir(name)
        if not create and not (directory / MANIFEST).exists():
            raise KBNotFoundError(f"no knowledge base named {name!r} under {settings.data_dir}")
        _check_directory(directory, settings.data_dir, writable=create)
        if embedder is None:
            from agentrag.embed import embedder_from_settings

            embedder = embedder_from_settings(settings)
        factory: Callable[[], VectorStore] | None = None
        if store is None:
            from agentrag.stores import open_store

            cfg = settings.kb.store

            def factory() -> VectorStore:
                return open_store(cfg, name, directory)

            store = factory()
        return cls(
            name=name,
            directory=directory,
            store=store,
            embedder=embedder,
            kb_settings=settings.kb,
            retrieval=settings.retrieval,
            store_factory=factory,
        )

    @staticmethod
    def list_names(settings: Settings) -> list[str]:
        """Names of the knowledge bases under ``settings.data_dir``."""
        root = settings.data_dir / "kb"
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / MANIFEST).exists())

    @staticmethod
    def delete(settings: Settings, name: str) -> None:
        """Delete a knowledge base: its store collection and its folder.

        Raises:
            KBNotFoundError: There is no such knowledge base.
            KBBusyError: Another process is writing to it.
        """
        directory = settings.kb_dir(name)
        if not (directory / MANIFEST).exists():
            raise KBNotFoundError(f"no knowledge base named {name!r} under {settings.data_dir}")
        lock = WriterLock(directory / "write.lock")
        if not lock.try_acquire():
            raise KBBusyError(f"knowledge base {name!r} is being written by another process")
        try:
            from agentrag.stores import open_store

            open_store(settings.kb.store, name, directory).destroy()
            shutil.rmtree(directory)
        finally:
            lock.release()

    def _check_embedder(self) -> None:
        recorded = self.manifest.get_meta("embedder")
        if recorded is not None:
            from agentrag.embed.fingerprint import check_embedder_name

            check_embedder_name(recorded, self.embedder.name, kb=self.name)

    # -- parts ------------------------------------------------------------------------------

    @property
    def store(self) -> VectorStore:
        """The vector store (reopened when another process publishes; do not keep it)."""
        return self._stores.store

    @property
    def _bm25(self) -> BM25Index | None:
        # For bench/retrieval.py (which times the BM25 side alone): the index loaded now.
        return self.sidecar.index

    @property
    def recovered(self) -> int:
        """Documents rolled back from an interrupted write and not yet reported."""
        return self.writer.recovered

    @property
    def write_step(self) -> int:
        """Vectors per store call inside a batch (crash points sit between calls)."""
        return self.writer.write_step

    @write_step.setter
    def write_step(self, value: int) -> None:
        self.writer.write_step = value

    @property
    def chunker(self) -> Any:
        """The chunker (built on first use: it needs the embedding model's token limit)."""
        return self.writer.chunker

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        with self.writer.writing():
            yield

    # -- writing ------------------------------------------------------------------------------

    def recover(self) -> int:
        """Roll back what an interrupted write left, repair the store, publish BM25.

        Every write does this first; call it to repair without writing. Returns the number
        of documents rolled back.

        Raises:
            KBBusyError: Another process is writing to this knowledge base.
        """
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        return self.writer.recover()

    def repair(self) -> tuple[int, int]:
        """Make the store hold exactly the manifest's live chunks (writer lock held)."""
        return self.writer.repair()

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        prune: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """Add files and folders; re-ingesting unchanged content does nothing.

        Args:
            paths: Files and directories (see :func:`agentrag.ingest.loaders.load_paths`).
            include: Globs files must match (default ``[kb] include``).
            exclude: Globs of files or folders to leave out (default ``[kb] exclude``).
            prune: Also remove documents under these paths whose files no longer exist (or are
                no longer selected): what ``sync`` does.
            progress: Called with an :class:`IngestProgress` as work advances.

        Returns:
            What was added, replaced, left unchanged, removed and skipped (with reasons).

        Raises:
            KBBusyError: Another process is writing to this knowledge base.

        Example:
            >>> report = kb.ingest(["notes/", "paper.pdf"], exclude=["drafts"])  # doctest: +SKIP
            >>> report.added, report.unchanged, [s.reason for s in report.skipped]  # doctest: +SKIP
        """
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        if isinstance(paths, str | Path):
            paths = [paths]  # one path, not its characters
        paths = list(paths)
        for p in paths:
            if not isinstance(p, str | Path):
                raise IngestError(
                    f"paths must be file or folder paths, not {type(p).__name__}",
                    hint='e.g. kb.ingest(["docs/"])',
                )
        for label, globs in (("include", include), ("exclude", exclude)):
            if globs is not None and (isinstance(globs, str) or not all(isinstance(g, str) for g in globs)):
                raise IngestError(
                    f"{label} must be a list of glob strings, not {globs!r}", hint='e.g. ["*.md"]'
                )
        if progress is not None and not callable(progress):
            raise IngestError("progress must be a callable taking an IngestProgress")
        return self.writer.ingest(paths, include=include, exclude=exclude, prune=prune, progress=progress)

    async def aingest(
        self,
        paths: Iterable[str | Path],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        prune: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """:meth:`ingest` in a worker thread (it is CPU- and disk-bound)."""
        return await asyncio.to_thread(
            self.ingest, list(paths), include=include, exclude=exclude, prune=prune, progress=progress
        )

    def sync(self, *, progress: Callable[[IngestProgress], None] | None = None) -> IngestReport:
        """Re-read every path ingested before and make the knowledge base match it.

        Adds new files, replaces changed ones, removes documents whose files are gone, and
        repairs the store against the manifest.

        Example:
            >>> KnowledgeBase.open(Settings.load(), "notes").sync().removed  # doctest: +SKIP
            2
        """
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        return self.writer.sync(progress=progress)

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        """Add already-loaded documents (no files involved; nothing is pruned)."""
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        from agentrag.ingest.loaders import Document

        given: object = documents  # callers without type checking pass anything
        if isinstance(given, str | bytes | Document):
            raise IngestError(
                "documents must be an iterable of Document objects", hint="e.g. kb.ingest_documents([doc])"
            )

        def checked() -> Iterator[Document]:
            for doc in documents:
                if not isinstance(doc, Document):
                    raise IngestError(
                        f"documents must be Document objects, not {type(doc).__name__}",
                        hint="build them with agentrag.ingest.loaders.Document(source=..., text=...)",
                    )
                yield doc

        return self.writer.ingest_documents(checked())

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Remove documents by source (a file path removes its JSONL rows too). Returns how many."""
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        if isinstance(sources, str) or not all(isinstance(x, str) for x in sources):
            raise StoreError("sources must be a list of source strings", hint='e.g. ["/abs/path/file.md"]')
        return self.writer.delete_sources(sources)

    # -- search -----------------------------------------------------------------------------

    async def asearch(
        self,
        query: str,
        k: int | None = None,
        mode: SearchMode | None = None,
        filters: FilterLike | None = None,
        *,
        fusion: Literal["rrf", "convex"] | None = None,
        alpha: float | None = None,
        candidates: int | None = None,
        normalization: Normalization | None = None,
    ) -> list[Passage]:
        """Search the knowledge base.

        Args:
            query: The query text.
            k: Passages to return (default ``[retrieval] k``).
            mode: ``hybrid`` (BM25 and dense, fused), ``bm25`` or ``dense`` (default ``[retrieval] mode``).
            filters: Metadata filter (:mod:`agentrag.stores.filters`), or ``{"field": value}``;
                applied on both sides. ``source``, ``doc_id`` and ``title`` are always there.
            fusion: ``rrf`` or ``convex`` (default ``[retrieval] fusion``).
            alpha: Convex-combination weight of the dense side (default ``[retrieval] alpha``).
            candidates: Hits taken from each side before fusion (default ``[retrieval] candidates``).
            normalization: Score normalisation of the convex combination (default
                ``[retrieval] normalization``).

        Returns:
            Passages, best first, with ``scores`` per stage (``bm25``, ``dense``, and ``rrf`` or
            ``convex``) and ``score`` the one they are ordered by.

        Example:
            >>> hits = await kb.asearch("vitamin D", k=5, filters={"lang": "en"})  # doctest: +SKIP
        """
        if self._closed:
            raise RetrievalError(f"knowledge base {self.name!r} is closed")
        cfg = self.retrieval
        if not isinstance(query, str):
            raise RetrievalError(
                f"query must be a string, not {type(query).__name__}", hint='e.g. kb.search("vitamin D")'
            )
        k = cfg.k if k is None else _positive_int("k", k)
        if candidates is not None:
            candidates = _positive_int("candidates", candidates)
        if mode is not None and mode not in ("hybrid", "bm25", "dense"):
            raise RetrievalError(f"unknown search mode {mode!r}", hint="use hybrid, bm25 or dense")
        if fusion is not None and fusion not in ("rrf", "convex"):
            raise RetrievalError(f"unknown fusion {fusion!r}", hint="use rrf or convex")
        if alpha is not None and (
            isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0.0 <= alpha <= 1.0
        ):
            raise RetrievalError(f"alpha must be a number in [0, 1], not {alpha!r}", hint="e.g. alpha=0.5")
        return await self.searcher.asearch(
            query,
            k,
            mode or cfg.mode,
            filters,
            fusion=fusion,
            alpha=alpha,
            candidates=candidates,
            normalization=normalization,
        )

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: SearchMode | None = None,
        filters: FilterLike | None = None,
        *,
        fusion: Literal["rrf", "convex"] | None = None,
        alpha: float | None = None,
        candidates: int | None = None,
        normalization: Normalization | None = None,
    ) -> list[Passage]:
        """Blocking :meth:`asearch` (not from inside agentrag's own event loop)."""
        return run_sync(
            self.asearch(
                query,
                k,
                mode,
                filters,
                fusion=fusion,
                alpha=alpha,
                candidates=candidates,
                normalization=normalization,
            )
        )

    def as_retriever(self, **search_kwargs: Any) -> Any:
        """This knowledge base as a LangChain ``BaseRetriever`` (``k``, ``mode``, ``filters``, ...)."""
        from agentrag.retrieve.langchain import KBRetriever

        return KBRetriever(kb=self, search_kwargs=search_kwargs)

    # -- reading ----------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, in that order (unknown ids are left out)."""
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise RetrievalError("ids must be a list of chunk id strings", hint='e.g. kb.get(["3f2a..."])')
        found = self.manifest.live_by_ids(list(ids))
        return [found[i] for i in ids if i in found]

    def count(self) -> int:
        """Live chunks."""
        return self.manifest.live_count()

    def stats(self) -> KBStats:
        """Sizes and health of this knowledge base."""
        counts = self.manifest.counts()
        bm25 = self.searcher.refresh()
        disk = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        with self._stores.use() as store:
            store_count = store.count()
        return KBStats(
            name=self.name,
            path=self.directory.as_posix(),
            store=store.backend,
            embedder=self.manifest.get_meta("embedder") or self.embedder.name,
            documents=counts.get("documents_committed", 0),
            chunks=counts.get("chunks_live", 0),
            store_count=store_count,
            bm25_chunks=bm25.size if bm25 is not None else 0,
            bm25_current=bm25 is not None and bm25.version == self.manifest.version,
            unsettled_documents=counts.get("documents_pending", 0) + counts.get("documents_deleting", 0),
            disk_bytes=disk,
            roots=[p for p, _, _ in self.manifest.roots()],
        )

    def index_ids(self) -> dict[str, list[str]]:
        """Chunk ids per index, sorted (``manifest``, ``store``, ``bm25``): for consistency checks."""
        live = self.manifest.live_rowids()
        manifest_ids = sorted(self.manifest.live_ids_by_rowids(live.tolist()).values())
        bm25 = self.searcher.refresh()
        bm25_rows = bm25.rowids.tolist() if bm25 is not None else []
        bm25_ids = sorted(self.manifest.live_ids_by_rowids(bm25_rows).values())
        if len(bm25_ids) != len(bm25_rows):  # an index row whose chunk is gone: report it too
            bm25_ids += [f"<missing rowid {r}>" for r in bm25_rows][: len(bm25_rows) - len(bm25_ids)]
        with self._stores.use() as store:
            store_ids = sorted(store.ids())
        return {"manifest": manifest_ids, "store": store_ids, "bm25": bm25_ids}

    def close(self) -> None:
        """Close the store and the manifest."""
        if self._closed:
            return
        self._closed = True
        self.writer.closed = True
        with contextlib.suppress(Exception):
            self._stores.store.close()
        self.manifest.close()
        self.writer.lock.release()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RetrievalError(
            f"{name} must be a whole number, not {type(value).__name__} {value!r}", hint=f"e.g. {name}=5"
        )
    if value < 1:
        raise RetrievalError(f"{name} must be at least 1, not {value}", hint=f"e.g. {name}=5")
    return value


def _check_directory(directory: Path, data_dir: Path, *, writable: bool) -> None:
    """A typed error (not a traceback) when the data directory cannot hold a knowledge base."""
    hint = "set data_dir in the config file (or AGENTRAG_DATA_DIR) to a writable folder"
    # The nearest existing ancestor decides: a file in the way, or a folder we cannot write.
    probe = directory
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(
            f"cannot use {directory} for a knowledge base: {probe} is not a folder",
            hint=hint,
            data_dir=str(data_dir),
        )
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"cannot write a knowledge base under {probe}: permission denied",
            hint=hint,
            data_dir=str(data_dir),
        )
