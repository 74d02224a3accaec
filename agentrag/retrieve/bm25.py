"""The BM25 sidecar: a bm25s index over a knowledge base's chunks, rebuilt whole and saved atomically.

bm25s (0.3.16) has no incremental add, so the index is rebuilt from the manifest's chunk texts
after each ingest that changed anything, written to a fresh folder and published with one
``rename`` (a reader or a crash sees the old index or the new one, never half of each). Rows
are identified by the manifest's chunk ``rowid`` (sorted ascending), so a metadata filter
becomes a weight mask through ``searchsorted``.

Scoring goes through ``BM25.get_scores`` and our own top-k rather than ``BM25.retrieve``: that
gives k clamped to the corpus, no zero-score padding (``retrieve`` pads with score-0 hits and
returns arbitrary documents for an out-of-vocabulary query), and filters as a mask.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag.errors import RetrievalError

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from agentrag.settings import BM25Settings

__all__ = ["BM25Index", "bm25_fingerprint"]

log = logging.getLogger(__name__)

_META = "agentrag-bm25.json"
_ROWIDS = "rowids.npy"


def bm25_fingerprint(cfg: BM25Settings) -> str:
    """What an index was built with; a different one means rebuild."""
    import bm25s

    return json.dumps(
        {**cfg.model_dump(), "bm25s": getattr(bm25s, "__version__", "?")},
        sort_keys=True,
    )


def _stemmer(cfg: BM25Settings) -> Any:
    if not cfg.stemmer:
        return None
    try:
        import Stemmer
    except ImportError:
        log.warning("PyStemmer is not installed: BM25 without stemming (pip install 'agentrag[stem]')")
        return None
    try:
        return Stemmer.Stemmer(cfg.stemmer)
    except KeyError as exc:
        raise RetrievalError(
            f"PyStemmer has no stemmer for {cfg.stemmer!r}",
            hint="set [retrieval.bm25] stemmer to e.g. 'english', or empty for none",
        ) from exc


@dataclass(frozen=True, kw_only=True)
class _Built:
    retriever: Any
    rowids: NDArray[np.int64]


class BM25Index:
    """An immutable bm25s index over chunk rows.

    Build with :meth:`build`, persist with :meth:`save`, reopen with :meth:`load`.

    Example:
        >>> from agentrag.settings import BM25Settings
        >>> idx = BM25Index.build(["the cat sat", "dogs bark loudly"], [1, 2], BM25Settings(), version=1)
        >>> [row for row, _ in idx.search("barking dog", k=5)]
        [2]
    """

    def __init__(self, *, built: _Built | None, cfg: BM25Settings, version: int, fingerprint: str) -> None:
        self._built = built
        self.cfg = cfg
        self.version = version
        self.fingerprint = fingerprint
        self._stem = _stemmer(cfg)

    @property
    def size(self) -> int:
        """Chunks indexed."""
        return 0 if self._built is None else len(self._built.rowids)

    @property
    def rowids(self) -> NDArray[np.int64]:
        """Manifest rowids of the indexed chunks, ascending."""
        return np.zeros(0, dtype=np.int64) if self._built is None else self._built.rowids

    def _tokenize(self, texts: Sequence[str], *, ids: bool) -> Any:
        import bm25s

        if self.cfg.analyzer == "lean":
            from agentrag.premise.lexical import lean_lexical

            texts = [lean_lexical(text) for text in texts]
        return bm25s.tokenize(
            list(texts),
            stopwords=self.cfg.stopwords or None,
            stemmer=self._stem,
            return_ids=ids,
            show_progress=False,
        )

    @classmethod
    def build(
        cls, texts: Sequence[str], rowids: Sequence[int], cfg: BM25Settings, *, version: int
    ) -> BM25Index:
        """Index ``texts`` (already joined with titles if wanted); ``rowids`` ascending."""
        import bm25s

        index = cls(built=None, cfg=cfg, version=version, fingerprint=bm25_fingerprint(cfg))
        rows = np.asarray(rowids, dtype=np.int64)
        if len(rows) != len(texts):
            raise ValueError("texts and rowids differ in length")
        if len(rows) and np.any(np.diff(rows) <= 0):
            raise ValueError("rowids must be strictly ascending")
        if len(rows) == 0:
            return index
        t0 = time.perf_counter()
        tokens = index._tokenize(texts, ids=True)
        retriever = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.method)
        retriever.index(tokens, show_progress=False)
        index._built = _Built(retriever=retriever, rowids=rows)
        log.info("built a BM25 index over %d chunks in %.2fs", len(rows), time.perf_counter() - t0)
        return index

    def save(self, parent: Path) -> Path:
        """Write the index to a new folder under ``parent`` and return it (atomic: temp + rename)."""
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".tmp-"))
        try:
            if self._built is not None:
                self._built.retriever.save(str(tmp), show_progress=False)
            np.save(tmp / _ROWIDS, self.rowids)
            (tmp / _META).write_text(
                json.dumps({"version": self.version, "fingerprint": self.fingerprint, "size": self.size})
            )
            for file in tmp.iterdir():
                with file.open("rb") as handle:
                    os.fsync(handle.fileno())
            final = parent / f"v{self.version:08d}-{uuid.uuid4().hex[:8]}"
            os.rename(tmp, final)
            _fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    @classmethod
    def load(cls, folder: Path, cfg: BM25Settings) -> BM25Index:
        """Open an index written by :meth:`save`."""
        import bm25s

        meta = json.loads((folder / _META).read_text())
        rowids = np.load(folder / _ROWIDS)
        index = cls(built=None, cfg=cfg, version=int(meta["version"]), fingerprint=str(meta["fingerprint"]))
        if len(rowids):
            retriever = bm25s.BM25.load(str(folder), load_corpus=False)
            index._built = _Built(retriever=retriever, rowids=rowids.astype(np.int64))
        return index

    @staticmethod
    def read_meta(folder: Path) -> dict[str, Any]:
        """The version/fingerprint record of a saved index (raises OSError/ValueError if broken)."""
        data: dict[str, Any] = json.loads((folder / _META).read_text())
        return data

    def query_tokens(self, query: str) -> list[str]:
        """The query's tokens after lower-casing, stopwords and stemming."""
        tokens: list[list[str]] = self._tokenize([query], ids=False)
        return tokens[0] if tokens else []

    def mask_for(self, allowed_rowids: NDArray[np.int64]) -> NDArray[np.float32]:
        """A 0/1 weight per indexed chunk: 1 for the allowed rowids."""
        rows = self.rowids
        mask = np.zeros(len(rows), dtype=np.float32)
        if len(rows) == 0 or len(allowed_rowids) == 0:
            return mask
        allowed = np.asarray(allowed_rowids, dtype=np.int64)
        pos = np.searchsorted(rows, allowed)
        ok = pos < len(rows)
        ok[ok] = rows[pos[ok]] == allowed[ok]
        mask[pos[ok]] = 1.0
        return mask

    def search(
        self, query: str, k: int, *, mask: NDArray[np.float32] | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` ``(rowid, score)`` with score > 0, best first.

        Args:
            query: Raw query text.
            k: Most hits (clamped to the corpus size).
            mask: Optional 0/1 weight per indexed chunk (see :meth:`mask_for`).
        """
        built = self._built
        if built is None or k <= 0:
            return []
        retriever = built.retriever
        ids = retriever.get_tokens_ids(self.query_tokens(query))
        if not ids:
            return []  # nothing in the vocabulary: no lexical evidence at all
        scores = retriever.get_scores_from_ids(ids)
        if mask is not None:
            scores = scores * mask
        positive = int(np.count_nonzero(scores > 0))
        k = min(k, positive)
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(built.rowids[i]), float(scores[i])) for i in top if scores[i] > 0]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
