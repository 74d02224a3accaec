"""An async client for OpenAI-compatible model servers (vLLM by default), through litellm.

One :class:`LLMClient` talks to one model, served by one or more replicas. Chat, streaming and
every call to a provider that is not OpenAI-compatible go through litellm; raw text completions
to an OpenAI-compatible server (``hosted_vllm/``, ``openai/``: scoring and evidence calls) go
to the OpenAI SDK client litellm would use there, without litellm's per-call bookkeeping.
Every request goes over the process-wide :class:`~agentrag.llm.transport.Transport`: one connection
pool, replica choice (a failing replica is cooled down), the server's concurrency limit, a
per-call timeout clamped to the run's deadline, and tenacity retries that fire only on
retryable failures (:func:`agentrag.errors.is_retryable`). Usage is counted on a
:class:`~agentrag.types.Usage` and on the run's meter (:func:`usage_scope`).

Example:
    >>> import asyncio
    >>> from agentrag.llm import LLMClient
    >>> from agentrag.settings import Settings
    >>> llm = LLMClient.from_settings(Settings.load())            # doctest: +SKIP
    >>> asyncio.run(llm.chat([{"role": "user", "content": "Hi"}])).text  # doctest: +SKIP
    'Hello! How can I help you today?'
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentrag._deadline import check, clamp
from agentrag.errors import LLMError, LLMOutputError, LLMServerError, LLMTimeoutError, LLMUnsupportedError
from agentrag.llm._litellm import litellm, price_self_hosted, translate, usage_of
from agentrag.llm.transport import (
    RetryPolicy,
    Transport,
    current_usage_scope,
    shared_transport,
    usage_scope,
)
from agentrag.settings import LLMEndpoint
from agentrag.types import Usage

if TYPE_CHECKING:
    from agentrag.settings import Settings

__all__ = [
    "Completion",
    "LLMClient",
    "Message",
    "TokenDistribution",
    "YesNo",
    "current_usage_scope",
    "usage_scope",
]

log = logging.getLogger(__name__)

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MISSING_LOGPROB = -10.0
"""Log-probability given to a candidate token absent from the top log-probs (Prism's rule)."""


@dataclass(frozen=True, kw_only=True)
class Completion:
    """One generated answer."""

    text: str
    """The generated text."""

    finish_reason: str | None
    """``stop``, ``length`` (hit max_tokens), ..."""

    prompt_tokens: int = 0
    """Tokens in the prompt."""

    completion_tokens: int = 0
    """Tokens generated."""

    model: str = ""
    """The model that answered."""


@dataclass(frozen=True, kw_only=True)
class YesNo:
    """A yes/no judgement read off the first generated token's log-probabilities."""

    p_yes: float
    """P(yes) / (P(yes) + P(no)) = sigmoid(logit)."""

    logit: float
    """logprob(yes) - logprob(no)."""

    logprob_yes: float
    """Log-probability of the yes tokens (``MISSING_LOGPROB`` when none was in the top-k)."""

    logprob_no: float
    """Log-probability of the no tokens."""

    @property
    def mass(self) -> float:
        """P(yes) + P(no) unnormalised: how much the model wanted to answer yes/no at all."""
        return math.exp(self.logprob_yes) + math.exp(self.logprob_no)


@dataclass(frozen=True, kw_only=True)
class TokenDistribution:
    """The top log-probabilities of the first generated token."""

    token: str
    """The token actually generated."""

    top: dict[str, float] = field(default_factory=dict)
    """Token text -> log-probability, for the top-k tokens the server returned."""

    def logprob(self, candidates: Iterable[str], *, exact: bool = False) -> float:
        """Log of the total probability of the candidate tokens.

        Args:
            candidates: Token texts, e.g. ``["yes"]``.
            exact: Match token text exactly. By default a top token matches a candidate when
                they are equal after stripping whitespace and lower-casing, so ``"Yes"`` and
                ``" yes"`` count for ``"yes"`` (their probabilities are summed).

        Returns:
            log(sum of matching probabilities), or ``MISSING_LOGPROB`` when none matches.
        """
        wanted = set(candidates) if exact else {c.strip().lower() for c in candidates}
        hits = [lp for tok, lp in self.top.items() if (tok if exact else tok.strip().lower()) in wanted]
        if not hits:
            return MISSING_LOGPROB
        peak = max(hits)
        return peak + math.log(sum(math.exp(lp - peak) for lp in hits))

    def yes_no(
        self, yes: Sequence[str] = ("yes",), no: Sequence[str] = ("no",), *, exact: bool = False
    ) -> YesNo:
        """P(yes) / (P(yes) + P(no)) from the first token (see :meth:`logprob` for matching)."""
        lp_yes = self.logprob(yes, exact=exact)
        lp_no = self.logprob(no, exact=exact)
        logit = lp_yes - lp_no
        return YesNo(p_yes=_sigmoid(logit), logit=logit, logprob_yes=lp_yes, logprob_no=lp_no)


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class LLMClient:
    """Async client for one model on one or more OpenAI-compatible servers.

    Args:
        endpoint: Model id, server URL(s), timeout, retry and concurrency settings.
        usage: A usage meter to add to (a fresh one by default); share one across clients to
            account a whole run.
        role: A label for logs (``generator``, ``reranker``, ...).
    """

    def __init__(
        self,
        endpoint: LLMEndpoint,
        *,
        usage: Usage | None = None,
        role: str = "llm",
        transport: Transport | None = None,
    ) -> None:
        if not endpoint.model or not endpoint.api_base:
            raise LLMError(
                f"{role} endpoint needs a model and at least one api_base",
                hint="load it through Settings.load(), which fills in the local server's defaults",
            )
        self.endpoint = endpoint
        self.model: str = endpoint.model
        self.role = role
        self.usage = usage if usage is not None else Usage()
        self.transport = transport if transport is not None else shared_transport()
        self._policy = RetryPolicy.of(endpoint)
        self._api_key = endpoint.api_key.get_secret_value() if endpoint.api_key else "EMPTY"
        self._provider: str | None = None
        self._served_model = self.model
        """The model's name on its server (``hosted_vllm/x`` -> ``x``), set with the provider."""

    @classmethod
    def from_settings(
        cls, settings: Settings, role: str = "generator", *, usage: Usage | None = None
    ) -> LLMClient:
        """Build the client for ``settings.generator`` or ``settings.reranker``."""
        endpoint = getattr(settings, role)
        if not isinstance(endpoint, LLMEndpoint):
            raise LLMError(f"settings have no LLM endpoint named {role!r}", hint="use generator or reranker")
        return cls(endpoint, usage=usage, role=role)

    # ---------------------------------------------------------------- transport

    @property
    def _where(self) -> str:
        return ", ".join(self.endpoint.api_base)

    def _provider_name(self) -> str:
        if self._provider is None:
            try:
                served, provider, *_ = litellm().get_llm_provider(self.model)
                self._provider, self._served_model = str(provider), str(served)
            except Exception:  # an unknown provider is litellm's to report, at call time
                self._provider = ""
            if self._provider == "hosted_vllm":
                price_self_hosted(self.model)
        return self._provider

    def _client_kwargs(self, base: str, *, text: bool) -> dict[str, Any]:
        """The litellm ``client`` argument that sends this call through the shared pool."""
        provider = self._provider_name()
        if provider == "hosted_vllm" and not text:
            # litellm's own HTTP handler (chat on hosted_vllm) takes an AsyncHTTPHandler.
            return {"client": self.transport.litellm_handler()}
        if provider in {"hosted_vllm", "openai"}:
            # Text completions (and every openai/ call) go through the OpenAI SDK.
            return {"client": self.transport.openai_client(base, self._api_key)}
        return {}  # another provider: litellm's own cached clients

    def _call_kwargs(self, base: str, timeout: float, *, text: bool = False) -> dict[str, Any]:
        return {
            "model": self.model,
            "api_base": base,
            "api_key": self._api_key,
            "timeout": timeout,
            "num_retries": 0,  # retries are the transport's
            **self._client_kwargs(base, text=text),
        }

    def _text_completion(self, base: str, timeout: float, **params: Any) -> Awaitable[Any]:
        """One raw text completion (``/v1/completions``) at ``base``: the call, not yet awaited.

        On an OpenAI-compatible server (``hosted_vllm/``, ``openai/``) it goes straight to the
        OpenAI SDK client over the shared pool: the client litellm itself would call there,
        with the same request. litellm's wrapper around it (a logging object, two cost
        calculations, parameter mapping) cost ~1.5 ms of event-loop CPU a call, and a
        reranker's fan-out sends 20-30 of these at once, so the whole fan-out waited ~40 ms
        for it (measured with bench/graph_overhead.py). Other providers go through litellm.
        """
        provider = self._provider_name()
        if provider in {"hosted_vllm", "openai"}:
            return self._sdk_text_completion(base, timeout, params)
        return litellm().atext_completion(**self._call_kwargs(base, timeout, text=True), **params)  # type: ignore[no-any-return]

    async def _sdk_text_completion(self, base: str, seconds: float, params: dict[str, Any]) -> Any:
        sdk = self.transport.openai_client(base, self._api_key)
        response = await sdk.completions.create(model=self._served_model, timeout=seconds, **params)
        if not getattr(response, "choices", None):
            # The SDK hands back a 200 body that is not JSON as a string (a proxy's error page).
            raise LLMServerError(
                f"{base} answered a completion for {self.model} with something that is not one: "
                f"{str(response)[:200]!r}",
                status=200,
                endpoint=base,
                model=self.model,
            )
        return response

    async def _with_retries(self, call: Callable[[str, float], Awaitable[T]]) -> T:
        """``call(base, timeout)`` through the shared transport: replica, slot, deadline, retries."""
        return await self.transport.run(
            call,
            bases=self.endpoint.api_base,
            timeout_s=self.endpoint.timeout_s,
            policy=self._policy,
            limit=self.endpoint.max_concurrency,
            translate=lambda exc, base: translate(exc, endpoint=base, model=self.model),
            usage=self.usage,
            what=f"{self.role} ({self.model})",
        )

    def _params(
        self, max_tokens: int | None, temperature: float | None, extra: dict[str, Any]
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "max_tokens": max_tokens or self.endpoint.max_tokens,
            "temperature": self.endpoint.temperature if temperature is None else temperature,
        }
        params.update({k: v for k, v in extra.items() if v is not None})
        return params

    def _record(self, response: Any) -> tuple[int, int]:
        prompt_tokens, completion_tokens = usage_of(response)
        self._add_usage(prompt_tokens, completion_tokens)
        return prompt_tokens, completion_tokens

    def _add_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.transport.record(self.usage, self.model, prompt_tokens, completion_tokens)

    # ---------------------------------------------------------------- public API

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        response_format: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion:
        """A chat completion.

        Raises:
            LLMError: A subclass saying what failed (after retries, when retryable).
        """
        lm = litellm()
        params = self._params(
            max_tokens,
            temperature,
            {"stop": stop, "response_format": response_format, "extra_body": extra_body},
        )
        response = await self._with_retries(
            lambda base, timeout: lm.acompletion(
                messages=list(messages), **self._call_kwargs(base, timeout), **params
            )
        )
        prompt_tokens, completion_tokens = self._record(response)
        choice = response.choices[0]
        return Completion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
        )

    async def complete(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> Completion:
        """A raw text completion (``/v1/completions``): the prompt is sent as is, no chat template."""
        params = self._params(max_tokens, temperature, {"stop": stop, "extra_body": extra_body})
        response = await self._with_retries(
            lambda base, timeout: self._text_completion(base, timeout, prompt=prompt, **params)
        )
        prompt_tokens, completion_tokens = self._record(response)
        choice = response.choices[0]
        return Completion(
            text=choice.text or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            model=self.model,
        )

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: list[str] | None = None,
    ) -> AsyncIterator[str]:
        """Stream a chat completion as text deltas.

        Failures before the first token are retried like any call; after the first token a
        failure is raised (a half-delivered answer cannot be transparently restarted).
        """
        lm = litellm()
        params = self._params(
            max_tokens, temperature, {"stop": stop, "stream_options": {"include_usage": True}}
        )

        async def open_stream(base: str, seconds: float) -> tuple[Any, Any]:
            stream = await lm.acompletion(
                messages=list(messages), stream=True, **self._call_kwargs(base, seconds), **params
            )
            iterator = stream.__aiter__()
            first = await iterator.__anext__()  # connection problems surface here
            return iterator, first

        iterator, first = await self._with_retries(open_stream)
        prompt_tokens = completion_tokens = deltas = 0
        chunk: Any = first
        # An OpenAI-compatible stream always ends with a choice that carries a finish_reason; a
        # stream that stops without one (a 200 with a body that is not a completion, a cut
        # connection) is a failed call, never an empty answer.
        finished = False
        while True:
            if getattr(chunk, "usage", None) is not None:
                prompt_tokens, completion_tokens = usage_of(chunk)
            if chunk.choices:
                choice = chunk.choices[0]
                delta = choice.delta.content
                if delta:
                    deltas += 1
                    try:
                        yield delta
                    except GeneratorExit:
                        # The consumer stopped early (e.g. a repetition guard): the call still
                        # happened. The server's usage comes last, so count the deltas seen.
                        self._add_usage(prompt_tokens, completion_tokens or deltas)
                        raise
                finished = finished or bool(getattr(choice, "finish_reason", None))
            try:
                # Between chunks too, the run's deadline bounds the wait.
                wait = clamp(self.endpoint.timeout_s, f"{self.role} ({self.model}) stream")
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout=wait)
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                check(f"{self.role} ({self.model}) stream")  # the deadline cut it, not the server
                raise LLMTimeoutError(
                    f"{self.model} stopped streaming for {self.endpoint.timeout_s:g}s",
                    endpoint=self._where,
                    model=self.model,
                ) from exc
            except Exception as exc:
                raise translate(exc, endpoint=self._where, model=self.model) from exc
        self._add_usage(prompt_tokens, completion_tokens)
        if not finished:
            raise LLMOutputError(
                f"{self.model} at {self._where} ended its stream without finishing a completion",
                hint="the server answered with something that is not an OpenAI-compatible stream; "
                "check that the api_base points at the model server (`agentrag models status`)",
                endpoint=self._where,
                model=self.model,
            )

    async def structured(
        self,
        messages: Sequence[Message],
        output: type[M],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> M:
        """Ask for an answer that validates against a pydantic model.

        The model's JSON schema goes to the server as ``response_format`` (vLLM constrains
        decoding to it). The answer is parsed defensively (code fences and surrounding prose
        are tolerated) and validated. If it still fails, the model is shown its answer and the
        error and asked again, up to ``repair_attempts`` times.

        Raises:
            LLMOutputError: No valid answer after the repair attempts. ``details["raw"]``
                holds the last answer.
            LLMUnsupportedError: The server refused constrained decoding.
        """
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": output.__name__, "schema": output.model_json_schema(), "strict": True},
        }
        convo = list(messages)
        last_error = ""
        raw = ""
        for attempt in range(self.endpoint.repair_attempts + 1):
            result = await self.chat(
                convo, max_tokens=max_tokens, temperature=temperature, response_format=response_format
            )
            raw = result.text
            try:
                return output.model_validate(parse_json_object(raw))
            except (ValueError, ValidationError) as exc:
                last_error = _short_error(exc)
                if result.finish_reason == "length":
                    last_error = f"the answer was cut off at max_tokens ({last_error})"
                log.info("%s: structured answer attempt %d invalid: %s", self.role, attempt + 1, last_error)
                convo = [
                    *messages,
                    {"role": "assistant", "content": raw},
                    {
                        "role": "user",
                        "content": f"That is not valid: {last_error}. Reply again with only the "
                        f"JSON object, matching the schema exactly.",
                    },
                ]
        raise LLMOutputError(
            f"{self.model} gave no valid {output.__name__} after "
            f"{self.endpoint.repair_attempts + 1} attempt(s): {last_error}",
            raw=raw[:2000],
        )

    async def first_token(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        top_logprobs: int = 20,
    ) -> TokenDistribution:
        """The distribution of the first generated token (one token, greedy, with logprobs).

        Give chat ``messages`` (the server applies the chat template) or a raw ``prompt``
        (sent as is to ``/v1/completions``; use it for formats a model expects verbatim).

        Raises:
            LLMUnsupportedError: The server returned no log-probabilities.
        """
        if (messages is None) == (prompt is None):
            raise ValueError("give exactly one of messages or prompt")
        lm = litellm()
        if messages is not None:
            response = await self._with_retries(
                lambda base, timeout: lm.acompletion(
                    **self._call_kwargs(base, timeout),
                    messages=list(messages),
                    max_tokens=1,
                    temperature=0.0,
                    logprobs=True,
                    top_logprobs=top_logprobs,
                )
            )
            self._record(response)
            content = getattr(response.choices[0], "logprobs", None)
            items = getattr(content, "content", None) if content is not None else None
            if not items:
                raise self._no_logprobs()
            first = items[0]
            top = {t.token: float(t.logprob) for t in (first.top_logprobs or [])}
            top.setdefault(first.token, float(first.logprob))
            return TokenDistribution(token=first.token, top=top)

        assert prompt is not None
        response = await self._with_retries(
            lambda base, timeout: self._text_completion(
                base, timeout, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=top_logprobs
            )
        )
        self._record(response)
        lp = getattr(response.choices[0], "logprobs", None)
        tops = getattr(lp, "top_logprobs", None) if lp is not None else None
        if not tops:
            raise self._no_logprobs()
        top = {str(k): float(v) for k, v in tops[0].items()}
        token = (getattr(lp, "tokens", None) or [response.choices[0].text])[0]
        return TokenDistribution(token=token, top=top)

    async def yes_no(
        self,
        messages: Sequence[Message] | None = None,
        *,
        prompt: str | None = None,
        yes: Sequence[str] = ("yes",),
        no: Sequence[str] = ("no",),
        exact: bool = False,
    ) -> YesNo:
        """P(yes)/(P(yes)+P(no)) at the first generated token: one token of generation.

        The prompt must ask for a yes/no answer first. Candidates absent from the top-20
        count as log-probability -10. See :meth:`TokenDistribution.logprob` for matching.
        """
        dist = await self.first_token(messages, prompt=prompt)
        return dist.yes_no(yes, no, exact=exact)

    async def served_models(self) -> dict[str, list[str]]:
        """``{api_base: [served model ids]}`` from each server's ``/v1/models`` (for status checks)."""
        import httpx

        out: dict[str, list[str]] = {}
        headers = {}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key.get_secret_value()}"
        client = self.transport.client()
        for base in self.endpoint.api_base:
            try:
                timeout = clamp(min(self.endpoint.timeout_s, 10.0), "listing served models")
                response = await client.get(f"{base}/models", headers=headers, timeout=timeout)
                response.raise_for_status()
                out[base] = [m["id"] for m in response.json().get("data", [])]
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise translate(exc, endpoint=base, model=self.model) from exc
        return out

    async def aclose(self) -> None:
        """Close the shared transport's pool on the running loop (reopened by the next call).

        While an agent on this loop holds the pool (:meth:`Transport.hold`) it stays open: the
        last agent to release it closes it, so a client closing cannot cut another's call.
        """
        from agentrag.llm.transport import aclose_shared

        if self.transport is shared_transport():
            if self.transport.holders():
                return
            await aclose_shared()
        else:
            await self.transport.aclose()

    def _no_logprobs(self) -> LLMUnsupportedError:
        return LLMUnsupportedError(
            f"{self.model} at {self._where} returned no log-probabilities",
            hint="yes/no scoring needs a server that returns logprobs (vLLM does)",
            endpoint=self._where,
            model=self.model,
        )


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_json_object(text: str) -> Any:
    """Parse the JSON value in a model's answer, tolerating code fences and prose around it.

    Raises:
        ValueError: No JSON value could be read.
    """
    stripped = _FENCE.sub("", text.strip()).strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(stripped):
        if ch in "{[":
            try:
                value, _ = decoder.raw_decode(stripped[i:])
                return value
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON object in the answer: {text[:120]!r}")


def _short_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:3]]
        return "; ".join(parts)
    return str(exc)[:200]
