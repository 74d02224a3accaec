"""``generate``: the answer, streamed, with ``[n]`` citations resolved to exact source spans.

Answers end, and what is printed is what is kept:

- **Stop sequences** (:data:`STOP`) end a model that starts a new "Question:" or "Passages:"
  block, and ``max_tokens`` caps the rest.
- **A repetition guard** (:func:`repetition_start`) stops the stream when the text starts to
  loop (the same sentence again, or a stretch that repeats back to back) and keeps the text
  before the loop.
- **Markers are checked as they stream** (:class:`AnswerGuard`): a ``[n]`` beyond the passages
  given is cut before it is printed; valid ones pass.
- **The abstention is one fixed sentence** (:data:`ABSTAIN`), which the prompt asks for and
  :func:`is_abstention` recognises; an abstaining answer carries no citations.
- An answer cut off by ``max_tokens`` or by the guard ends at its last complete sentence.
- **Every sentence carries the marker of the passage it comes from**: the prompt asks for it,
  and a sentence the model left uncited gets the marker of the context item that holds most of
  its words (:func:`attribute_uncited`; none when no item holds 60% of them).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from agentrag.errors import LLMError, LLMOutputError
from agentrag.graph.registry import node
from agentrag.nodes._util import degraded, event
from agentrag.types import Citation, Evidence, Passage

if TYPE_CHECKING:
    from langgraph.runtime import Runtime

    from agentrag.graph.context import RunContext
    from agentrag.state import RAGState

ABSTAIN = "I cannot answer this from the available documents."
"""What the generator says (and is told to say) when the evidence does not hold the answer."""

STOP = ["\nQuestion:", "\nPassages:", "\nEvidence:", "\n\n\n"]
"""Stop sequences: the model began a new block of the prompt's shape, or trails blank lines."""

_MARKERS = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_MARKER_PREFIX = re.compile(r"\[\d*(?:\s*[,;]\s*\d*)*")
_MARKER_MAX = 24  # a bracket run longer than this is text, not a marker
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])*")
_BUDGET_LIMITS = {"rounds", "llm_calls", "tokens", "wall_time"}


