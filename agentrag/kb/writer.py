"""The write path of a knowledge base: locking, recovery, chunk planning, embed and write.

Every write goes through :class:`Writer`: documents are chunked, embedded, and written with the
manifest's two-phase protocol (:mod:`agentrag.ingest.manifest`), so a process killed at any
moment leaves a state that the next writer repairs, and a rerun completes. Embedding batch
*i + 1* overlaps the store/manifest write of batch *i* (one writer thread). After a write the
BM25 sidecar is rebuilt and published (:mod:`agentrag.kb.sidecar`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agentrag._faults import crashpoint
from agentrag.errors import IngestError, KBBusyError, StoreError
from agentrag.ingest.chunking import TokenChunker, content_hash, doc_id
from agentrag.ingest.loaders import MISSING, Document, Skipped, expand_paths, load_file, source_name
from agentrag.ingest.manifest import DocRow, store_metadata
from agentrag.kb.lock import WriterLock
from agentrag.kb.models import IngestProgress, IngestReport
from agentrag.stores.base import VectorRecord
from agentrag.types import Chunk

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.embed.base import Embedder
    from agentrag.ingest.manifest import Manifest
    from agentrag.kb.searcher import StoreHandle
    from agentrag.kb.sidecar import BM25Sidecar
    from agentrag.retrieve.bm25 import BM25Index
    from agentrag.settings import KBSettings
    from agentrag.stores.base import VectorStore

__all__ = ["Writer"]

log = logging.getLogger(__name__)


def _yes(build: Callable[[], BM25Index]) -> BM25Index:
    return build()  # the writer holds the lock


@dataclass(frozen=True, kw_only=True, slots=True)
class _Planned:
    doc: Document
    chash: str
    chunks: list[Chunk]
    replaced: bool


class Writer:
    """Writes to one knowledge base (ingest, sync, delete) under its writer lock.

    Args:
        name: Knowledge base name.
        directory: Its folder.
        manifest: Its manifest.
        stores: The vector store handle (shared with the searcher).
        sidecar: The BM25 sidecar (rebuilt and published after each write).
        embedder: The embedder.
        kb_settings: Chunking and ingestion settings.
    """

    def __init__(
        self,
        *,
        name: str,
        directory: Path,
        manifest: Manifest,
        stores: StoreHandle,
        sidecar: BM25Sidecar,
        embedder: Embedder,
        kb_settings: KBSettings,
    ) -> None:
        self.name = name
        self.directory = directory
        self.manifest = manifest
        self.stores = stores
        self.sidecar = sidecar
        self.embedder = embedder
        self.kb_settings = kb_settings
        self.lock = WriterLock(directory / "write.lock")
        self._write_mutex = threading.Lock()
        self._chunker: TokenChunker | None = None
        self.closed = False
        self.active = False
        """Whether a write runs in this process now (the store is not reopened meanwhile)."""
        self.write_step = 512
        """Vectors per store call inside a batch (crash points sit between calls)."""
        self._seen: set[str] = set()
        self.recovered = 0
        """Documents rolled back since the last report (reported by the next ingest)."""

    @property
    def store(self) -> VectorStore:
        """The vector store."""
        return self.stores.store

    def recover(self) -> int:
        """Take the writer lock, roll back unsettled documents and repair the store.

        Returns:
            Documents rolled back.

        Raises:
            KBBusyError: Another process is writing.
        """
        before = self.recovered
        with self.writing():
            self.sidecar.current(rebuild=_yes)
        return self.recovered - before

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        if self.closed:
            raise StoreError(f"knowledge base {self.name!r} is closed")
        with self._write_mutex:
            if not self.lock.try_acquire():
                raise KBBusyError(
                    f"knowledge base {self.name!r} is being written by another process",
                    hint="wait for the other ingest/sync to finish, then run this again",
                )
            self.active = True
            try:
                # Another process may have written since this handle opened the store.
                self.stores.reload(self.manifest.version)
                self.recovered += self._recover()
                yield
            finally:
                # Our own writes are visible to our own store handle.
                self.stores.version = self.manifest.version
                self.active = False
                self.lock.release()

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
        # Embed in steps so progress moves while the slow part runs; a step is many model
        # batches (at least 128 texts), so the embedder can overlap them (OpenVINO's async
        # queue) and the cache is asked once per step, not once per forward pass.
        step = max(128, int(getattr(self.embedder, "batch_size", 64)))
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
        """The write path of :meth:`agentrag.kb.KnowledgeBase.ingest` (documented there)."""
        inc = list(include if include is not None else self.kb_settings.include)
        exc = list(exclude if exclude is not None else self.kb_settings.exclude)
        named = [Path(p).expanduser() for p in paths]
        missing = [source_name(p) for p in named if not os.path.lexists(p)]
        specs = [(_absolute(p), inc, exc) for p in named]
        with self.writing():
            for path, i, e in specs:
                # A root whose name is not UTF-8 cannot be stored as text and found again by
                # sync (which would then prune it as gone): such a root is ingested, not kept.
                if (path.is_dir() or path.is_file()) and source_name(path) == str(path):
                    self.manifest.add_root(path.as_posix(), i, e)
            report = self._run(specs, prune=prune, progress=progress)
            report.missing = missing
            return report

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
        with self.writing():
            self.repair()
            specs = [(Path(p), i, e) for p, i, e in self.manifest.roots()]
            return self._run(specs, prune=True, progress=progress)

    def ingest_documents(self, documents: Iterable[Document]) -> IngestReport:
        """Add already-loaded documents (no files involved; nothing is pruned)."""
        with self.writing():
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
        self._redact(report)
        if prune:
            t0 = time.perf_counter()
            removed, chunks = self._prune(specs, report)
            report.removed += removed
            report.chunks_removed += chunks
            report.seconds += time.perf_counter() - t0
            t1 = time.perf_counter()
            self.sidecar.current(rebuild=_yes)
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
                current = source_name(path) if path is not None else "(documents)"
                file_text_bytes = 0
                for item in stream:
                    if isinstance(item, Skipped):
                        report.skipped.append(item)
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
        self.sidecar.current(rebuild=_yes)
        report.index_seconds += time.perf_counter() - t1
        report.seconds = time.perf_counter() - t0
        return report

    def _redact(self, report: IngestReport) -> None:
        """Remove what a file that is now empty, binary or unreadable had in the knowledge base.

        What a user blanks or makes unreadable must stop being served: its old chunks go,
        and its skip line says so.
        """
        keep_reasons = (MISSING, "duplicate source in this run")
        gone = {
            s.source: i
            for i, s in enumerate(report.skipped)
            if "#" not in s.source and s.reason not in keep_reasons and not s.reason.startswith("no loader")
        }
        if not gone:
            return
        doomed: dict[str, list[DocRow]] = {}
        for doc in self.manifest.documents():
            file = doc.source.split("#", 1)[0]
            if file in gone and doc.source not in self._seen:
                doomed.setdefault(file, []).append(doc)
        if not doomed:
            return
        docs = [d for group in doomed.values() for d in group]
        ids = self.manifest.prepare_delete([d.doc_id for d in docs])
        crashpoint("after-prepare-delete")
        self.store.delete(ids)
        self.store.flush()
        self.manifest.commit_delete([d.doc_id for d in docs])
        for file, group in doomed.items():
            i = gone[file]
            old = report.skipped[i]
            report.skipped[i] = Skipped(
                source=old.source,
                reason=f"{old.reason}; its earlier {len(group)} document(s) were removed from the index",
            )
        report.removed += len(docs)
        report.chunks_removed += len(ids)
        self.sidecar.current(rebuild=_yes)
        log.info("removed %d document(s) whose files became empty, binary or unreadable", len(docs))

    def _prune(
        self, specs: Sequence[tuple[Path, list[str], list[str]]], report: IngestReport
    ) -> tuple[int, int]:
        roots = [(source_name(p), p.is_dir() or not p.exists()) for p, _, _ in specs]
        doomed = []
        for doc in self.manifest.documents():
            file = doc.source.split("#", 1)[0]
            under = any(
                file == root or (is_dir and file.startswith(root.rstrip("/") + "/")) for root, is_dir in roots
            )
            if under and doc.source not in self._seen:
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
        with self.writing():
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
                self.sidecar.current(rebuild=_yes)
            return len(doomed)


def _records(chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> list[VectorRecord]:
    return [
        VectorRecord(id=c.id, vector=vectors[i], text=c.text, metadata=store_metadata(c))
        for i, c in enumerate(chunks)
    ]


def _absolute(path: Path) -> Path:
    """``path`` made absolute, symlinks resolved where that works (never raises)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Path(os.path.abspath(path))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
