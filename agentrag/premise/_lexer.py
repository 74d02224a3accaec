"""Comment and string masking for Lean 4 source (no Lean toolchain needed).

The extractor never tokenises Lean properly; it looks for keywords, brackets and ``:=`` in
text where everything that could fake them has been blanked out. Blanking (rather than
deleting) keeps every character at its offset and every line at its number, so positions found
in the masked text are positions in the original file.

Two masks are produced:

* ``code``: comments *and* the contents of string / char literals replaced by spaces. This is
  what the structural parser reads, so ``"-- :="`` inside a string cannot end a signature.
* ``nocomment``: comments replaced by spaces, literals kept. Signatures are cut from this one,
  so they stay verbatim (``@[to_additive "doc"]`` keeps its string) but carry no comments.

Doc comments (``/-- ... -/``) are recorded with their spans so that the parser can attach each
one to the declaration that follows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DocComment", "Masked", "blank", "clean_docstring", "mask"]

# Everything that can open a comment or a literal. `r#*"` (raw strings) must be tried before
# `"`, and the identifier check for `'` and `r` happens in code, because regex look-behind
# cannot express "not preceded by a Unicode identifier character" cheaply.
_OPENERS = re.compile(r"--|/-|r#*\"|\"|'|«")
_BLOCK_EDGE = re.compile(r"/-|-/")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_CHAR = re.compile(r"'(?:[^'\\\n]|\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.))'")


@dataclass(frozen=True, slots=True)
class DocComment:
    """A ``/-- ... -/`` doc comment: its character span and its raw text."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class Masked:
    """The two masks of one source text, plus its doc comments in order of appearance."""

    code: str
    nocomment: str
    docs: list[DocComment]
    unterminated: str | None = None
    """Set when a comment or string runs to the end of the file (Lean would reject the file)."""


def blank(segment: str) -> str:
    """Spaces of the same length as ``segment``, newlines kept (so line numbers survive)."""
    if "\n" not in segment:
        return " " * len(segment)
    return "\n".join(" " * len(part) for part in segment.split("\n"))


def _is_ident_char(ch: str) -> bool:
    # Lean identifiers mix Unicode letters, digits (incl. subscripts), `_`, `'`, `!`, `?`.
    return ch.isalnum() or ch in "_'!?"


def mask(text: str) -> Masked:
    r"""Blank out comments and literal contents of a Lean source text.

    Args:
        text: The whole file.

    Returns:
        Both masks (same length as ``text``) and the doc comments found.

    Example:
        >>> m = mask('def s := "-- no" -- yes\n')
        >>> m.code
        'def s := "     "       \n'
        >>> m.nocomment
        'def s := "-- no"       \n'
    """
    code: list[str] = []
    nocomment: list[str] = []
    docs: list[DocComment] = []
    unterminated: str | None = None
    pos = 0  # everything before `pos` has been copied to both masks
    cursor = 0  # where the next search for an opener starts
    n = len(text)
    while True:
        m = _OPENERS.search(text, cursor)
        if m is None:
            break
        start = m.start()
        tok = m.group()
        if tok == "--":
            end = text.find("\n", start)
            end = n if end < 0 else end
            kind = "comment"
        elif tok == "/-":
            depth = 1
            scan = start + 2
            end = n
            while True:
                edge = _BLOCK_EDGE.search(text, scan)
                if edge is None:
                    unterminated = unterminated or f"block comment opened at offset {start}"
                    break
                depth += 1 if edge.group() == "/-" else -1
                scan = edge.end()
                if depth == 0:
                    end = scan
                    break
            # `/--` opens a doc comment, but `/--/` is an empty *plain* comment.
            is_doc = text.startswith("/--", start) and not text.startswith("/--/", start)
            if is_doc:
                docs.append(DocComment(start, end, text[start:end]))
            kind = "comment"
        elif tok == "«":
            close = text.find("»", start)
            # A quoted identifier can contain anything; copy it through untouched.
            cursor = n if close < 0 else close + 1
            continue
        elif tok == "'":
            if start > 0 and _is_ident_char(text[start - 1]):
                cursor = start + 1  # a prime in an identifier such as `foo'`
                continue
            lit = _CHAR.match(text, start)
            if lit is None:
                cursor = start + 1
                continue
            end = lit.end()
            kind = "literal"
        elif tok.startswith("r"):
            if start > 0 and _is_ident_char(text[start - 1]):
                cursor = start + 1  # `r` ending an identifier
                continue
            hashes = tok[1:-1]
            close = text.find('"' + hashes, m.end())
            if close < 0:
                unterminated = unterminated or f"raw string opened at offset {start}"
                end = n
            else:
                end = close + 1 + len(hashes)
            kind = "literal"
        else:  # '"'
            lit = _STRING.match(text, start)
            if lit is None:
                unterminated = unterminated or f"string opened at offset {start}"
                end = n
            else:
                end = lit.end()
            kind = "literal"
        code.append(text[pos:start])
        nocomment.append(text[pos:start])
        if kind == "comment":
            blanked = blank(text[start:end])
            code.append(blanked)
            nocomment.append(blanked)
        else:
            # Keep the delimiters so the parser still sees that a literal is there.
            inner_start = start + 1 if tok in ('"', "'") else m.end()
            inner_end = max(inner_start, end - (1 if tok in ('"', "'") else len(tok) - 1))
            code.append(text[start:inner_start] + blank(text[inner_start:inner_end]) + text[inner_end:end])
            nocomment.append(text[start:end])
        pos = cursor = end
    code.append(text[pos:])
    nocomment.append(text[pos:])
    return Masked("".join(code), "".join(nocomment), docs, unterminated)


def clean_docstring(raw: str) -> str:
    r"""Strip the ``/--`` and ``-/`` delimiters and the common indentation of a doc comment.

    Example:
        >>> clean_docstring("/-- The sum of\n  two numbers. -/")
        'The sum of\ntwo numbers.'
    """
    body = raw[3:] if raw.startswith("/--") else raw
    body = body.removesuffix("-/")
    lines = body.strip().split("\n")
    if len(lines) > 1:
        # The first line follows `/--` directly; only later lines carry indentation.
        rest = [ln for ln in lines[1:] if ln.strip()]
        indent = min((len(ln) - len(ln.lstrip(" ")) for ln in rest), default=0)
        lines = [lines[0]] + [ln[indent:] for ln in lines[1:]]
    return "\n".join(ln.rstrip() for ln in lines).strip()
