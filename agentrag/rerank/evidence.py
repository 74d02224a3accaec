r"""Reading a Prism-style answer and finding its evidence in the passage.

The expected answer is ``yes\n<contribution>…</contribution>\n<evidence>…</evidence>`` or
``no``. Models get this wrong in every way: a missing or extra tag, tags in the wrong order,
a think block left in, prose around the tags, output cut off at ``max_tokens``. The parser
takes what can be taken and says what was wrong, so the caller can fall back knowingly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["PrismOutput", "locate_span", "parse_prism_output"]

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_VERDICT = re.compile(r"^\s*[\"'*]*\s*(yes|no)\b", re.IGNORECASE)
_END_MARKERS = r"<\|im_end\|>|<\|endoftext\|>"


def _blocks(text: str, tag: str) -> tuple[list[str], bool]:
    """Contents of every ``<tag>…</tag>``; an unclosed last block runs to the next tag or the end.

    Returns:
        (contents, whether the last block was unclosed)
    """
    opening = re.compile(rf"<{tag}\s*>", re.IGNORECASE)
    closing = re.compile(rf"</{tag}\s*>", re.IGNORECASE)
    other = re.compile(rf"</?(?:contribution|evidence)\s*>|{_END_MARKERS}", re.IGNORECASE)
    out: list[str] = []
    unclosed = False
    pos = 0
    while (m := opening.search(text, pos)) is not None:
        start = m.end()
        close = closing.search(text, start)
        nxt = other.search(text, start)
        if close is not None and (nxt is None or close.start() <= nxt.start()):
            out.append(text[start : close.start()])
            pos = close.end()
        else:
            end = nxt.start() if nxt is not None else len(text)
            out.append(text[start:end])
            unclosed = nxt is None
            pos = end
    return out, unclosed


@dataclass(frozen=True, kw_only=True)
class PrismOutput:
    """What could be read from one answer."""

    verdict: Literal["yes", "no"] | None
    """The leading yes/no, if there was one."""

    contribution: str = ""
    """The ``<contribution>`` text (several blocks joined by a space)."""

    evidence: str = ""
    """The ``<evidence>`` text (several blocks joined by a newline)."""

    truncated: bool = False
    """The answer stopped inside a tag (cut off at ``max_tokens``)."""

    problems: list[str] = field(default_factory=list)
    """What was wrong with the format, for logs."""

    @property
    def usable(self) -> bool:
        """Complete, non-empty evidence that was not contradicted by a "no"."""
        return bool(self.evidence.strip()) and not self.truncated and self.verdict != "no"


def parse_prism_output(text: str, *, finished: bool = True) -> PrismOutput:
    r"""Parse one answer.

    Args:
        text: The answer, including any prefill the caller put in the prompt
            (e.g. ``"yes\n<contribution>"`` + the generated continuation).
        finished: False when generation hit ``max_tokens`` (``finish_reason == "length"``):
            an unclosed last tag then means the content was cut off. When the server stopped
            on a stop string such as ``</evidence>``, the closing tag is simply not echoed.
    """
    problems: list[str] = []
    body = _THINK.sub("", text)
    m = _VERDICT.match(body)
    verdict: Literal["yes", "no"] | None = None
    if m is not None:
        verdict = "yes" if m.group(1).lower() == "yes" else "no"
    else:
        problems.append("no leading yes/no")
    contributions, contribution_open = _blocks(body, "contribution")
    evidences, evidence_open = _blocks(body, "evidence")
    if len(contributions) > 1:
        problems.append(f"{len(contributions)} contribution blocks")
    if len(evidences) > 1:
        problems.append(f"{len(evidences)} evidence blocks")
    if verdict == "yes" and not evidences:
        problems.append("no <evidence> block")
    truncated = not finished and (evidence_open or contribution_open or not evidences)
    if truncated:
        problems.append("cut off at max_tokens")
    if verdict == "no" and evidences:
        problems.append('evidence after a "no"')
    contribution = " ".join(" ".join(c.split()) for c in contributions if c.strip())
    evidence = "\n".join(e.strip() for e in evidences if e.strip())
    return PrismOutput(
        verdict=verdict,
        contribution=contribution,
        evidence=evidence,
        truncated=truncated,
        problems=problems,
    )


def _normalised_with_map(text: str) -> tuple[str, list[int]]:
    """Collapse whitespace runs to one space; map each output char to its source index."""
    chars: list[str] = []
    index: list[int] = []
    in_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            if not in_space and chars:
                chars.append(" ")
                index.append(i)
            in_space = True
        else:
            chars.append(ch)
            index.append(i)
            in_space = False
    if chars and chars[-1] == " ":
        chars.pop()
        index.pop()
    return "".join(chars), index


def locate_span(needle: str, haystack: str) -> tuple[int, int] | None:
    """Character span of ``needle`` in ``haystack``: exact, else whitespace-normalised.

    The normalised match ignores differences in whitespace (line breaks, runs of spaces) and
    maps the match back to offsets in the original ``haystack``.

    Returns:
        ``(start, end)`` in ``haystack``, or None when the text is not there (a rewrite).
    """
    needle = needle.strip()
    if not needle:
        return None
    i = haystack.find(needle)
    if i >= 0:
        return i, i + len(needle)
    norm_hay, index = _normalised_with_map(haystack)
    norm_needle = " ".join(needle.split())
    j = norm_hay.find(norm_needle)
    if j < 0:
        return None
    return index[j], index[j + len(norm_needle) - 1] + 1
