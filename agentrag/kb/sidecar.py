"""The BM25 sidecar: a bm25s index over the manifest's live chunks, published by version.

A writer rebuilds the index after it commits (:meth:`BM25Sidecar.rebuild`), saves it in a new
folder ``bm25/vNNN-xxxx/`` and records that folder in the manifest's ``bm25_dir``: that is the
publication. Readers call :meth:`BM25Sidecar.current` before each search; it costs one manifest
read while nothing changed, and loads the newly published folder when a writer (in this process
or another) has published one, so a long-lived reader sees other processes' ingests.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agentrag._faults import crashpoint
from agentrag.retrieve.bm25 import BM25Index, bm25_fingerprint

if TYPE_CHECKING:
    from agentrag.ingest.manifest import Manifest
    from agentrag.settings import BM25Settings

__all__ = ["BM25Sidecar", "Rebuild"]

Rebuild = Callable[[Callable[[], BM25Index]], BM25Index | None]
"""Given the sidecar's rebuild function: runs it (returning the index) if it may, else ``None``."""

log = logging.getLogger(__name__)


class BM25Sidecar:
    """The BM25 index of one knowledge base, kept in step with the manifest's version.

    Args:
        folder: ``<kb>/bm25``.
        manifest: The knowledge base's manifest (version and ``bm25_dir`` live there).
        cfg: BM25 settings (tokenizer, stemmer, parameters).
    """

    def __init__(self, folder: Path, manifest: Manifest, cfg: BM25Settings) -> None:
        self.folder = folder
        self.manifest = manifest
        self.cfg = cfg
        self.fingerprint = bm25_fingerprint(cfg)
        self._index: BM25Index | None = None
        self._loaded_dir: str | None = None
        self._lock = threading.RLock()

    @property
    def index(self) -> BM25Index | None:
        """The index loaded now (may lag the manifest: see :meth:`current`)."""
        return self._index

    def _fresh(self, index: BM25Index | None, version: int) -> bool:
        return index is not None and index.version == version and index.fingerprint == self.fingerprint

    def current(self, *, rebuild: Rebuild | None = None) -> BM25Index | None:
        """The newest usable index: reloads a newly published one; rebuilds if allowed.

        Args:
            rebuild: Called when no published index matches the manifest's version (a writer
                died before publishing, or the BM25 settings changed) with :meth:`rebuild`; it
                runs it if it may write (e.g. it holds or takes the writer lock) and returns the
                new index, or returns ``None``: then the newest published index is used,
                stale or not.
        """
        version = self.manifest.version
        current = self._index
        if self._fresh(current, version):
            return current
        with self._lock:
            current = self._index
            if self._fresh(current, version):
                return current
            name = self.manifest.get_meta("bm25_dir")
            if name and name != self._loaded_dir:
                loaded = self._load(name)
                if loaded is not None:
                    current = loaded
                    if self._fresh(loaded, version):
                        return loaded
            if rebuild is not None:
                built = rebuild(self.rebuild)
                if built is not None:
                    return built
            return current

    def _load(self, name: str) -> BM25Index | None:
        folder = self.folder / name
        try:
            meta = BM25Index.read_meta(folder)
            if meta["fingerprint"] != self.fingerprint and self._index is not None:
                return None  # built with other settings: keep what we have
            index = BM25Index.load(folder, self.cfg)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("BM25 index %s is unreadable (%s)", folder, exc)
            return None
        self._index = index
        self._loaded_dir = name
        return index

    def rebuild(self) -> BM25Index:
        """Build the index from the manifest's live chunks and publish it (writer lock held)."""
        with self._lock:
            version = self.manifest.version
            rowids: list[int] = []
            ids: list[str] = []
            texts: list[str] = []
            for rows in self.manifest.iter_live():
                for rowid, cid, title, text in rows:
                    rowids.append(rowid)
                    ids.append(cid)
                    texts.append(f"{title}\n{text}" if self.cfg.include_title and title else text)
            index = BM25Index.build(texts, rowids, self.cfg, version=version, ids=ids)
            folder = index.save(self.folder)
            crashpoint("bm25-saved")
            self.manifest.set_meta("bm25_dir", folder.name)
            self._index = index
            self._loaded_dir = folder.name
            for old in self.folder.iterdir():
                if old != folder:
                    shutil.rmtree(old, ignore_errors=True)
            return index
