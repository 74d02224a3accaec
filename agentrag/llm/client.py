"""An async client for OpenAI-compatible model servers (vLLM by default), through litellm.

One :class:`LLMClient` talks to one model, served by one or more replicas. Every request goes
through litellm's Router (so replicas are load-balanced and a failing one is cooled down), a
concurrency limit, a per-call timeout, and tenacity retries that fire only on retryable
failures (:func:`agentrag.errors.is_retryable`). Usage is counted on a :class:`~agentrag.types.Usage`.

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
import contextlib
import contextvars
import json
import logging
import math
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from agentrag.errors import LLMError, LLMOutputError, LLMTimeoutError, LLMUnsupportedError, is_retryable
from agentrag.llm._litellm import litellm, translate, usage_of
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

_RUN_USAGE: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("agentrag_run_usage", default=None)


@contextlib.contextmanager
def usage_scope(usage: Usage) -> Iterator[Usage]:
    """Count every LLM call made in this context (and tasks started from it) on ``usage`` too.

    Each client keeps its own meter; a scope adds a per-run one, so one agent serving several
    questions at once still reports exact usage per answer (asyncio tasks inherit the scope).
    """
    token = _RUN_USAGE.set(usage)
    try:
        yield usage
    finally:
        _RUN_USAGE.reset(token)


def current_usage_scope() -> Usage | None:
    """The per-run meter of the current context, if a :func:`usage_scope` is active."""
    return _RUN_USAGE.get()


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

    def __init__(self, endpoint: LLMEndpoint, *, usage: Usage | None = None, role: str = "llm") -> None:
        if not endpoint.model or not endpoint.api_base:
            raise LLMError(
                f"{role} endpoint needs a model and at least one api_base",
                hint="load it through Settings.load(), which fills in the local server's defaults",
            )
        self.endpoint = endpoint
        self.model: str = endpoint.model
        self.role = role
        self.usage = usage if usage is not None else Usage()
        self._group = f"agentrag-{role}"
        self._router: Any = None
        # asyncio primitives bind to one event loop; keep one semaphore per loop.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

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

    def _get_router(self) -> Any:
        if self._router is None:
            lm = litellm()
            key = self.endpoint.api_key.get_secret_value() if self.endpoint.api_key else "EMPTY"
            deployments = [
                {
                    "model_name": self._group,
                    "litellm_params": {
                        "model": self.endpoint.model,
                        "api_base": base,
                        "api_key": key,
                        "timeout": self.endpoint.timeout_s,
                    },
                }
                for base in self.endpoint.api_base
            ]
            several = len(deployments) > 1
            self._router = lm.Router(
                model_list=deployments,
                # Retries are ours (tenacity, on our retryability rule); the Router only routes.
                num_retries=0,
                timeout=self.endpoint.timeout_s,
                # least-busy keeps in-flight requests even across replicas; with one server
                # there is nothing to choose.
                routing_strategy="least-busy" if several else "simple-shuffle",
                # A replica that fails is skipped for a while so retries land on a healthy one.
                allowed_fails=1 if several else 1000,
                cooldown_time=5.0 if several else 0.0,
            )
        return self._router

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            # max_concurrency is per server; the Router spreads requests over the replicas.
            sem = asyncio.Semaphore(self.endpoint.max_concurrency * len(self.endpoint.api_base))
            self._semaphores[loop] = sem
        return sem

    def _retrying(self) -> AsyncRetrying:
        ep = self.endpoint

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                self.role,
                state.attempt_number,
                getattr(exc, "code", type(exc).__name__),
                state.next_action.sleep if state.next_action else 0.0,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(ep.max_retries + 1),
            wait=wait_random_exponential(multiplier=ep.backoff_initial_s, max=ep.backoff_max_s),
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )

    async def _attempt(self, call: Callable[[], Awaitable[T]]) -> T:
        """One attempt: concurrency slot, hard timeout, error translation, failure count."""
        async with self._semaphore():
            try:
                # litellm has its own timeout; this one also covers connection setup and the
                # Router's bookkeeping, so nothing can hang past the configured limit.
                return await asyncio.wait_for(call(), timeout=self.endpoint.timeout_s + 1.0)
            except asyncio.CancelledError:
                raise
            except TimeoutError as exc:
                self._add_failure()
                raise LLMTimeoutError(
                    f"{self.model} at {self._where} did not answer in {self.endpoint.timeout_s:g}s",
                    endpoint=self._where,
                    model=self.model,
                ) from exc
            except Exception as exc:
                self._add_failure()
                raise translate(exc, endpoint=self._where, model=self.model) from exc

    async def _with_retries(self, call: Callable[[], Awaitable[T]]) -> T:
        async for attempt in self._retrying():
            with attempt:
                return await self._attempt(call)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

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
        self.usage.add(self.model, prompt_tokens, completion_tokens)
        run = _RUN_USAGE.get()
        if run is not None and run is not self.usage:
            run.add(self.model, prompt_tokens, completion_tokens)

    def _add_failure(self) -> None:
        self.usage.add_failure()
        run = _RUN_USAGE.get()
        if run is not None and run is not self.usage:
            run.add_failure()

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
        router = self._get_router()
        params = self._params(
            max_tokens,
            temperature,
            {"stop": stop, "response_format": response_format, "extra_body": extra_body},
        )
        response = await self._with_retries(
            lambda: router.acompletion(model=self._group, messages=list(messages), **params)
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
        router = self._get_router()
        params = self._params(max_tokens, temperature, {"stop": stop, "extra_body": extra_body})
        response = await self._with_retries(
            lambda: router.atext_completion(model=self._group, prompt=prompt, **params)
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
        router = self._get_router()
        params = self._params(
            max_tokens, temperature, {"stop": stop, "stream_options": {"include_usage": True}}
        )

        async def open_stream() -> tuple[Any, Any]:
            stream = await router.acompletion(
                model=self._group, messages=list(messages), stream=True, **params
            )
            iterator = stream.__aiter__()
            first = await iterator.__anext__()  # connection problems surface here
            return iterator, first

        iterator, first = await self._with_retries(open_stream)
        prompt_tokens = completion_tokens = deltas = 0
        chunk: Any = first
        while True:
            if getattr(chunk, "usage", None) is not None:
                prompt_tokens, completion_tokens = usage_of(chunk)
            if chunk.choices:
                delta = chunk.choices[0].delta.content
                if delta:
                    deltas += 1
                    try:
                        yield delta
                    except GeneratorExit:
                        # The consumer stopped early (e.g. a repetition guard): the call still
                        # happened. The server's usage comes last, so count the deltas seen.
                        self._add_usage(prompt_tokens, completion_tokens or deltas)
                        raise
            try:
                chunk = await asyncio.wait_for(iterator.__anext__(), timeout=self.endpoint.timeout_s)
            except StopAsyncIteration:
                break
            except TimeoutError as exc:
                raise LLMTimeoutError(
                    f"{self.model} stopped streaming for {self.endpoint.timeout_s:g}s",
                    endpoint=self._where,
                    model=self.model,
                ) from exc
            except Exception as exc:
                raise translate(exc, endpoint=self._where, model=self.model) from exc
        self._add_usage(prompt_tokens, completion_tokens)

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
        router = self._get_router()
        if messages is not None:
            response = await self._with_retries(
                lambda: router.acompletion(
                    model=self._group,
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
            lambda: router.atext_completion(
                model=self._group, prompt=prompt, max_tokens=1, temperature=0.0, logprobs=top_logprobs
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
        async with httpx.AsyncClient(timeout=min(self.endpoint.timeout_s, 10.0)) as client:
            for base in self.endpoint.api_base:
                try:
                    response = await client.get(f"{base}/models", headers=headers)
                    response.raise_for_status()
                    out[base] = [m["id"] for m in response.json().get("data", [])]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    raise translate(exc, endpoint=base, model=self.model) from exc
        return out

    async def aclose(self) -> None:
        """Close pooled HTTP sessions (litellm keeps them process-wide)."""
        if self._router is not None:
            from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

            await close_litellm_async_clients()  # type: ignore[no-untyped-call]

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
