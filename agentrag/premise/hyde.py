r"""HyDE for premise search: a hypothetical Lean declaration written by the local model.

A natural-language query ("a set in which every filter clusters somewhere inside it") shares
few words and no notation with the formal text of the declaration it looks for. HyDE (Gao et
al., 2022, *Precise Zero-Shot Dense Retrieval without Relevance Labels*) asks a model for a
document that would answer the query and searches with it: here, one short generation
(``prompts/hyde_premise.jinja``, greedy, at most :data:`HYDE_MAX_TOKENS` tokens, cut before any
proof) of the declaration the query describes, e.g. ``theorem IsCompact ...``. The searcher
retrieves with the query and with the hypothesis and fuses the two rankings by reciprocal rank
(:func:`agentrag.nodes.query.merge_rankings`), so a wrong guess can add candidates but not
erase the query's own.

``[premise] hyde`` decides when it runs: ``off``, ``natural`` (queries
:func:`agentrag.premise.query.query_style` calls natural language) or ``all``. A generation that
fails (server down, timeout) leaves the query's own retrieval and an error line; it never fails
the search.

Example:
    >>> answer = "```lean\ntheorem Nat.Prime.two_le {p : ℕ} (hp : p.Prime) : 2 ≤ p := by\n  omega\n```"
    >>> clean_declaration(answer)
    'theorem Nat.Prime.two_le {p : ℕ} (hp : p.Prime) : 2 ≤ p'
    >>> hyde_applies("natural", "a compact set is closed"), hyde_applies("natural", "`IsCompact s`")
    (True, False)
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any, Literal

from agentrag.premise.query import query_style

if TYPE_CHECKING:
    from agentrag.graph.context import ChatModel

__all__ = ["HYDE_MAX_TOKENS", "HYDE_PROMPT", "HydeMode", "clean_declaration", "hyde_applies", "hypothesize"]

HydeMode = Literal["off", "natural", "all"]
"""When premise search adds a hypothetical declaration: never, for natural-language queries, always."""

HYDE_PROMPT = "hyde_premise"
"""The prompt template (``prompts/hyde_premise.jinja``)."""

HYDE_MAX_TOKENS = 80
"""A one-line Lean statement fits; decoding is the cost on CPU (a few tokens per second)."""

# The model is told to write one line without a proof; stopping at ``:=`` (the proof or the
# body starts) or at a blank line bounds what a rambling answer costs.
_STOP = [":=", "\n\n"]
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_WHERE = re.compile(r"\s(:=|where\b).*$", re.DOTALL)
_MAX_CHARS = 600


def hyde_applies(mode: HydeMode, query: str) -> bool:
    """Whether ``mode`` asks for a hypothetical declaration for ``query``."""
    if mode == "all":
        return True
    return mode == "natural" and query_style(query) == "natural"


def clean_declaration(text: str) -> str:
    """The declaration in a model's answer: no code fences, no proof, one line.

    Returns:
        The statement with whitespace collapsed, at most 600 characters; ``""`` when the answer
        holds nothing but fences and blanks.
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not _FENCE.match(ln)]
    joined = " ".join(ln.strip() for ln in lines).strip().strip("`").strip()
    joined = _WHERE.sub("", " " + joined).strip()
    joined = " ".join(joined.split())
    return joined[:_MAX_CHARS]


async def hypothesize(llm: ChatModel, query: str, *, max_tokens: int = HYDE_MAX_TOKENS) -> str:
    """Ask ``llm`` for the Lean declaration ``query`` describes (greedy, one short generation).

    Args:
        llm: The generator (:class:`agentrag.llm.LLMClient` or a test double).
        query: The user's query.
        max_tokens: Generation cap.

    Returns:
        The cleaned declaration (:func:`clean_declaration`); ``""`` when the answer was empty.

    Raises:
        LLMError: The call failed (after the client's retries).
    """
    from agentrag.prompts import load_prompt

    messages = load_prompt(HYDE_PROMPT).messages(query=query)
    # The ChatModel protocol does not name stop sequences; the real client takes them (they
    # save decoding a proof), and the cleaning below cuts one either way.
    extra: dict[str, Any] = {"stop": _STOP} if _takes_stop(llm) else {}
    completion = await llm.chat(messages, max_tokens=max_tokens, temperature=0.0, **extra)
    return clean_declaration(completion.text)


def _takes_stop(llm: ChatModel) -> bool:
    try:
        params = inspect.signature(llm.chat).parameters
    except (TypeError, ValueError):
        return False
    return "stop" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