class GenerateParams(BaseModel):
    """Parameters of ``generate``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_tokens: int = Field(default=256, ge=1)
    """Answer length cap."""

    temperature: float = Field(default=0.0, ge=0)
    """Sampling temperature (0: greedy)."""


def _norm_sentence(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", _MARKERS.sub("", text).lower()).split())


def repetition_start(text: str, *, min_sentence: int = 12) -> int | None:
    """Where a loop starts in ``text``, or None: the index to cut at (keeping one copy).

    Two signs of a loop: the last complete sentence repeats an earlier one (compared without
    markers, case and punctuation; sentences shorter than ``min_sentence`` characters, such
    as "Yes.", are allowed to recur); or the text ends with a stretch repeated back to back (a
    period of 8-19 characters three times, 20-200 characters twice). Numbers such as
    ``1,000,000`` are not loops: their period is shorter than 8.

    Example:
        >>> text = "It lasts two years [1]. It covers defects [1]. It covers defects [1]."
        >>> text[: repetition_start(text)]
        'It lasts two years [1]. It covers defects [1].'
    """
    n = len(text)
    for period in range(8, min(200, n // 2) + 1):
        reps = 3 if period < 20 else 2
        if period * reps > n:
            break
        unit = text[n - period :]
        if text[n - period * reps :] == unit * reps:
            return n - period * (reps - 1)
    sentences = [(m.start(), m.group()) for m in _SENTENCE.finditer(text) if m.group().strip()]
    if len(sentences) >= 2 and re.search(r"[.!?]\s*(?:\[[^\]]*\]\s*)*$", text):
        start, last = sentences[-1]
        key = _norm_sentence(last)
        if len(key) >= min_sentence and key in {_norm_sentence(s) for _, s in sentences[:-1]}:
            return start
    return None


class AnswerGuard:
    """Filters streamed answer text: cuts out-of-range markers, notices repetition.

    Feed deltas with :meth:`feed` and print what it returns; a ``[`` is held back until it is
    known to be a marker (then kept only if its numbers are 1..``n_items``) or text. When
    :attr:`looping` turns true, stop the stream; :attr:`text` is the answer so far, cut before
    the loop.

    Example:
        >>> guard = AnswerGuard(2)
        >>> guard.feed("Two years [1][7") + guard.feed("].") + guard.finish()
        'Two years [1].'
    """

    def __init__(self, n_items: int) -> None:
        self.n_items = n_items
        self.text = ""
        self.looping = False
        self._pending = ""

    def _marker(self, body: str) -> str:
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", body)]
        valid = [x for x in numbers if 1 <= x <= self.n_items]
        return f"[{', '.join(str(x) for x in valid)}]" if valid else ""

    def feed(self, delta: str) -> str:
        """Take a streamed delta; return the text that may be shown now."""
        out: list[str] = []
        for ch in delta:
            if self._pending:
                self._pending += ch
                full = _MARKERS.fullmatch(self._pending)
                if full:
                    out.append(self._marker(full.group(1)))
                    self._pending = ""
                elif not _MARKER_PREFIX.fullmatch(self._pending) or len(self._pending) > _MARKER_MAX:
                    out.append(self._pending)
                    self._pending = ""
            elif ch == "[":
                self._pending = ch
            else:
                out.append(ch)
        shown = "".join(out)
        self.text += shown
        if shown and not self.looping:
            cut = repetition_start(self.text)
            if cut is not None:
                self.looping = True
                self.text = self.text[:cut].rstrip()
        return shown

    def finish(self) -> str:
        """The held-back remainder (an unfinished bracket is text)."""
        rest, self._pending = self._pending, ""
        if not self.looping and rest and not _MARKER_PREFIX.fullmatch(rest):
            self.text += rest
            return rest
        return ""


def last_complete_sentence(text: str) -> str:
    """``text`` up to the end of its last complete sentence (with that sentence's markers).

    Unchanged when it holds no sentence end.
    """
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()] if ends else text


_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "by",
        "with",
        "from",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "as",
        "which",
        "who",
        "what",
        "when",
        "where",
        "how",
        "not",
        "no",
        "but",
    ]
)
_UNCITED = re.compile(r"[^.!?\n]*[^.!?\n\s][^.!?\n]*(?:[.!?]+(?:\s*\[\d+(?:\s*[,;]\s*\d+)*\])*|$)")


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def attribute_uncited(text: str, context: list[Evidence], *, min_overlap: float = 0.6) -> tuple[str, int]:
    """Give a sentence the model left without a marker the ``[n]`` of the item it comes from.

    A sentence is attributed to the context item holding the largest share of its content
    words, when that share is at least ``min_overlap`` (and the sentence has two content words
    or more); otherwise it stays uncited. The marker goes before the sentence's final stop.

    Returns:
        The text and the number of markers added.

    Example:
        >>> ev = [Evidence(passage_id="a", text="The Aurora K2 has a two-year warranty.")]
        >>> attribute_uncited("The K2 has a two-year warranty.", ev)
        ('The K2 has a two-year warranty [1].', 1)
    """
    vocab = [_content_words(f"{e.title} {e.text}") for e in context]
    added = 0

    def mark(match: re.Match[str]) -> str:
        nonlocal added
        sentence = match.group()
        if _MARKERS.search(sentence):
            return sentence
        words = _content_words(sentence)
        if len(words) < 2:
            return sentence
        shares = [len(words & v) / len(words) for v in vocab]
        best = max(range(len(shares)), key=lambda i: shares[i], default=None)
        if best is None or shares[best] < min_overlap:
            return sentence
        added += 1
        body = sentence.rstrip()
        stop = re.search(r"[.!?]+$", body)
        cut = stop.start() if stop else len(body)
        return f"{body[:cut].rstrip()} [{best + 1}]{body[cut:]}{sentence[len(body) :]}"

    return _UNCITED.sub(mark, text), added


def resolve_citations(
    answer: str, context: list[Evidence], passages: dict[str, Passage]
) -> tuple[str, list[Citation]]:
    """Find ``[n]`` / ``[n, m]`` markers, map them to context items, drop invalid ones.

    Each citation points at exact source text: the evidence's own span when it was found
    verbatim in the source, else the whole passage's span.

    Returns:
        The answer with out-of-range markers removed, and one citation per distinct marker.
    """
    cited: dict[int, Citation] = {}

    def keep(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        valid = [n for n in numbers if 1 <= n <= len(context)]
        for n in valid:
            if n not in cited:
                item = context[n - 1]
                passage = passages.get(item.passage_id)
                if item.start is not None and item.end is not None:
                    start, end, quote = item.start, item.end, item.text
                elif passage is not None:
                    start, end, quote = passage.start, passage.end, passage.text
                else:
                    continue
                cited[n] = Citation(
                    marker=n,
                    passage_id=item.passage_id,
                    source=item.source,
                    title=item.title,
                    start=start,
                    end=end,
                    quote=quote,
                )
        return "".join(f"[{n}]" for n in valid)

    text = _MARKERS.sub(keep, answer)
    return re.sub(r"[ \t]+([.,;:])", r"\1", text).strip(), [cited[n] for n in sorted(cited)]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower()).strip()


def is_abstention(text: str) -> bool:
    """Whether the answer is the abstention sentence (or empty).

    Example:
        >>> is_abstention("I cannot answer this from the available documents.")
        True
        >>> is_abstention("Two years [1].")
        False
    """
    norm = _norm(_MARKERS.sub("", text))
    return not norm or norm.startswith(_norm(ABSTAIN)[:40])


def drop_abstention(text: str) -> str:
    """An answer that abstains after answering: the abstention sentence removed."""
    return re.sub(re.escape(ABSTAIN) + r"\s*", "", text).strip()


@node("generate", params=GenerateParams)
async def generate(state: RAGState, runtime: Runtime[RunContext], params: GenerateParams) -> dict[str, Any]:
    """Write the answer from the packed context, streaming tokens; abstain when there is none.

    With an empty context the model is not called: the answer is the abstention sentence.
    Outcome: ``answered``, ``abstained``, or ``budget_exhausted`` when a loop was cut short by
    a budget (the answer is then the best from the evidence gathered so far).
    """
    ctx = runtime.context
    cut_short = state.budget.exhausted in _BUDGET_LIMITS
    if not state.context:
        return {
            "answer": ABSTAIN,
            "citations": [],
            "outcome": "abstained",
            **event("abstained: no evidence in the context"),
        }
    messages = ctx.prompts.messages(
        "generate",
        question=state.question,
        evidence=state.context,
        history=state.history,
        abstain_phrase=ABSTAIN,
    )
    writer = runtime.stream_writer
    guard = AnswerGuard(len(state.context))
    completion0 = ctx.usage.completion_tokens
    errors: list[str] = []  # append-only: only this node's new records
    stream = ctx.llm.stream(messages, max_tokens=params.max_tokens, temperature=params.temperature, stop=STOP)
    try:
        async for delta in stream:
            shown = guard.feed(delta)
            if shown:
                writer({"kind": "token", "node": "generate", "text": shown})
            if guard.looping:
                break  # closing the stream below ends the request
        rest = guard.finish()
        if rest:
            writer({"kind": "token", "node": "generate", "text": rest})
    except LLMError as exc:
        if not guard.text.strip():
            raise  # nothing to salvage: let the run fail (and be resumable from here)
        errors = degraded(state, "generate", "answer cut off", exc)
    finally:
        closer = getattr(stream, "aclose", None)  # an async generator: end the request now
        if closer is not None:
            await closer()
    raw = guard.text.strip()
    if not raw:
        # The model always writes something (at least the abstention sentence): an empty
        # completion is a broken call (e.g. a 200 whose body was not a completion), and a failed
        # call must never read as "I cannot answer".
        raise LLMOutputError(
            "the generator returned an empty answer",
            hint="look at the model server's log (`agentrag models status` shows where it is)",
        )
    hit_cap = ctx.usage.completion_tokens - completion0 >= params.max_tokens
    if guard.looping or hit_cap:
        raw = last_complete_sentence(raw)
    citations: list[Citation] = []
    n_attributed = 0
    if is_abstention(raw):
        text, outcome = ABSTAIN, "abstained"
    else:
        passages = {p.id: p for p in state.candidates}
        attributed, n_attributed = attribute_uncited(drop_abstention(raw), state.context)
        text, citations = resolve_citations(attributed, state.context, passages)
        outcome = "budget_exhausted" if cut_short else "answered"
    notes = [f"{len(text)} chars", f"{len(citations)} citations"]
    if not citations and outcome != "abstained":
        notes.append("no citation")
    elif outcome != "abstained" and n_attributed:
        notes.append(f"{n_attributed} uncited sentence(s) attributed by word overlap")
    if guard.looping:
        notes.append("repetition cut")
    elif hit_cap:
        notes.append(f"hit max_tokens={params.max_tokens}")
    return {
        "answer": text,
        "citations": citations,
        "outcome": outcome,
        "errors": errors,
        **event(f"{outcome}: {', '.join(notes)}"),
    }
