"""Loaders: files and directory trees to :class:`Document` objects (extracted text + title).

Supported: plain text, Markdown (kept as written, so citations quote the file), HTML (text
only, via the standard library's ``html.parser``), PDF (``pypdf``, the ``pdf`` extra), and JSONL
corpora, BEIR's ``corpus.jsonl`` included (one document per row, source ``<file>#<_id>``).

Nothing is dropped silently and nothing odd aborts a walk: a file that cannot be read, is
binary, is not UTF-8, or has no loader comes back as a :class:`Skipped` with the reason, and so
do a malformed JSONL row, a symlink loop, a FIFO/socket/device (never opened: a FIFO would
block), a folder that cannot be listed and a path past the OS limit. File names that are not
UTF-8 are spelled from their bytes (:func:`source_name`). A text file over :data:`PART_CHARS`
bytes is read in blocks and becomes consecutive documents ``<file>#part-NNNN``. In a BEIR
folder (``corpus.jsonl`` beside ``queries.jsonl``) only the corpus is read.

Example:
    >>> from agentrag.ingest.loaders import load_paths
    >>> for item in load_paths(["docs/"], include=["*.md"]):  # doctest: +SKIP
    ...     print(item.source, getattr(item, "reason", "ok"))
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.types import MetadataValue

__all__ = [
    "MISSING",
    "TEXT_SUFFIXES",
    "Document",
    "Skipped",
    "expand_paths",
    "html_to_text",
    "iter_files",
    "load_file",
    "load_paths",
    "match_glob",
    "source_name",
]

log = logging.getLogger(__name__)

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".jsonl"})
"""Suffixes a directory walk picks up. A file named explicitly is read as text whatever it ends in."""

_MARKDOWN = frozenset({".md", ".markdown"})
_HTML = frozenset({".html", ".htm"})
_SNIFF_BYTES = 8192


class Document(BaseModel):
    """One source document: its extracted text and what identifies it."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: str
    """Stable identity: the file's absolute path, or ``<path>#<row id>`` for a JSONL row."""

    text: str
    """Extracted text. Chunk spans (``start``/``end``) index into exactly this string."""

    title: str = ""
    """Title (Markdown heading, HTML ``<title>``, PDF metadata, JSONL ``title``, or file stem)."""

    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    """Flat, filterable metadata carried into every chunk (e.g. JSONL fields, ``pages``)."""

    page_starts: tuple[int, ...] = ()
    """PDF: offset in ``text`` where each page begins (chunks get a ``page`` number from it)."""


