"""Token-based chunking with overlap, cutting at sentence ends where it can; content-hash ids.

Sizes are counted in the embedding model's own tokens (``embedder.token_spans``), so a chunk
never exceeds what the model embeds without truncation. A chunk is an exact slice of the
document's extracted text: ``chunk.text == document.text[chunk.start:chunk.end]``, which lets
a citation point at the very characters it quotes.

Sentence ends are found with a small regular expression rather than a library: NLTK's punkt
and friends need model data downloaded at run time, and a cut only has to be *good*, not
linguistically exact (a false boundary after "et al." costs nothing; a missed one means the
cut falls back to a word boundary).

Example:
    >>> from agentrag.embed import regex_token_spans
    >>> chunker = TokenChunker(regex_token_spans, chunk_tokens=8, overlap_tokens=2)
    >>> text = "One two three. Four five six seven. Eight nine ten eleven twelve."
    >>> [text[a:b] for a, b in chunker.split(text)]
    ['One two three.', 'Four five six seven.', 'Eight nine ten eleven twelve.']
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Callable, Iterator

from agentrag.ingest.loaders import Document
from agentrag.types import Chunk, MetadataValue

__all__ = [
    "RESERVED_METADATA",
    "TokenChunker",
    "chunk_id",
    "content_hash",
    "doc_id",
    "sentence_starts",
]

TokenSpans = Callable[[str], list[tuple[int, int]]]

RESERVED_METADATA = frozenset({"source", "doc_id", "title"})
"""Metadata keys every stored chunk carries (and filters can use); loaders may not set them."""

# A sentence starts after . ! ? (and closing quotes/brackets) plus whitespace, when the next
# character looks like a sentence opening; after a blank line; and at a list item or heading.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_LIST_ITEM = re.compile(r"\n[ \t]*(?=(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s)")


def sentence_starts(text: str) -> set[int]:
    """Character offsets where a sentence (or paragraph, list item, heading) begins."""
    starts = {m.end() for m in _SENTENCE_END.finditer(text)}
    starts.update(m.end() for m in _PARAGRAPH.finditer(text))
    starts.update(m.end() for m in _LIST_ITEM.finditer(text))
    return starts


def _hash(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        # surrogateescape: a file name that is not UTF-8 hashes as its raw bytes (os.fsencode)
        # instead of raising.
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


def doc_id(source: str) -> str:
    """Id of a document: a hash of its source (stable across edits, so an edit replaces it)."""
    return _hash("doc", source)


def chunk_id(source: str, start: int, text: str, title: str = "", metadata: str = "") -> str:
    """Id of a chunk: a hash of everything stored with it (source, offset, text, title, metadata).

    Re-ingesting the same content yields the same ids (a no-op); any change yields new ones, so
    an id always names exactly one stored record.
    """
    return _hash("chunk", source, str(start), text, title, metadata)


def content_hash(document: Document, fingerprint: str) -> str:
    """Hash of everything that decides a document's chunks and vectors.

    Text, title, metadata and the chunking/embedding fingerprint: equal hash = nothing to redo.
    """
    meta = json.dumps(document.metadata, sort_keys=True, ensure_ascii=False)
    pages = ",".join(map(str, document.page_starts))
    return _hash("content", fingerprint, document.title, meta, pages, document.text)


_WINDOW_CHARS = 65_536
"""Characters tokenized at a time: the token spans of a whole 50 MB document take gigabytes."""

_CONTEXT = 64
"""Characters looked at before a candidate sentence start (and 8 after) to recognise it."""


def _starts_sentence(text: str, at: int) -> bool:
    """Whether a sentence (paragraph, list item, heading) begins at offset ``at``.

    The same patterns as :func:`sentence_starts`, checked in a small neighbourhood, so long
    documents are never scanned whole.
    """
    lo = max(0, at - _CONTEXT)
    seg = text[lo : at + 8]
    rel = at - lo
    for rx in (_SENTENCE_END, _PARAGRAPH, _LIST_ITEM):
        for m in rx.finditer(seg):
            if m.end() == rel:
                return True
            if m.start() >= rel:
                break
    return False


class _Spans:
    """Token spans of a text, tokenized window by window and forgotten once passed.

    Windows end at whitespace (tokenizers split there, so the spans equal the whole text's);
    a token longer than ``piece`` characters (a run with no spaces, which a word-piece
    tokenizer turns into one ``[UNK]``) is cut into ``piece``-character pseudo-tokens so the
    character cap can hold.
    """

    def __init__(self, text: str, token_spans: TokenSpans, *, piece: int, window: int | None = None) -> None:
        self.text = text
        self.fn = token_spans
        self.piece = max(1, piece)
        self.window = max(window or _WINDOW_CHARS, 2 * self.piece)
        self.pos = 0
        self.base = 0
        self.buf: list[tuple[int, int]] = []

    @property
    def done(self) -> bool:
        return self.pos >= len(self.text)

    def _more(self) -> None:
        text = self.text
        end = min(self.pos + self.window, len(text))
        if end < len(text):
            # Back off to whitespace so no token straddles two windows.
            cut = max(text.rfind(" ", self.pos, end), text.rfind("\n", self.pos, end))
            if cut > self.pos:
                end = cut
        offset = self.pos
        for ra, rb in self.fn(text[offset:end]):
            if rb <= ra:
                continue
            a, b = ra + offset, rb + offset
            while b - a > self.piece:
                self.buf.append((a, a + self.piece))
                a += self.piece
            self.buf.append((a, b))
        self.pos = end

    def ensure(self, n: int) -> int:
        """Load spans until there are ``n`` (or the text ends); returns how many there are."""
        while self.base + len(self.buf) < n and not self.done:
            self._more()
        return self.base + len(self.buf)

    def __getitem__(self, b: int) -> tuple[int, int]:
        return self.buf[b - self.base]

    def forget_before(self, b: int) -> None:
        """Drop spans before index ``b`` (never needed again)."""
        if b - self.base > 8192:
            del self.buf[: b - self.base]
            self.base = b


class TokenChunker:
    """Cuts text into windows of at most ``chunk_tokens`` model tokens and ``max_chars`` characters.

    Text is tokenized in windows of 64k characters, so memory does not grow with the document.

    Args:
        token_spans: Character spans of the model's tokens in a text (``embedder.token_spans``).
        chunk_tokens: Most tokens in one chunk.
        overlap_tokens: Tokens repeated from the end of one chunk at the start of the next
            (fewer when a sentence starts inside the overlap: the next chunk starts there).
        respect_sentences: End a chunk at a sentence start found in the second half of the
            window; otherwise (and when there is none) at a word boundary.
        max_chars: Most characters in one chunk (default ``max(256, 12 * chunk_tokens)``): a
            run with no spaces is one token to a word-piece tokenizer, and would otherwise
            become one chunk however long it is.
    """

    def __init__(
        self,
        token_spans: TokenSpans,
        *,
        chunk_tokens: int,
        overlap_tokens: int = 32,
        respect_sentences: bool = True,
        max_chars: int | None = None,
    ) -> None:
        if chunk_tokens < 1:
            raise ValueError("chunk_tokens must be at least 1")
        if max_chars is not None and max_chars < 16:
            raise ValueError("max_chars must be at least 16")
        self.token_spans = token_spans
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = max(0, min(overlap_tokens, chunk_tokens // 2))
        self.respect_sentences = respect_sentences
        self.max_chars = max_chars or max(256, 12 * chunk_tokens)

    @property
    def fingerprint(self) -> str:
        """Identifies the settings (part of every document's content hash)."""
        return (
            f"tok{self.chunk_tokens}/ov{self.overlap_tokens}/s{int(self.respect_sentences)}/c{self.max_chars}"
        )

    def split(self, text: str, *, chunk_tokens: int | None = None) -> list[tuple[int, int]]:
        """Character spans ``(start, end)`` of the chunks of ``text``.

        Args:
            text: The text.
            chunk_tokens: Override the window for this text (e.g. minus a title's tokens).
        """
        return list(self.iter_split(text, chunk_tokens=chunk_tokens))

    def iter_split(self, text: str, *, chunk_tokens: int | None = None) -> Iterator[tuple[int, int]]:
        """:meth:`split`, one span at a time (memory bounded by the window, not the text)."""
        size = max(1, chunk_tokens or self.chunk_tokens)
        cap = self.max_chars
        spans = _Spans(text, self.token_spans, piece=max(1, cap // 2))
        if spans.ensure(1) == 0:
            return
        overlap = min(self.overlap_tokens, size // 2)

        def sentence_at(b: int) -> bool:
            return _starts_sentence(text, spans[b][0])

        def word_at(b: int) -> bool:
            return spans[b][0] > spans[b - 1][1]

        i = 0
        while True:
            n = spans.ensure(i + size + 1)
            j = min(i + size, n)
            # The character cap: the most tokens from i whose text fits in `cap` characters.
            first = spans[i][0]
            if spans[j - 1][1] - first > cap:
                lo, hi = i + 1, j  # spans[lo - 1] fits (a piece is at most cap // 2 long)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if spans[mid - 1][1] - first <= cap:
                        lo = mid
                    else:
                        hi = mid - 1
                j = lo
            cut = j
            if j < n:
                floor = i + max(1, min(size, j - i) // 2)
                found = None
                if self.respect_sentences:
                    found = next((b for b in range(j, floor - 1, -1) if sentence_at(b)), None)
                if found is None:
                    found = next((b for b in range(j, floor - 1, -1) if word_at(b)), None)
                cut = found if found is not None else j
            yield (first, spans[cut - 1][1])
            if cut >= n:
                return
            nxt = max(self._next_start(i, cut, overlap, sentence_at, word_at), i + 1)
            spans.forget_before(nxt)
            i = nxt

    def _next_start(
        self,
        i: int,
        cut: int,
        overlap: int,
        sentence_at: Callable[[int], bool],
        word_at: Callable[[int], bool],
    ) -> int:
        if not overlap:
            return cut
        if self.respect_sentences:
            # Overlap by whole sentences: the sentence start nearest `overlap` tokens back, looking
            # up to twice that far. None there and the cut itself at a sentence end: no overlap
            # beats a next chunk that opens mid-sentence.
            target = cut - overlap
            near = [b for b in range(max(cut - 2 * overlap, i + 1), cut) if sentence_at(b)]
            if near:
                return min(near, key=lambda b: abs(b - target))
            if sentence_at(cut):
                return cut
        return next((b for b in range(max(cut - overlap, i + 1), cut) if word_at(b)), cut)

    def chunk(self, document: Document, *, reserve_tokens: int = 0) -> list[Chunk]:
        """Chunks of a document, with ids, spans, title and metadata.

        Args:
            document: The loaded document.
            reserve_tokens: Tokens to leave free in each window (for a title embedded with it).
        """
        # A title may take at most half the window: the chunk text is what is being indexed.
        size = self.chunk_tokens - min(reserve_tokens, self.chunk_tokens // 2)
        did = doc_id(document.source)
        chunks: list[Chunk] = []
        for seq, (start, end) in enumerate(self.iter_split(document.text, chunk_tokens=size)):
            text = document.text[start:end]
            metadata: dict[str, MetadataValue] = dict(document.metadata)
            if document.page_starts:
                metadata["page"] = bisect.bisect_right(document.page_starts, start)
            metadata["seq"] = seq
            meta_key = json.dumps(metadata, sort_keys=True, ensure_ascii=False)
            chunks.append(
                Chunk(
                    id=chunk_id(document.source, start, text, document.title, meta_key),
                    text=text,
                    source=document.source,
                    title=document.title,
                    start=start,
                    end=end,
                    doc_id=did,
                    metadata=metadata,
                )
            )
        return chunks
