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
_IDS = "ids.npy"


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
    ids: NDArray[Any] | None = None
    """Chunk id of each row (bytes when all ASCII), or ``None`` (an index saved before ids were)."""


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

    def ids_of(self, rowids: Sequence[int]) -> list[str] | None:
        """The chunk ids of indexed ``rowids`` (each must be indexed), or ``None`` if not stored.

        A search's hits name rows; with the ids stored beside them a fresh index maps its hits
        to chunk ids without a manifest query (~0.35 ms for 100 hits).
        """
        built = self._built
        if built is None or built.ids is None:
            return None
        found = built.ids[np.searchsorted(built.rowids, np.asarray(rowids, dtype=np.int64))]
        if found.dtype.kind == "S":
            return [i.decode("ascii") for i in found.tolist()]
        return [str(i) for i in found.tolist()]

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
        cls,
        texts: Sequence[str],
        rowids: Sequence[int],
        cfg: BM25Settings,
        *,
        version: int,
        ids: Sequence[str] | None = None,
    ) -> BM25Index:
        """Index ``texts`` (already joined with titles if wanted); ``rowids`` ascending.

        ``ids``: the chunk id of each row, kept beside the index (see :meth:`ids_of`).
        """
        import bm25s

        index = cls(built=None, cfg=cfg, version=version, fingerprint=bm25_fingerprint(cfg))
        rows = np.asarray(rowids, dtype=np.int64)
        if len(rows) != len(texts):
            raise ValueError("texts and rowids differ in length")
        if len(rows) and np.any(np.diff(rows) <= 0):
            raise ValueError("rowids must be strictly ascending")
        if ids is not None and len(ids) != len(rows):
            raise ValueError("ids and rowids differ in length")
        if len(rows) == 0:
            return index
        t0 = time.perf_counter()
        tokens = index._tokenize(texts, ids=True)
        retriever = bm25s.BM25(k1=cfg.k1, b=cfg.b, method=cfg.method)
        retriever.index(tokens, show_progress=False)
        index._built = _Built(retriever=retriever, rowids=rows, ids=None if ids is None else _id_array(ids))
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
            if self._built is not None and self._built.ids is not None:
                np.save(tmp / _IDS, self._built.ids)
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
            ids_file = folder / _IDS
            # Memory-mapped: only the pages of rows that hits name are read.
            ids = np.load(ids_file, mmap_mode="r") if ids_file.exists() else None
            if ids is not None and len(ids) != len(rowids):
                raise ValueError(f"{ids_file} has {len(ids)} ids for {len(rowids)} rows")
            index._built = _Built(retriever=retriever, rowids=rowids.astype(np.int64), ids=ids)
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
        matched = _matched_rows(retriever, ids)
        if matched is None:
            # Every row may score (bm25l/bm25+ give rows without the terms a score too), or the
            # terms match much of the corpus: rank the whole score vector.
            if mask is not None:
                scores = scores * mask
            rows, row_scores = np.arange(len(scores)), scores
        else:
            rows = matched
            row_scores = scores[rows] if mask is None else scores[rows] * mask[rows]
        top = _top(rows, row_scores, k, repeats=1 if matched is None else len(ids))
        return [(int(built.rowids[i]), float(scores[i])) for i in top]


def _matched_rows(retriever: Any, token_ids: Sequence[int]) -> NDArray[Any] | None:
    """Rows holding any of the query's terms (with repeats), or ``None`` to rank every row.

    A query's terms occur in a small part of a large corpus (~2% of 1M chunks for 4 common
    words); ranking only those rows instead of the whole score vector took bm25s's side of a
    search at 1M chunks from 1.8 ms to 0.55 ms (bench/retrieval.py, clustered). The rows come
    from bm25s's own score matrix (``scores`` = CSC ``data``/``indices``/``indptr``, one column
    per term), which is how bm25s itself scores; the scores still come from bm25s.
    """
    if getattr(retriever, "nonoccurrence_array", None) is not None:
        return None
    matrix: Any = getattr(retriever, "scores", None)
    try:
        indptr, indices, num_docs = matrix["indptr"], matrix["indices"], int(matrix["num_docs"])
    except (TypeError, KeyError):  # another bm25s layout: rank every row
        return None
    spans = [(int(indptr[t]), int(indptr[t + 1])) for t in token_ids]
    if sum(end - start for start, end in spans) > num_docs // 8:
        return None
    return np.concatenate([indices[start:end] for start, end in spans])


def _top(rows: NDArray[Any], scores: NDArray[Any], k: int, repeats: int) -> NDArray[Any]:
    """The ``k`` best distinct rows with a positive score, by score and then by row.

    ``rows`` may hold a row up to ``repeats`` times (once per query term it contains), always
    with the same score. Ties are settled by row, so the answer does not depend on whether
    every row or only the matched ones were ranked.
    """
    positive = scores > 0
    if not positive.all():
        rows, scores = rows[positive], scores[positive]
    take = k * repeats
    if len(rows) > take:
        # The best k*repeats entries hold at least k distinct rows, and every row outside them
        # scores no more than any row inside: the k-th best distinct score among them is the
        # bar. Every entry at or above it (ties outside included) is a candidate.
        head = np.argpartition(-scores, take - 1)[:take]
        best = scores[head] if repeats == 1 else _distinct_scores(rows[head], scores[head])
        bar = np.partition(best, len(best) - k)[len(best) - k]
        keep = scores >= bar
        rows, scores = rows[keep], scores[keep]
    if repeats > 1:
        rows, first = np.unique(rows, return_index=True)
        scores = scores[first]
    return rows[np.lexsort((rows, -scores))[:k]]


def _distinct_scores(rows: NDArray[Any], scores: NDArray[Any]) -> NDArray[Any]:
    """One score per distinct row (a row repeats with the same score)."""
    _, first = np.unique(rows, return_index=True)
    return scores[first]


def _id_array(ids: Sequence[str]) -> NDArray[Any]:
    """Chunk ids as a fixed-width array: bytes when all are ASCII (chunk ids are hex), else text."""
    try:
        return np.array([i.encode("ascii") for i in ids], dtype=np.bytes_)
    except UnicodeEncodeError:
        return np.array(list(ids), dtype=np.str_)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