class Skipped(BaseModel):
    """A file (or JSONL row) that was not loaded, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    source: str
    """The file (or ``file#line N``)."""

    reason: str
    """Why it was skipped, for the user."""


# -- names ----------------------------------------------------------------------------------


def source_name(path: str | Path) -> str:
    r"""The absolute path of a file as a source string, whatever its name is made of.

    Never raises: a symlink loop or an over-long path keeps the lexical absolute path, and a
    name that is not valid UTF-8 (kept by Python as lone surrogates) is spelled from its raw
    bytes (``os.fsencode``) with ``\\xNN`` escapes, so it can be hashed and stored.
    """
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        resolved = Path(os.path.abspath(Path(path).expanduser()))
    return os.fsencode(resolved).decode("utf-8", "backslashreplace")


def _stem(path: Path) -> str:
    # The file name as a title: a name that is not UTF-8 is spelled from its bytes.
    return os.fsencode(path.stem).decode("utf-8", "backslashreplace")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- globbing -------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    # Python 3.11 has no glob.translate; `fnmatch` lets `*` cross `/`. This follows gitignore:
    # `**` spans folders, `*` and `?` stay within one path component.
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def match_glob(relpath: str, pattern: str, *, any_component: bool = False) -> bool:
    """Whether a ``/``-separated relative path matches a glob.

    A pattern with a ``/`` matches the whole relative path (``docs/**/*.md``). One without
    matches the file name, or with ``any_component`` any folder or file name on the path
    (``.*`` then excludes hidden folders too), as in ``.gitignore``.
    """
    pattern = pattern.removeprefix("./")
    regex = _glob_regex(pattern.rstrip("/"))
    if "/" in pattern.rstrip("/"):
        return regex.match(relpath) is not None
    parts = relpath.split("/")
    candidates = parts if any_component else parts[-1:]
    return any(regex.match(p) for p in candidates)


def _selected(relpath: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if any(match_glob(relpath, p, any_component=True) for p in exclude):
        return False
    return not include or any(match_glob(relpath, p) for p in include)


def iter_files(
    root: Path,
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    on_error: Callable[[OSError], None] | None = None,
) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` that pass the globs, as ``(path, path relative to root)``, sorted.

    Without ``include`` only suffixes in :data:`TEXT_SUFFIXES` are taken; the rest are
    reported by :func:`load_paths` as skipped. A folder that cannot be listed is passed to
    ``on_error`` (and left out).
    """
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # Prune excluded folders early (a `.git` or `node_modules` can be huge).
        dirnames[:] = sorted(
            d for d in dirnames if not any(match_glob(rel_dir + d, p, any_component=True) for p in exclude)
        )
        for name in sorted(filenames):
            rel = rel_dir + name
            if _selected(rel, include, exclude):
                yield Path(dirpath) / name, rel


# -- decoding ---------------------------------------------------------------------------------


def _decode(data: bytes) -> tuple[str | None, str]:
    """Text of a file's bytes, or ``None`` and the reason it is not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), ""
        except UnicodeDecodeError as exc:
            return None, f"invalid UTF-16 ({exc.reason} at byte {exc.start})"
    if b"\x00" in data[:_SNIFF_BYTES]:
        return None, "binary file (NUL bytes)"
    try:
        return data.decode("utf-8-sig"), ""
    except UnicodeDecodeError as exc:
        # Guessing a legacy encoding would silently garble text that citations then quote.
        return None, f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"


def _normalise_newlines(text: str) -> str:
    # NULs past the sniffed prefix are dropped too: they are never text, and downstream
    # (tokenizers, SQLite text, the store) treat them inconsistently.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")


# -- formats --------------------------------------------------------------------------------

_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_FRONT_MATTER_TITLE = re.compile(r"\A---\n(?:.*\n)*?title:\s*[\"']?(.+?)[\"']?\s*\n(?:.*\n)*?---\n")


def _markdown_title(text: str) -> str:
    if m := _FRONT_MATTER_TITLE.match(text):
        return m.group(1).strip()
    if m := _MD_HEADING.search(text):
        return m.group(1).strip()
    return ""


_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
_PRE_NL = "\ue000"  # a private-use character stands for a newline inside <pre>
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.h1_parts: list[str] = []
        self._skip = 0
        self._in_title = False
        self._in_h1 = False
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP_TAGS:
            self._skip += 1
        elif tag == "h1":
            self._in_h1 = True
        if tag == "pre":
            self._pre += 1
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif tag == "h1":
            self._in_h1 = False
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
            return
        if self._skip:
            return
        if self._in_h1:
            self.h1_parts.append(data)
        # Outside <pre>, runs of whitespace are one space in a browser; keep that reading.
        # Inside, newlines are shielded from the line clean-up in html_to_text.
        self.parts.append(data.replace("\n", _PRE_NL) if self._pre else re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> tuple[str, str]:
    """Visible text and title of an HTML page (scripts, styles and ``<head>`` dropped).

    Block elements become line breaks; blank runs collapse to one empty line.
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    raw = "".join(parser.parts)
    lines = [line.strip() for line in raw.split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip().replace(_PRE_NL, "\n")
    title = " ".join("".join(parser.title_parts).split()) or " ".join("".join(parser.h1_parts).split())
    return text, title


def _load_pdf(path: Path, source: str) -> Document | Skipped:
    try:
        import pypdf
    except ImportError:
        return Skipped(source=source, reason="PDF support is not installed (pip install 'agentrag[pdf]')")
    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                return Skipped(source=source, reason="encrypted PDF")
        pages: list[str] = []
        for page in reader.pages:
            pages.append(_normalise_newlines(page.extract_text() or "").strip())
        meta_title = ""
        if reader.metadata is not None and reader.metadata.title:
            meta_title = str(reader.metadata.title).strip()
    except Exception as exc:  # pypdf raises many types for broken files
        return Skipped(source=source, reason=f"unreadable PDF: {type(exc).__name__}: {exc}")
    starts: list[int] = []
    text = ""
    for i, page_text in enumerate(pages):
        if i:
            text += "\n\n"
        starts.append(len(text))
        text += page_text
    if not text.strip():
        return Skipped(source=source, reason="PDF has no extractable text (scanned images?)")
    return Document(
        source=source,
        text=text,
        title=meta_title or _stem(path),
        metadata={"pages": len(pages)},
        page_starts=tuple(starts),
    )


_ID_KEYS = ("_id", "id", "docid", "doc_id")
_TEXT_KEYS = ("text", "contents", "content", "body")


def _jsonl_rows(path: Path, display: str) -> Iterator[Document | Skipped]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        yield Skipped(source=display, reason=f"cannot read: {exc.strerror or exc}")
        return
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{display}#line {lineno}"
            line, why = _decode(raw)
            if line is None:
                yield Skipped(source=where, reason=why)
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Skipped(source=where, reason=f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(row, dict):
                yield Skipped(source=where, reason="row is not a JSON object")
                continue
            text = next((row[k] for k in _TEXT_KEYS if isinstance(row.get(k), str)), None)
            if text is None:
                yield Skipped(source=where, reason=f"row has no text field (one of {', '.join(_TEXT_KEYS)})")
                continue
            row_id = next((row[k] for k in _ID_KEYS if k in row and row[k] is not None), lineno)
            title = row.get("title") if isinstance(row.get("title"), str) else ""
            metadata = _row_metadata(row)
            metadata["row_id"] = str(row_id)
            yield Document(
                source=f"{display}#{row_id}",
                text=_normalise_newlines(text),
                title=str(title).strip(),
                metadata=metadata,
            )


def _row_metadata(row: dict[str, Any]) -> dict[str, MetadataValue]:
    out: dict[str, MetadataValue] = {}
    skip = {*_ID_KEYS, *_TEXT_KEYS, "title"}
    for key, value in row.items():
        if key in skip:
            continue
        if isinstance(value, str | int | float | bool):
            out[key] = value
        elif isinstance(value, dict):
            # BEIR puts extra fields in a nested `metadata` object: keep its scalars.
            for sub, subval in value.items():
                if isinstance(subval, str | int | float | bool):
                    out[f"{key}.{sub}"] = subval
    return out


def _not_regular(path: Path) -> str:
    """Why ``path`` cannot be read as a file ("" if it can): checked before anything opens it."""
    try:
        st = path.stat()
    except RuntimeError:
        return "symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        if exc.errno == errno.ENAMETOOLONG:
            return "path too long for the OS (PATH_MAX / NAME_MAX)"
        if exc.errno == errno.ENOENT and path.is_symlink():
            return "broken symlink"
        return f"cannot read: {_why(exc)}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        # Opening a FIFO blocks until a writer appears: an ingest would hang holding the lock.
        return f"not a regular file ({kind}): not opened"
    return ""


def _read_regular(path: Path) -> bytes | None:
    """The bytes of a regular file; ``None`` if it turned out not to be one (never blocks)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)


PART_CHARS = 1_000_000
"""A text file larger than this many bytes is read in parts of about this many characters."""

_READ = 1 << 20


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _blocks(path: Path) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        while block := os.read(fd, _READ):
            yield block
    finally:
        os.close(fd)


def _text_parts(path: Path, display: str, *, markdown: bool) -> Iterator[Document | Skipped]:
    """A large text file as consecutive documents ``<file>#part-NNNN``, read in 1 MB blocks.

    Memory stays bounded whatever the file's size (a whole 50 MB file as one document takes
    gigabytes to chunk and write). Each part is cut at a paragraph or line end near
    :data:`PART_CHARS`; its chunks' spans index into the part, and ``char_offset`` in the
    metadata says where the part starts in the file. The file is checked whole (binary,
    UTF-8) before any part is yielded, so a bad file is one skip line, never half ingested.
    """
    import codecs

    try:
        first = True
        check = codecs.getincrementaldecoder("utf-8-sig")()
        offset = 0
        for block in _blocks(path):
            if first:
                if block.startswith((b"\xff\xfe", b"\xfe\xff")):
                    yield Skipped(
                        source=display, reason="UTF-16 text over 1 MB is not supported; convert to UTF-8"
                    )
                    return
                if b"\x00" in block[:_SNIFF_BYTES]:
                    yield Skipped(source=display, reason="binary file (NUL bytes)")
                    return
                first = False
            try:
                check.decode(block)
            except UnicodeDecodeError as exc:
                bad = offset + exc.start
                yield Skipped(
                    source=display, reason=f"not UTF-8 text (byte 0x{block[exc.start]:02x} at offset {bad})"
                )
                return
            offset += len(block)
        check.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        yield Skipped(source=display, reason=f"not UTF-8 text (truncated sequence at the end: {exc.reason})")
        return
    except OSError as exc:
        yield Skipped(source=display, reason=f"cannot read: {_why(exc)}")
        return
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    buf = ""
    title = ""
    part = 0
    start = 0  # characters of the (newline-normalised) file before `buf`
    yielded = False

    def cut_point(text: str) -> int:
        for sep in ("\n\n", "\n", " "):
            at = text.rfind(sep, PART_CHARS // 2, PART_CHARS)
            if at > 0:
                return at + len(sep)
        return PART_CHARS

    try:
        blocks: Iterator[bytes | None] = itertools.chain(_blocks(path), [None])
        for raw in blocks:
            final = raw is None
            text = decoder.decode(raw or b"", final=final)
            buf += text
            # Hold a trailing "\r" back: it may be the first half of a "\r\n" in the next block.
            while len(buf) > PART_CHARS or (final and buf):
                at = len(buf) if final and len(buf) <= PART_CHARS else cut_point(buf)
                piece, buf = buf[:at], buf[at:]
                if not final and piece.endswith("\r"):
                    piece, buf = piece[:-1], "\r" + buf
                clean = _normalise_newlines(piece)
                if part == 0:
                    title = (_markdown_title(clean) if markdown else "") or _stem(path)
                if clean.strip():
                    yield Document(
                        source=f"{display}#part-{part:04d}",
                        text=clean,
                        title=title,
                        metadata={"part": part, "char_offset": start},
                    )
                    yielded = True
                part += 1
                start += len(clean)
    except OSError as exc:
        yield Skipped(source=display, reason=f"cannot read: {_why(exc)}")
        return
    if not yielded:
        yield Skipped(source=display, reason="empty file")


def load_file(path: Path, *, source: str | None = None) -> Iterator[Document | Skipped]:
    """Load one file: one document, or one per row for JSONL; a :class:`Skipped` on failure."""
    display = source or source_name(path)
    suffix = path.suffix.lower()
    why = _not_regular(path)
    if why:
        yield Skipped(source=display, reason=why)
        return
    if suffix == ".jsonl":
        yield from _jsonl_rows(path, display)
        return
    if suffix == ".pdf":
        yield _load_pdf(path, display)
        return
    if suffix not in _HTML and _size_of(path) > PART_CHARS:
        yield from _text_parts(path, display, markdown=suffix in _MARKDOWN)
        return
    try:
        data = _read_regular(path)
    except OSError as exc:
        yield Skipped(source=display, reason=f"cannot read: {_why(exc)}")
        return
    if data is None:
        yield Skipped(source=display, reason="not a regular file (FIFO, socket or device): not opened")
        return
    text, why = _decode(data)
    if text is None:
        yield Skipped(source=display, reason=why)
        return
    text = _normalise_newlines(text)
    if suffix in _HTML:
        text, title = html_to_text(text)
        title = title or _stem(path)
    elif suffix in _MARKDOWN:
        title = _markdown_title(text) or _stem(path)
    else:
        title = _stem(path)
    if not text.strip():
        yield Skipped(source=display, reason="empty file")
        return
    yield Document(source=display, text=text, title=title)


def expand_paths(
    paths: Iterable[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[Path | Skipped]:
    """The files :func:`load_paths` would load, and a :class:`Skipped` for each it would not.

    A directory is walked (``include``/``exclude`` globs relative to it); a file named directly
    is always taken. Nothing here raises for one odd entry: a folder that cannot be listed,
    a symlink loop, a FIFO, a path past the OS limit each become a :class:`Skipped` line.
    """
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            is_dir = path.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            errors: list[OSError] = []
            for file, _rel in iter_files(path, include=include, exclude=exclude, on_error=errors.append):
                while errors:
                    yield _walk_error(errors.pop(0))
                if not include and file.suffix.lower() not in TEXT_SUFFIXES:
                    yield Skipped(
                        source=source_name(file),
                        reason=f"no loader for '{file.suffix or file.name}' files "
                        "(name it in --include to read it as text)",
                    )
                    continue
                why = _not_regular(file) or _beir_side_file(file)
                if why:
                    yield Skipped(source=source_name(file), reason=why)
                    continue
                yield file
            for exc in errors:
                yield _walk_error(exc)
        elif os.path.lexists(path):
            why = _not_regular(path)
            if why:
                yield Skipped(source=source_name(path), reason=why)
            else:
                yield path
        else:
            yield Skipped(source=source_name(path), reason=MISSING)


MISSING = "no such file or directory"
"""The reason :func:`expand_paths` gives for a named path that does not exist."""


def _beir_side_file(file: Path) -> str:
    # A BEIR folder holds corpus.jsonl beside queries.jsonl: the queries are not documents.
    if file.name == "queries.jsonl" and (file.parent / "corpus.jsonl").is_file():
        return "BEIR queries file, not documents (only corpus.jsonl is ingested from a BEIR folder)"
    return ""


def _walk_error(exc: OSError) -> Skipped:
    where = source_name(exc.filename) if exc.filename else "(folder)"
    if exc.errno == errno.ENAMETOOLONG:
        return Skipped(source=where, reason="folder path too long for the OS (PATH_MAX): not read")
    return Skipped(source=where, reason=f"folder not readable: {_why(exc)}")


def load_paths(
    paths: Iterable[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Iterator[Document | Skipped]:
    """Documents from files and directory trees, in a stable order.

    Args:
        paths: Files or directories. A directory is walked; its files are filtered by
            ``include`` / ``exclude`` globs relative to it. A file named here is always loaded.
        include: Globs a file must match (default: every suffix in :data:`TEXT_SUFFIXES`).
        exclude: Globs of files (or folders) to leave out.

    Yields:
        A :class:`Document` per loaded document, a :class:`Skipped` per file or row not loaded.
    """
    for item in expand_paths(paths, include=include, exclude=exclude):
        if isinstance(item, Skipped):
            yield item
        else:
            yield from load_file(item)
