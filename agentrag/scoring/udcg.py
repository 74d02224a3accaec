"""UDCG: Utility and Distraction-aware Cumulative Gain (Trappolini et al., 2025).

A context metric for RAG that predicts whether an LLM will answer correctly from a set of
passages, where nDCG (built for humans scanning a ranked list) does not. For the consumer
model M, each passage p gets

    u(p) = 1 − P_M(first token of "NO-RESPONSE" | question + only p)

(the prompt tells M to answer from the document or say NO-RESPONSE), and

    UDCG(q, P) = sigmoid( Σ_i δ_i · w(p_i) · u(p_i) ),  w = +1 relevant, −1/3 irrelevant,

with δ_i = 1/|P| (uniform), which is exactly the released code (GiovanniTRA/UDCG,
``compute_udcg_scores.py``); UDCG = 0 for an empty P. The released example data was computed
with the irrelevant weight written as −0.333: pass ``irrelevant_weight=-0.333`` to reproduce
those figures to the last digit (e.g. 0.5554 rather than 0.5553 for the published example); the
default here is the code's exact −1/3. For a relevant passage u is its utility,
for an irrelevant one its power to distract. The paper also fits a positional discount δ whose
shape the code does not release: pass your own ``discount`` vector.

Soft labels. At run time there are no gold labels, only a (calibrated) P(relevant) r_i per
passage. The weight is then its expectation, E[w_i] = r_i·1 + (1 − r_i)·(−1/3), and we report

    UDCG_soft = sigmoid( Σ_i δ_i · E[w_i] · u(p_i) ) = sigmoid( E[inner sum] ),

the sigmoid of the expected inner sum (exact, since the sum is linear in w). It is not
E[sigmoid(inner)], the expectation over label draws; the two differ by a Jensen gap that is
small here because the inner sum stays in [−1/3, 1], where the sigmoid is close to linear.
With 0/1 labels both reduce to the released formula.

The abstention probability is measured through vLLM: the server renders the prompt with the
model's own chat template (``/tokenize``), the first token of "NO-RESPONSE" comes from the
server's tokenizer (never guessed), and its probability is read from ``prompt_logprobs``, which
covers the whole vocabulary, with no restriction on the allowed tokens (that would change the
distribution measured).

Example:
    >>> from agentrag.scoring.udcg import udcg
    >>> round(udcg([1, 1, 0, 0, 0], [1.0, 1.0, 0.8682, 0.8187, 0.9792], irrelevant_weight=-0.333), 4)
    0.5554
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agentrag.errors import LLMOutputError
from agentrag.prompts import load_prompt

if TYPE_CHECKING:
    from agentrag.llm.client import LLMClient
    from agentrag.llm.vllm_api import VLLMApi

__all__ = [
    "IRRELEVANT_WEIGHT",
    "NO_RESPONSE",
    "RELEVANT_WEIGHT",
    "UtilityScorer",
    "expected_weight",
    "udcg",
    "uniform_discount",
]

log = logging.getLogger(__name__)

RELEVANT_WEIGHT = 1.0
"""w(p) for a relevant passage."""

IRRELEVANT_WEIGHT = -1.0 / 3.0
"""w(p) for an irrelevant passage (the released default)."""

NO_RESPONSE = "NO-RESPONSE"
"""The abstention string the consumer prompt asks for."""


def uniform_discount(n: int) -> list[float]:
    """δ_i = 1/n for i < n: the released code's averaging."""
    return [1.0 / n] * n if n > 0 else []


def expected_weight(
    relevance: float,
    *,
    relevant_weight: float = RELEVANT_WEIGHT,
    irrelevant_weight: float = IRRELEVANT_WEIGHT,
) -> float:
    """E[w] for P(relevant) = ``relevance``: r·w_rel + (1 − r)·w_irr (a 0/1 label gives w itself)."""
    if not 0.0 <= relevance <= 1.0:
        raise ValueError(f"relevance must be a probability or a 0/1 label, got {relevance}")
    return relevance * relevant_weight + (1.0 - relevance) * irrelevant_weight


