"""The premise corpus: Lean declarations written into a knowledge base, one chunk each.

:func:`index_tree` extracts every declaration under a Lean source tree
(:func:`agentrag.premise.extract.iter_tree`) and writes it through the knowledge base's single
write path (:meth:`agentrag.kb.KnowledgeBase.ingest_documents`), so the manifest, the vector
store and the BM25 sidecar stay consistent, a killed run is repaired by the next one, and
re-indexing an unchanged tree embeds nothing.

One declaration is one document is one chunk, so a hit names exactly one declaration:

* the text is :meth:`Declaration.retrieval_text` (kind + full name, the name split into words,
  the docstring, the signature), *fitted* to the chunker's window (the embedder's token limit,
  254 word pieces for MiniLM) before it reaches the chunker. A text that does not fit is cut, not
  split: the header is kept, and the docstring and the signature share the rest (each keeps
  what it needs if the other is short; both are cut to half when both are long), so neither a
  long docstring nor a long signature crowds out the other. ``metadata["truncated"]`` says so.
* the document has no title (the text already starts with the name; a title would take window
  tokens and be embedded twice).
* the source is ``<root>/<path>#<full name>`` (a second declaration of the same name in one file
  gets ``@L<line>``), so ``kb.delete_sources([file])`` removes a file's declarations.

Example:
    >>> from agentrag.kb import KnowledgeBase
    >>> from agentrag.settings import Settings
    >>> kb = KnowledgeBase.open(Settings.load(), "mathlib")               # doctest: +SKIP
    >>> report = index_tree(kb, "/src/mathlib", include=["Mathlib/**/*.lean"])  # doctest: +SKIP
    >>> report.declarations, report.added, report.truncated               # doctest: +SKIP
    (246012, 246012, 5120)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from agentrag.ingest.loaders import Document
from agentrag.premise.extract import Declaration, ExtractionFailure, _selected, iter_tree

if TYPE_CHECKING:
    from agentrag.kb import KnowledgeBase
    from agentrag.types import MetadataValue

__all__ = [
    "DEFAULT_EXCLUDE",
    "DEFAULT_INCLUDE",
    "IndexProgress",
    "PremiseIndexReport",
    "TextFitter",
    "aindex_tree",
    "declaration_document",
    "index_tree",
]

log = logging.getLogger(__name__)

DEFAULT_INCLUDE: tuple[str, ...] = ("**/*.lean",)
"""Files indexed when no ``include`` is given: every Lean source under the root."""

DEFAULT_EXCLUDE: tuple[str, ...] = (".lake/*", "lake-packages/*", ".*")
"""Left out unless ``exclude`` is given: Lake's dependency checkouts and hidden folders (a Lean
project's ``.lake/packages`` holds whole copies of its dependencies)."""

SIGNATURE_METADATA_CHARS = 2000
"""Signatures longer than this are cut in the metadata (the text keeps what fits the window)."""

TokenSpans = Callable[[str], list[tuple[int, int]]]


