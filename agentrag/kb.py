"""The knowledge base: one write path into a vector store and a BM25 sidecar, and hybrid search.

A knowledge base lives in ``settings.data_dir/kb/<name>/``::

    manifest.sqlite   source of truth: documents, chunks (text, span, metadata), state
    bm25/vNNN-xxxx/   the current bm25s index (rebuilt from the manifest, published by rename)
    chroma/           the vectors (embedded Chroma; other backends: see ``[kb.store]``)
    write.lock        one writer at a time (flock; released by the OS if the writer dies)

Every write goes through :class:`KnowledgeBase`: documents are chunked, embedded, and written
with the manifest's two-phase protocol (:mod:`agentrag.ingest.manifest`), so a process killed
at any moment leaves a state that the next open repairs, and a rerun completes. Search reads
committed chunks only.

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

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentrag._async import run_sync
from agentrag._faults import crashpoint
from agentrag.errors import IngestError, KBBusyError, KBNotFoundError, RetrievalError, StoreError
from agentrag.ingest.chunking import TokenChunker, content_hash, doc_id
from agentrag.ingest.loaders import Document, Skipped, expand_paths, load_file
from agentrag.ingest.manifest import Manifest, store_metadata
from agentrag.retrieve.bm25 import BM25Index, bm25_fingerprint
from agentrag.retrieve.fusion import convex, rrf
from agentrag.stores.base import VectorRecord
from agentrag.stores.filters import FilterLike, to_filter
from agentrag.types import Chunk, Passage

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.embed.base import Embedder
    from agentrag.settings import KBSettings, RetrievalSettings, Settings
    from agentrag.stores.base import VectorStore
    from agentrag.stores.filters import Filter

__all__ = ["IngestProgress", "IngestReport", "KBStats", "KnowledgeBase", "SearchMode"]

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "bm25", "dense"]
MANIFEST = "manifest.sqlite"
_MASK_CACHE = 32


class IngestReport(BaseModel):
    """What one ingest (or sync) did."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kb: str
    """Knowledge base name."""

    added: int = 0
    """Documents new to the knowledge base."""

    replaced: int = 0
    """Documents whose content changed (old chunks replaced)."""

    unchanged: int = 0
    """Documents already present with the same content (nothing done)."""

    removed: int = 0
    """Documents removed because their source is gone (sync / prune)."""

    skipped: list[Skipped] = Field(default_factory=list)
    """Files or rows not loaded, with the reason."""

    chunks_added: int = 0
    """Chunks written to the store."""

    chunks_removed: int = 0
    """Chunks deleted from the store."""

    recovered: int = 0
    """Documents rolled back from an interrupted earlier write (re-added by this run if seen)."""

    seconds: float = 0.0
    """Wall time."""

    embed_seconds: float = 0.0
    """Time spent embedding."""

    index_seconds: float = 0.0
    """Time spent rebuilding and saving the BM25 index."""


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestProgress:
    """A progress snapshot, passed to the ``progress`` callback of :meth:`KnowledgeBase.ingest`."""

    files_done: int
    """Files finished."""

    files_total: int
    """Files to read."""

    bytes_done: int
    """Bytes of input finished (approximate inside a file)."""

    bytes_total: int
    """Bytes of input in all."""

    documents: int
    """Documents seen so far."""

    chunks_embedded: int
    """Chunks embedded so far."""

    embed_seconds: float
    """Time spent embedding so far."""

    current: str
    """The file being read."""