def udcg(
    relevance: Sequence[float | bool],
    utility: Sequence[float],
    *,
    discount: Sequence[float] | None = None,
    relevant_weight: float = RELEVANT_WEIGHT,
    irrelevant_weight: float = IRRELEVANT_WEIGHT,
) -> float:
    """UDCG of one context (passages in context order).

    Args:
        relevance: Per passage, a 0/1 (or bool) gold label, or a P(relevant) in [0, 1] (soft
            labels: see the module docstring for the formula).
        utility: Per passage, u(p) = 1 − P(NO-RESPONSE | question, p), in [0, 1].
        discount: Positional weights δ_i, at least ``len(relevance)`` long (extra entries are
            ignored). Default: uniform 1/|P|, the released code.
        relevant_weight: w for a relevant passage.
        irrelevant_weight: w for an irrelevant passage.

    Returns:
        UDCG in (0, 1); 0.0 for an empty context.

    Raises:
        ValueError: Length mismatch or values outside [0, 1].
    """
    n = len(relevance)
    if n != len(utility):
        raise ValueError(f"{n} relevance labels but {len(utility)} utilities")
    if n == 0:
        return 0.0
    deltas = uniform_discount(n) if discount is None else list(discount)[:n]
    if len(deltas) < n:
        raise ValueError(f"discount has {len(deltas)} weights for {n} passages")
    inner = 0.0
    for r, u, d in zip(relevance, utility, deltas, strict=True):
        if not 0.0 <= u <= 1.0:
            raise ValueError(f"utility must be in [0, 1], got {u}")
        w = expected_weight(float(r), relevant_weight=relevant_weight, irrelevant_weight=irrelevant_weight)
        inner += d * w * u
    return 1.0 / (1.0 + math.exp(-inner))


class UtilityScorer:
    """u(p) = 1 − P(first token of "NO-RESPONSE") for a consumer model served by vLLM.

    Args:
        llm: Client of the consumer model (its endpoint and usage meter are reused).
        api: vLLM-specific requests for that model (built from ``llm`` by default).
        template: Prompt template name (chat; variables ``question`` and ``passage``).

    Example:
        >>> scorer = UtilityScorer(llm)                                            # doctest: +SKIP
        >>> await scorer.autilities("Who wrote Hamlet?", ["Shakespeare wrote Hamlet."])  # doctest: +SKIP
        [0.93]
    """

    def __init__(self, llm: LLMClient, *, api: VLLMApi | None = None, template: str = "udcg_abstain") -> None:
        from agentrag.llm.vllm_api import VLLMApi

        self.llm = llm
        self.api = api or VLLMApi(llm.endpoint, usage=llm.usage, role=f"{llm.role}-utility")
        self.template = load_prompt(template)
        self._token_id: int | None = None

    async def abstain_token_id(self) -> int:
        """Id of the first token of "NO-RESPONSE", asked of the server's tokenizer (once)."""
        if self._token_id is None:
            ids = await self.api.tokenize(NO_RESPONSE, add_special_tokens=False)
            if not ids:
                raise LLMOutputError(f"the server's tokenizer returned no tokens for {NO_RESPONSE!r}")
            self._token_id = ids[0]
            log.debug("first token of %s is id %d", NO_RESPONSE, self._token_id)
        return self._token_id

    async def aabstention(self, question: str, passage: str) -> float:
        """P(the consumer's first token is the first token of NO-RESPONSE | question, passage)."""
        token_id = await self.abstain_token_id()
        messages = self.template.messages(question=question, passage=passage)
        prompt_ids = await self.api.tokenize(messages=messages, add_generation_prompt=True)
        return math.exp(await self.api.next_token_logprob(prompt_ids, token_id))

    async def autility(self, question: str, passage: str) -> float:
        """u(p) = 1 − P(NO-RESPONSE first token)."""
        return 1.0 - await self.aabstention(question, passage)

    async def autilities(self, question: str, passages: Sequence[str]) -> list[float]:
        """u(p) for each passage, all requests in flight together."""
        await self.abstain_token_id()  # once, before the fan-out
        return list(await asyncio.gather(*(self.autility(question, p) for p in passages)))