class TextFitter:
    r"""Cuts a declaration's retrieval text to at most ``limit`` model tokens, never splitting it.

    Args:
        token_spans: Character spans of the embedding model's tokens (``embedder.token_spans``).
        limit: Most tokens (the knowledge base chunker's window).

    Example:
        >>> from agentrag.embed import regex_token_spans
        >>> from agentrag.premise import extract_text
        >>> src = "/-- " + "word " * 50 + "-/\ntheorem t (h : " + "a ∧ " * 40 + "b) : b := h.2\n"
        >>> d = extract_text(src)[0]
        >>> text, cut = TextFitter(regex_token_spans, 60).fit(d)
        >>> cut, len(regex_token_spans(text)) <= 60, text.splitlines()[0]
        (True, True, 'theorem t')
    """

    def __init__(self, token_spans: TokenSpans, limit: int) -> None:
        if limit < 8:
            raise ValueError("limit must be at least 8 tokens")
        self.token_spans = token_spans
        self.limit = limit

    def _count(self, text: str) -> int:
        return len(self.token_spans(text)) if text else 0

    def _cut(self, text: str, tokens: int) -> str:
        """``text`` up to the end of its ``tokens``-th token (all of it if shorter)."""
        if tokens <= 0:
            return ""
        spans = self.token_spans(text)
        if len(spans) <= tokens:
            return text
        return text[: spans[tokens - 1][1]]

    def fit(self, decl: Declaration) -> tuple[str, bool]:
        """The text to index for ``decl`` and whether it had to be cut."""
        full = decl.retrieval_text()
        if self._count(full) <= self.limit:
            return full, False
        lines = full.split("\n")
        head = "\n".join(lines[:2])
        doc, sig = decl.docstring, decl.signature
        if full != "\n".join(p for p in (head, doc, sig) if p):
            # retrieval_text() changed shape: fall back to a plain cut of the whole text.
            return self._shrink(full), True
        head = self._cut(head, self.limit // 4)  # a name is short; this guards pathological ones
        rest = self.limit - self._count(head)
        doc_n, sig_n = self._count(doc), self._count(sig)
        # Each part keeps what it needs when the other leaves room; both long: half each.
        sig_budget = min(sig_n, max(rest // 2, rest - doc_n))
        doc_budget = min(doc_n, rest - sig_budget)
        text = "\n".join(p for p in (head, self._cut(doc, doc_budget), self._cut(sig, sig_budget)) if p)
        return self._shrink(text), True

    def _shrink(self, text: str) -> str:
        # Tokens of parts joined can differ from the parts' sum (a word piece may merge across
        # a cut); trim the end until the whole fits.
        for _ in range(8):
            spans = self.token_spans(text)
            if len(spans) <= self.limit:
                return text
            text = text[: spans[self.limit - 1][1]]
        return text


def declaration_document(
    decl: Declaration, root: str, text: str, *, truncated: bool, source: str
) -> Document:
    """The knowledge-base document for one declaration.

    Args:
        decl: The declaration.
        root: The tree root (absolute, POSIX) its ``path`` is relative to.
        text: Its (fitted) retrieval text.
        truncated: Whether ``text`` was cut to fit the window.
        source: Its unique source id.
    """
    signature = decl.signature
    if len(signature) > SIGNATURE_METADATA_CHARS:
        signature = signature[: SIGNATURE_METADATA_CHARS - 1] + "…"
    metadata: dict[str, MetadataValue] = {
        "name": decl.name,
        "kind": decl.kind,
        "module": decl.module,
        "path": decl.path,
        "root": root,
        "start_line": decl.start_line,
        "decl_line": decl.decl_line,
        "end_line": decl.end_line,
        "signature": signature,
        "truncated": truncated,
    }
    return Document(source=source, text=text, metadata=metadata)


@dataclass(frozen=True, kw_only=True, slots=True)
class IndexProgress:
    """A progress snapshot passed to the ``progress`` callback of :func:`index_tree`."""

    files_done: int
    """Source files extracted so far."""

    files_total: int
    """Source files selected."""

    declarations: int
    """Declarations handed to the knowledge base so far."""

    current: str
    """The file just extracted (relative to the root)."""


class PremiseIndexReport(BaseModel):
    """What one :func:`index_tree` run did."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kb: str
    """Knowledge base name."""

    root: str
    """The tree indexed (absolute)."""

    files: int = 0
    """Source files selected."""

    failed: list[dict[str, str]] = Field(default_factory=list)
    """Files the extractor could not read or parse: ``{"path", "reason"}``."""

    declarations: int = 0
    """Declarations extracted (= documents handed to the knowledge base)."""

    added: int = 0
    """Declarations new to the knowledge base."""

    replaced: int = 0
    """Declarations whose text or metadata changed."""

    unchanged: int = 0
    """Declarations already indexed as they are (nothing embedded)."""

    removed: int = 0
    """Declarations removed: gone from a file that was re-read, or their file is gone."""

    truncated: int = 0
    """Declarations whose text was cut to the embedder's window."""

    renamed_duplicates: int = 0
    """Declarations whose name repeats in the same file (source id got ``@L<line>``)."""

    chunks_added: int = 0
    """Chunks (= declarations) embedded and written."""

    documents: int = 0
    """Declarations in the knowledge base after the run."""

    chunks: int = 0
    """Chunks in the knowledge base after the run (equals ``documents``: one chunk each)."""

    disk_bytes: int = 0
    """Size of the knowledge base folder on disk after the run."""

    seconds: float = 0.0
    """Wall time of the whole run."""

    embed_seconds: float = 0.0
    """Time spent embedding."""

    index_seconds: float = 0.0
    """Time spent rebuilding the BM25 index."""


def index_tree(
    kb: KnowledgeBase,
    root: str | Path,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    prune: bool = True,
    progress: Callable[[IndexProgress], None] | None = None,
) -> PremiseIndexReport:
    """Index the Lean declarations under ``root`` into ``kb`` (one chunk per declaration).

    Incremental: unchanged declarations are skipped (nothing is embedded), changed ones replaced.

    Args:
        kb: The knowledge base to write to.
        root: Directory holding the sources (for Mathlib: the folder that contains ``Mathlib/``;
            module names are paths relative to it).
        include: Globs relative to ``root`` (``**`` crosses folders). Default :data:`DEFAULT_INCLUDE`.
        exclude: ``fnmatch`` patterns on the relative path of files to leave out. Default
            :data:`DEFAULT_EXCLUDE`.
        prune: Remove indexed declarations of this tree that are gone: those of a re-read file
            that no longer declares them, and those of files that no longer exist. Files the
            extractor failed on keep what they had.
        progress: Called with an :class:`IndexProgress` after each file.

    Returns:
        Counts, timings and the knowledge base's size afterwards.

    Raises:
        IngestError: ``root`` is not a directory.
        KBBusyError: Another process is writing to ``kb``.

    Example:
        >>> report = index_tree(kb, "mathlib", include=["Mathlib/Order/**/*.lean"])  # doctest: +SKIP
        >>> report.added, report.unchanged                                           # doctest: +SKIP
        (10815, 0)
    """
    t0 = time.perf_counter()
    root_path = Path(root).expanduser().resolve()
    root_key = root_path.as_posix()
    inc = list(include or DEFAULT_INCLUDE)
    exc = list(exclude if exclude is not None else DEFAULT_EXCLUDE)
    if not root_path.is_dir():
        from agentrag.errors import IngestError

        raise IngestError(f"not a directory: {root_path}", hint="pass the root of a Lean source tree")
    files_total = len(_selected(root_path, inc, exc))
    fitter = TextFitter(kb.embedder.token_spans, kb.chunker.chunk_tokens)
    failures: list[ExtractionFailure] = []
    report = PremiseIndexReport(kb=kb.name, root=root_key, files=files_total)
    read_files: set[str] = set()
    seen: set[str] = set()
    files_done = 0
    current = ""

    def on_file(path: Path, _count: int) -> None:
        nonlocal files_done, current
        files_done += 1
        current = path.relative_to(root_path).as_posix()
        read_files.add(path.as_posix())
        if progress is not None:
            progress(
                IndexProgress(
                    files_done=files_done,
                    files_total=files_total,
                    declarations=report.declarations,
                    current=current,
                )
            )

    def documents() -> Iterator[Document]:
        for decl in iter_tree(root_path, inc, exc, failures=failures, on_file=on_file):
            source = f"{root_key}/{decl.path}#{decl.name}"
            if source in seen:
                source = f"{source}@L{decl.decl_line}"
                report.renamed_duplicates += 1
            seen.add(source)
            text, cut = fitter.fit(decl)
            report.truncated += cut
            report.declarations += 1
            yield declaration_document(decl, root_key, text, truncated=cut, source=source)

    ingest = kb.ingest_documents(documents())
    report.failed = [{"path": f.path, "reason": f.reason} for f in failures]
    report.added, report.replaced, report.unchanged = ingest.added, ingest.replaced, ingest.unchanged
    report.chunks_added = ingest.chunks_added
    report.embed_seconds, report.index_seconds = ingest.embed_seconds, ingest.index_seconds
    if ingest.skipped:
        log.warning(
            "%d declaration(s) skipped by the knowledge base: %s", len(ingest.skipped), ingest.skipped[:3]
        )
    if prune:
        t1 = time.perf_counter()
        stale = _stale_sources(kb, root_key, read_files, seen)
        if stale:
            report.removed = kb.delete_sources(stale)
            report.index_seconds += time.perf_counter() - t1
            log.info("removed %d declaration(s) no longer in %s", report.removed, root_key)
    stats = kb.stats()
    report.documents, report.chunks, report.disk_bytes = stats.documents, stats.chunks, stats.disk_bytes
    report.seconds = time.perf_counter() - t0
    if report.chunks != report.documents:
        log.warning(
            "knowledge base %s holds %d chunks for %d documents: some documents were not indexed "
            "as one declaration each (was it also used for other files?)",
            kb.name,
            report.chunks,
            report.documents,
        )
    return report


def _stale_sources(kb: KnowledgeBase, root: str, read_files: set[str], seen: set[str]) -> list[str]:
    prefix = root.rstrip("/") + "/"
    stale: list[str] = []
    for doc in kb.manifest.documents():
        if not doc.source.startswith(prefix) or doc.source in seen:
            continue
        file = doc.source.split("#", 1)[0]
        if file in read_files or not Path(file).exists():
            stale.append(doc.source)
    return stale


async def aindex_tree(
    kb: KnowledgeBase,
    root: str | Path,
    *,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    prune: bool = True,
    progress: Callable[[IndexProgress], None] | None = None,
) -> PremiseIndexReport:
    """:func:`index_tree` in a worker thread (it is CPU- and disk-bound)."""
    return await asyncio.to_thread(
        index_tree, kb, root, include=include, exclude=exclude, prune=prune, progress=progress
    )