class KBStats(BaseModel):
    """A knowledge base's size and health."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Knowledge base name."""

    path: str
    """Its folder."""

    store: str
    """Vector store backend."""

    embedder: str
    """Embedding model it was built with."""

    documents: int
    """Committed documents."""

    chunks: int
    """Live chunks (manifest)."""

    store_count: int
    """Vectors in the store (equals ``chunks`` when healthy)."""

    bm25_chunks: int
    """Chunks in the BM25 index (equals ``chunks`` when current)."""

    bm25_current: bool
    """Whether the BM25 index reflects the latest manifest version."""

    unsettled_documents: int
    """Documents left mid-write by an interrupted ingest (repaired by the next writer)."""

    disk_bytes: int
    """Bytes on disk under its folder."""

    roots: list[str] = Field(default_factory=list)
    """Paths that `sync` re-reads."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Planned:
    doc: Document
    chash: str
    chunks: list[Chunk]
    replaced: bool


class _WriterLock:
    """An exclusive ``flock`` on ``write.lock`` (the OS drops it when the holder dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class KnowledgeBase:
    """A named collection of chunked, embedded documents with hybrid (BM25 + dense) search.

    Open one with :meth:`open`. Searching is safe from many tasks and threads at once;
    writing (ingest, sync, delete) takes the knowledge base's writer lock.

    Args:
        name: Knowledge base name.
        directory: Its folder (manifest, BM25 index, embedded stores).
        store: The vector store.
        embedder: The embedder (must be the one the knowledge base was built with).
        kb_settings: Chunking and ingestion settings.
        retrieval: Search defaults.
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
    ) -> None:
        self.name = name
        self.directory = directory
        self.store = store
        self.embedder = embedder
        self.kb_settings = kb_settings
        self.retrieval = retrieval
        directory.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(directory / MANIFEST)
        self._lock = _WriterLock(directory / "write.lock")
        self._write_mutex = threading.Lock()
        self._bm25: BM25Index | None = None
        self._bm25_lock = threading.Lock()
        self._masks: OrderedDict[tuple[str, int, int], NDArray[np.float32]] = OrderedDict()
        self._mask_lock = threading.Lock()
        self._chunker: TokenChunker | None = None
        self._closed = False
        self.write_step = 512
        """Vectors per store call inside a batch (crash points sit between calls)."""
        self._seen: set[str] = set()
        self._protected: set[str] = set()
        self.recovered = 0
        self._check_embedder()
        # Repair what an interrupted writer left, if no writer is running now.
        if self._lock.try_acquire():
            try:
                self.recovered = self._recover()
                self._ensure_bm25(rebuild_allowed=True)
            finally:
                self._lock.release()
        else:
            log.info("knowledge base %s is being written by another process; opening read-only view", name)
            self._ensure_bm25(rebuild_allowed=False)

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
        name = name or settings.kb.default_name
        directory = settings.kb_dir(name)
        if not create and not (directory / MANIFEST).exists():
            raise KBNotFoundError(f"no knowledge base named {name!r} under {settings.data_dir}")
        if embedder is None:
            from agentrag.embed import embedder_from_settings

            embedder = embedder_from_settings(settings)
        if store is None:
            from agentrag.stores import open_store

            store = open_store(settings.kb.store, name, directory)
        return cls(
            name=name,
            directory=directory,
            store=store,
            embedder=embedder,
            kb_settings=settings.kb,
            retrieval=settings.retrieval,
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
        lock = _WriterLock(directory / "write.lock")
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

    # -- writer side --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        with self._write_mutex:
            if not self._lock.try_acquire():
                raise KBBusyError(f"knowledge base {self.name!r} is being written by another process")
            try:
                self.recovered += self._recover()
                yield
            finally:
                self._lock.release()

    def _recover(self) -> int:
        """Roll back documents an interrupted write left unsettled; repair the store if needed."""
        docs, ids = self.manifest.unsettled()
        if docs:
            log.warning(
                "knowledge base %s: rolling back %d document(s) left unfinished by an interrupted write",
                self.name,
                len(docs),
            )
            self.store.delete(ids)
            self.store.flush()
            self.manifest.commit_delete(docs)
        if self.store.count() != self.manifest.live_count():
            self.repair()
        return len(docs)

    def repair(self) -> tuple[int, int]:
        """Make the store hold exactly the manifest's live chunks (full id comparison).

        Extra vectors are deleted; missing ones are embedded again (the embedding cache makes
        that cheap) and written. Call with the writer lock held (ingest/sync do).

        Returns:
            ``(deleted, added)``.
        """
        live = self.manifest.live_rowids()
        id_of = self.manifest.live_ids_by_rowids(live.tolist())
        want = set(id_of.values())
        have = set(self.store.ids())
        extra = sorted(have - want)
        missing = sorted(want - have)
        if extra:
            self.store.delete(extra)
        if missing:
            chunks = self.manifest.live_by_ids(missing)
            ordered = [chunks[i] for i in missing if i in chunks]
            for start in range(0, len(ordered), self.kb_settings.embed_batch):
                part = ordered[start : start + self.kb_settings.embed_batch]
                vectors = self.embedder.embed_documents([self._embed_text(c) for c in part])
                self.store.upsert(_records(part, vectors))
        if extra or missing:
            self.store.flush()
            log.warning(
                "knowledge base %s: store repaired (%d extra removed, %d missing added)",
                self.name,
                len(extra),
                len(missing),
            )
        return len(extra), len(missing)

    @property
    def chunker(self) -> TokenChunker:
        """The chunker (built on first use: it needs the embedding model's token limit)."""
        if self._chunker is None:
            cfg = self.kb_settings.chunking
            limit = self.embedder.max_tokens
            size = min(cfg.chunk_tokens or limit, limit)
            self._chunker = TokenChunker(
                self.embedder.token_spans,
                chunk_tokens=size,
                overlap_tokens=cfg.overlap_tokens,
                respect_sentences=cfg.respect_sentences,
            )
        return self._chunker

    @property
    def _fingerprint(self) -> str:
        return f"{self.chunker.fingerprint}/t{int(self.kb_settings.embed_title)}"

    def _title_budget(self, title: str) -> tuple[str, int]:
        """The title as embedded (cut to a quarter of the window) and the tokens it takes."""
        if not self.kb_settings.embed_title or not title:
            return "", 0
        spans = self.embedder.token_spans(title)
        cap = max(1, self.embedder.max_tokens // 4)
        if len(spans) > cap:
            title = title[: spans[cap - 1][1]]
        return title, min(len(spans), cap) + 1

    def _embed_text(self, chunk: Chunk) -> str:
        title, _ = self._title_budget(chunk.title)
        return f"{title}\n{chunk.text}" if title else chunk.text

    def _plan(self, doc: Document, known: dict[str, tuple[str, str]]) -> _Planned | None:
        chash = content_hash(doc, self._fingerprint)
        prev = known.get(doc.source)
        if prev is not None and prev == (chash, "committed"):
            return None
        _, reserve = self._title_budget(doc.title)
        chunks = self.chunker.chunk(doc, reserve_tokens=reserve)
        return _Planned(doc=doc, chash=chash, chunks=chunks, replaced=prev is not None)

    def _embed_batch(
        self, batch: list[_Planned], on_step: Callable[[int, int], None] | None = None
    ) -> dict[str, NDArray[np.float32]]:
        existing: set[str] = set()
        for plan in batch:
            if plan.replaced:
                existing.update(self.manifest.chunk_ids_of(doc_id(plan.doc.source)))
        todo = [c for plan in batch for c in plan.chunks if c.id not in existing]
        if not todo:
            return {}
        # Longest first, so each forward pass pads to similar lengths (the embedder cuts the
        # list into model batches in this order).
        texts = [self._embed_text(c) for c in todo]
        order = sorted(range(len(todo)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        # Embed in model-batch steps so progress moves while the slow part runs.
        step = max(1, int(getattr(self.embedder, "batch_size", 64)))
        parts = []
        for start in range(0, len(ordered), step):
            parts.append(self.embedder.embed_documents(ordered[start : start + step]))
            if on_step is not None:
                on_step(min(start + step, len(ordered)), len(ordered))
        vectors = np.concatenate(parts)
        return {todo[i].id: vectors[j] for j, i in enumerate(order)}

    def _write_batch(self, batch: list[_Planned], vectors: dict[str, NDArray[np.float32]]) -> tuple[int, int]:
        if self.manifest.get_meta("embedder") is None:
            self.manifest.set_meta("embedder", self.embedder.name)
        docs = [
            (doc_id(plan.doc.source), plan.doc.source, plan.chash, len(plan.doc.text), plan.chunks)
            for plan in batch
        ]
        to_add, to_delete = self.manifest.prepare(docs)
        crashpoint("after-prepare")
        missing = [c.id for c in to_add if c.id not in vectors]
        if missing:  # a chunk the manifest gained since embedding: cannot happen under the lock
            raise IngestError(f"{len(missing)} chunk(s) reached the store without vectors")
        for start in range(0, len(to_add), self.write_step):
            part = to_add[start : start + self.write_step]
            self.store.upsert(_records(part, np.stack([vectors[c.id] for c in part])))
            crashpoint("store-upsert")
        if to_delete:
            self.store.delete(to_delete)
        self.store.flush()
        crashpoint("after-store")
        self.manifest.commit([d[0] for d in docs])
        crashpoint("after-commit")
        return len(to_add), len(to_delete)

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
        inc = list(include if include is not None else self.kb_settings.include)
        exc = list(exclude if exclude is not None else self.kb_settings.exclude)
        specs = [(Path(p).expanduser().resolve(), inc, exc) for p in paths]
        with self._writing():
            for path, i, e in specs:
                if path.exists():
                    self.manifest.add_root(path.as_posix(), i, e)
            return self._run(specs, prune=prune, progress=progress)

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
        with self._writing():
            self.repair()
            specs = [(Path(p), i, e) for p, i, e in self.manifest.roots()]
            return self._run(specs, prune=True, progress=progress)

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        """Add already-loaded documents (no files involved; nothing is pruned)."""
        with self._writing():
            return self._run_documents([(None, documents)], progress=None, files_total=0, bytes_total=0)

    def _run(
        self,
        specs: Sequence[tuple[Path, list[str], list[str]]],
        *,
        prune: bool,
        progress: Callable[[IngestProgress], None] | None,
    ) -> IngestReport:
        files: list[Path] = []
        skipped: list[Skipped] = []
        for path, inc, exc in specs:
            for item in expand_paths([path], include=inc, exclude=exc):
                (skipped if isinstance(item, Skipped) else files).append(item)  # type: ignore[arg-type]
        sizes = {f: _size(f) for f in files}
        streams: list[tuple[Path | None, Iterable[Document | Skipped]]] = [(f, load_file(f)) for f in files]
        report = self._run_documents(
            streams, progress=progress, files_total=len(files), bytes_total=sum(sizes.values()), sizes=sizes
        )
        report.skipped[:0] = skipped
        if prune:
            t0 = time.perf_counter()
            removed, chunks = self._prune(specs, report)
            report.removed += removed
            report.chunks_removed += chunks
            report.seconds += time.perf_counter() - t0
            t1 = time.perf_counter()
            self._ensure_bm25(rebuild_allowed=True)
            report.index_seconds += time.perf_counter() - t1
        return report

    def _run_documents(
        self,
        streams: Sequence[tuple[Path | None, Iterable[Document | Skipped]]],
        *,
        progress: Callable[[IngestProgress], None] | None,
        files_total: int,
        bytes_total: int,
        sizes: dict[Path, int] | None = None,
    ) -> IngestReport:
        t0 = time.perf_counter()
        report = IngestReport(kb=self.name, recovered=self.recovered)
        self.recovered = 0
        known = self.manifest.document_hashes()
        self._seen = set()
        self._protected = set()
        batch: list[_Planned] = []
        batch_chunks = 0
        embedded = 0
        # Progress counts input bytes whose work is finished: a document's text when it is
        # embedded (or found unchanged), a file's remaining bytes (markup, JSON) when read.
        bytes_done = 0
        batch_bytes = 0
        files_done = 0
        current = ""
        pending: Future[tuple[int, int]] | None = None
        # One writer thread: the store/manifest write of batch i overlaps embedding batch i+1.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentrag-kb-write")

        def settle() -> None:
            nonlocal pending
            if pending is not None:
                added, removed = pending.result()
                report.chunks_added += added
                report.chunks_removed += removed
                pending = None

        def tick(partial_bytes: float = 0.0, partial_chunks: int = 0, partial_s: float = 0.0) -> None:
            if progress is not None:
                done = int(bytes_done + partial_bytes)
                progress(
                    IngestProgress(
                        files_done=files_done,
                        files_total=files_total,
                        bytes_done=min(done, bytes_total) if bytes_total else 0,
                        bytes_total=bytes_total,
                        documents=len(self._seen),
                        chunks_embedded=embedded + partial_chunks,
                        embed_seconds=report.embed_seconds + partial_s,
                        current=current,
                    )
                )

        def flush() -> None:
            nonlocal batch, batch_chunks, embedded, pending, bytes_done, batch_bytes
            if not batch:
                return
            te = time.perf_counter()

            def step(done: int, total: int) -> None:
                tick(batch_bytes * done / total, done, time.perf_counter() - te)

            vectors = self._embed_batch(batch, step)
            report.embed_seconds += time.perf_counter() - te
            embedded += len(vectors)
            bytes_done += batch_bytes
            settle()
            pending = pool.submit(self._write_batch, batch, vectors)
            batch, batch_chunks, batch_bytes = [], 0, 0
            tick()

        try:
            for path, stream in streams:
                current = path.as_posix() if path is not None else "(documents)"
                file_text_bytes = 0
                for item in stream:
                    if isinstance(item, Skipped):
                        report.skipped.append(item)
                        if path is not None and item.source == path.as_posix():
                            self._protected.add(item.source)  # unreadable now: keep what we had
                        continue
                    if item.source in self._seen:
                        report.skipped.append(
                            Skipped(source=item.source, reason="duplicate source in this run")
                        )
                        continue
                    self._seen.add(item.source)
                    weight = len(item.text.encode("utf-8", "replace"))
                    file_text_bytes += weight
                    plan = self._plan(item, known)
                    if plan is None:
                        report.unchanged += 1
                        bytes_done += weight
                    else:
                        batch_bytes += weight
                        if plan.replaced:
                            report.replaced += 1
                        else:
                            report.added += 1
                        batch.append(plan)
                        batch_chunks += len(plan.chunks)
                        if batch_chunks >= self.kb_settings.embed_batch:
                            flush()
                if path is not None:
                    files_done += 1
                    bytes_done += max(0, (sizes or {}).get(path, 0) - file_text_bytes)
                    tick()
            flush()
            settle()
        finally:
            pool.shutdown(wait=True)
        t1 = time.perf_counter()
        self._ensure_bm25(rebuild_allowed=True)
        report.index_seconds += time.perf_counter() - t1
        report.seconds = time.perf_counter() - t0
        return report

    def _prune(
        self, specs: Sequence[tuple[Path, list[str], list[str]]], report: IngestReport
    ) -> tuple[int, int]:
        roots = [(p.as_posix(), p.is_dir() or not p.exists()) for p, _, _ in specs]
        doomed = []
        for doc in self.manifest.documents():
            file = doc.source.split("#", 1)[0]
            under = any(
                file == root or (is_dir and file.startswith(root.rstrip("/") + "/")) for root, is_dir in roots
            )
            if under and doc.source not in self._seen and file not in self._protected:
                doomed.append(doc)
        if not doomed:
            return 0, 0
        ids = self.manifest.prepare_delete([d.doc_id for d in doomed])
        crashpoint("after-prepare-delete")
        self.store.delete(ids)
        self.store.flush()
        self.manifest.commit_delete([d.doc_id for d in doomed])
        log.info("removed %d document(s) whose files are gone", len(doomed))
        return len(doomed), len(ids)

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Remove documents by source (a file path removes its JSONL rows too). Returns how many."""
        with self._writing():
            wanted = set(sources)
            doomed = [
                d
                for d in self.manifest.documents()
                if d.source in wanted or d.source.split("#", 1)[0] in wanted
            ]
            if doomed:
                ids = self.manifest.prepare_delete([d.doc_id for d in doomed])
                self.store.delete(ids)
                self.store.flush()
                self.manifest.commit_delete([d.doc_id for d in doomed])
                self._ensure_bm25(rebuild_allowed=True)
            return len(doomed)

    # -- the BM25 sidecar -------------------------------------------------------------------

    def _bm25_folder(self) -> Path:
        return self.directory / "bm25"

    def _ensure_bm25(self, *, rebuild_allowed: bool) -> None:
        cfg = self.retrieval.bm25
        version = self.manifest.version
        fingerprint = bm25_fingerprint(cfg)
        current = self._bm25
        if current is not None and current.version == version and current.fingerprint == fingerprint:
            return
        name = self.manifest.get_meta("bm25_dir")
        folder = self._bm25_folder() / name if name else None
        if folder is not None and folder.is_dir():
            try:
                meta = BM25Index.read_meta(folder)
                if (
                    int(meta["version"]) == version and meta["fingerprint"] == fingerprint
                ) or not rebuild_allowed:
                    with self._bm25_lock:
                        self._bm25 = BM25Index.load(folder, cfg)
                    return
            except (OSError, ValueError, KeyError) as exc:
                log.warning("BM25 index %s is unreadable (%s); rebuilding", folder, exc)
        if rebuild_allowed:
            self._rebuild_bm25()

    def _rebuild_bm25(self) -> None:
        cfg = self.retrieval.bm25
        version = self.manifest.version
        rowids: list[int] = []
        texts: list[str] = []
        for rows in self.manifest.iter_live():
            for rowid, _cid, title, text in rows:
                rowids.append(rowid)
                texts.append(f"{title}\n{text}" if cfg.include_title and title else text)
        index = BM25Index.build(texts, rowids, cfg, version=version)
        folder = index.save(self._bm25_folder())
        crashpoint("bm25-saved")
        self.manifest.set_meta("bm25_dir", folder.name)
        with self._bm25_lock:
            self._bm25 = index
        for old in self._bm25_folder().iterdir():
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)

    # -- search -----------------------------------------------------------------------------

    def _bm25_hits(self, query: str, depth: int, flt: Filter | None) -> list[tuple[str, float]]:
        index = self._bm25
        if index is None or index.size == 0:
            return []
        mask = self._mask(index, flt) if flt is not None else None
        hits = index.search(query, depth, mask=mask)
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

    def _dense_hits(
        self, vector: NDArray[np.float32], depth: int, flt: Filter | None
    ) -> list[tuple[str, float]]:
        return [(h.id, h.score) for h in self.store.search(vector, depth, filters=flt)]

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

        Returns:
            Passages, best first, with ``scores`` per stage (``bm25``, ``dense``, and ``rrf`` or
            ``convex``) and ``score`` the one they are ordered by.

        Example:
            >>> hits = await kb.asearch("vitamin D", k=5, filters={"lang": "en"})  # doctest: +SKIP
        """
        if self._closed:
            raise RetrievalError(f"knowledge base {self.name!r} is closed")
        cfg = self.retrieval
        k = k or cfg.k
        mode = mode or cfg.mode
        if mode not in ("hybrid", "bm25", "dense"):
            raise RetrievalError(f"unknown search mode {mode!r}", hint="use hybrid, bm25 or dense")
        if not query.strip():
            return []
        flt = to_filter(filters)
        depth = max(candidates or cfg.candidates, k)

        async def lexical() -> list[tuple[str, float]]:
            if mode == "dense":
                return []
            return await asyncio.to_thread(self._bm25_hits, query, depth, flt)

        async def dense() -> list[tuple[str, float]]:
            if mode == "bm25":
                return []
            vector = await self.embedder.aembed_query(query)
            return await asyncio.to_thread(self._dense_hits, vector, depth, flt)

        bm25_hits, dense_hits = await asyncio.gather(lexical(), dense())
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
            fused = convex(bm25, dense_scores, alpha=a, method=cfg.normalization)
        order = sorted(fused, key=lambda d: (-fused[d], d))
        passages: list[Passage] = []
        for start in range(0, len(order), max(2 * k, 32)):
            part = order[start : start + max(2 * k, 32)]
            chunks = await asyncio.to_thread(self.manifest.live_by_ids, part)
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
    ) -> list[Passage]:
        """Blocking :meth:`asearch` (not from inside agentrag's own event loop)."""
        return run_sync(
            self.asearch(query, k, mode, filters, fusion=fusion, alpha=alpha, candidates=candidates)
        )

    def as_retriever(self, **search_kwargs: Any) -> Any:
        """This knowledge base as a LangChain ``BaseRetriever`` (``k``, ``mode``, ``filters``, ...)."""
        from agentrag.retrieve.langchain import KBRetriever

        return KBRetriever(kb=self, search_kwargs=search_kwargs)

    # -- reading ----------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """Chunks by id, in that order (unknown ids are left out)."""
        found = self.manifest.live_by_ids(list(ids))
        return [found[i] for i in ids if i in found]

    def count(self) -> int:
        """Live chunks."""
        return self.manifest.live_count()

    def stats(self) -> KBStats:
        """Sizes and health of this knowledge base."""
        counts = self.manifest.counts()
        bm25 = self._bm25
        disk = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        return KBStats(
            name=self.name,
            path=self.directory.as_posix(),
            store=self.store.backend,
            embedder=self.manifest.get_meta("embedder") or self.embedder.name,
            documents=counts.get("documents_committed", 0),
            chunks=counts.get("chunks_live", 0),
            store_count=self.store.count(),
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
        bm25 = self._bm25
        bm25_rows = bm25.rowids.tolist() if bm25 is not None else []
        bm25_ids = sorted(self.manifest.live_ids_by_rowids(bm25_rows).values())
        if len(bm25_ids) != len(bm25_rows):  # an index row whose chunk is gone: report it too
            bm25_ids += [f"<missing rowid {r}>" for r in bm25_rows][: len(bm25_rows) - len(bm25_ids)]
        return {"manifest": manifest_ids, "store": sorted(self.store.ids()), "bm25": bm25_ids}

    def close(self) -> None:
        """Close the store and the manifest."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self.store.close()
        self.manifest.close()
        self._lock.release()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _records(chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> list[VectorRecord]:
    return [
        VectorRecord(id=c.id, vector=vectors[i], text=c.text, metadata=store_metadata(c))
        for i, c in enumerate(chunks)
    ]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
