"""The one HTTP transport under every model call: one pool, one retry policy, one limit per endpoint.

litellm (chat; text completions to other providers), the OpenAI SDK (text completions to an
OpenAI-compatible server, see :class:`~agentrag.llm.client.LLMClient`),
:class:`~agentrag.llm.vllm_api.VLLMApi` (vLLM's own endpoints) and the remote embedder all send
their requests through the process-wide :class:`Transport` returned by :func:`shared_transport`:

- **one connection pool**: one ``httpx.AsyncClient`` per event loop (asyncio sockets belong to
  one loop; in practice a process has one, the background loop of :mod:`agentrag._async`).
  litellm gets it through its supported client hooks: an ``AsyncHTTPHandler`` whose ``client``
  is our pool for ``hosted_vllm`` chat, an ``openai.AsyncOpenAI(http_client=pool,
  max_retries=0)`` per server for text completions and ``openai/`` models. Without it litellm
  builds a new OpenAI client (and TLS context) for every text completion and retries twice
  inside the SDK, under our own retries;
- **one retry policy**: tenacity on :func:`agentrag.errors.is_retryable`, with jittered
  exponential back-off, that never sleeps or starts an attempt past the run's deadline
  (:mod:`agentrag._deadline`); each attempt's timeout is clamped to the time left;
- **one concurrency limit per endpoint** (server base URL), shared by every client that talks
  to that server, and replica choice (fewest requests in flight, a failing replica cooled down);
- **one usage ledger**: :meth:`Transport.record` adds an answered call to the caller's meter,
  to the per-run meter of :func:`usage_scope` (what run budgets count) and to the transport's
  own process-wide :attr:`Transport.ledger`.

Example:
    >>> from agentrag.llm.transport import shared_transport
    >>> shared_transport() is shared_transport()
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity import wait_random_exponential as _wait_random_exponential
from tenacity.stop import stop_base

from agentrag._deadline import clamp, remaining
from agentrag.errors import AgentragError, DeadlineExceededError, LLMTimeoutError, is_retryable
from agentrag.types import Usage

__all__ = [
    "RetryPolicy",
    "Transport",
    "current_usage_scope",
    "shared_transport",
    "usage_scope",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

_RUN_USAGE: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("agentrag_run_usage", default=None)


@contextlib.contextmanager
def usage_scope(usage: Usage) -> Iterator[Usage]:
    """Count every model call made in this context (and tasks started from it) on ``usage`` too.

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


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed request is tried again."""

    max_retries: int = 3
    """Extra attempts after a retryable failure (connection, timeout, 429, 5xx)."""

    backoff_initial_s: float = 0.5
    """Scale of the jittered exponential back-off."""

    backoff_max_s: float = 8.0
    """Longest wait between attempts."""

    @classmethod
    def of(cls, endpoint: Any) -> RetryPolicy:
        """The policy of an :class:`~agentrag.settings.LLMEndpoint` (or anything with its fields)."""
        return cls(
            max_retries=int(endpoint.max_retries),
            backoff_initial_s=float(endpoint.backoff_initial_s),
            backoff_max_s=float(endpoint.backoff_max_s),
        )


class _StopAtDeadline(stop_base):
    """Stop when the back-off alone would reach the run's deadline (evaluated after the wait is drawn)."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = remaining()
        return left is not None and left <= retry_state.upcoming_sleep


Translate = Callable[[BaseException, str], AgentragError]
"""Maps a foreign exception raised while talking to ``base`` into our error tree."""


@dataclass
class _LoopState:
    client: Any
    limits: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    litellm_handler: Any = None
    openai_clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    holders: int = 0
    """Agents using this pool (:meth:`Transport.hold`); the last to release closes it."""


class Transport:
    """A shared async HTTP transport (see the module docstring).

    Args:
        max_connections: Pool size over all servers (per-endpoint limits apply below it).
        max_keepalive: Idle connections kept open for reuse.
        cooldown_s: How long a replica that failed is skipped while another one is healthy.
    """

    def __init__(
        self, *, max_connections: int = 512, max_keepalive: int = 128, cooldown_s: float = 5.0
    ) -> None:
        self.max_connections = max_connections
        self.max_keepalive = max_keepalive
        self.cooldown_s = cooldown_s
        self.ledger = Usage()
        """Every answered and failed request through this transport, whoever made it."""
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._cooling: dict[str, float] = {}
        self._turn = itertools.count()

    # ---------------------------------------------------------------- the pool

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None or state.client.is_closed:
            state = _LoopState(client=self._new_client())
            self._loops[loop] = state
        return state

    def _new_client(self) -> Any:
        import httpx

        transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=self.max_keepalive,
                keepalive_expiry=30.0,
            )
        )
        _tune_pool(transport)
        return httpx.AsyncClient(
            transport=transport,
            # Each request passes its own (deadline-clamped) timeout; this is only the fallback.
            timeout=httpx.Timeout(120.0, pool=None),
            follow_redirects=True,
        )

    def client(self) -> Any:
        """The ``httpx.AsyncClient`` (the connection pool) of the running event loop."""
        return self._state().client

    def connection_count(self) -> int:
        """Connections open in the running loop's pool (idle or busy); 0 before the first request."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None or state.client.is_closed:
            return 0
        pool = getattr(getattr(state.client, "_transport", None), "_pool", None)
        return len(getattr(pool, "connections", ()))

    def limiter(self, base: str, limit: int) -> asyncio.Semaphore:
        """The concurrency limit of one server, shared by every client that calls it.

        The first caller on a loop sets its size (the endpoint's ``max_concurrency``).
        """
        limits = self._state().limits
        sem = limits.get(base)
        if sem is None:
            sem = limits[base] = asyncio.Semaphore(max(1, limit))
        return sem

    def litellm_handler(self) -> Any:
        """A litellm ``AsyncHTTPHandler`` that sends through this loop's pool (``hosted_vllm`` chat)."""
        state = self._state()
        if state.litellm_handler is None:
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            # The handler builds a client of its own in __init__; give it the pool's transport so
            # that throwaway opens no sockets, then point it at the pool itself.
            handler = AsyncHTTPHandler(transport=state.client._transport)
            handler.client = state.client
            state.litellm_handler = handler
        return state.litellm_handler

    def openai_client(self, base: str, api_key: str) -> Any:
        """An ``openai.AsyncOpenAI`` for ``base`` over this loop's pool, with SDK retries off."""
        state = self._state()
        key = (base, api_key)
        sdk = state.openai_clients.get(key)
        if sdk is None:
            import openai

            sdk = openai.AsyncOpenAI(base_url=base, api_key=api_key, http_client=state.client, max_retries=0)
            state.openai_clients[key] = sdk
        return sdk

    # ---------------------------------------------------------------- replicas

    def pick(self, bases: Sequence[str]) -> str:
        """The replica for the next attempt: fewest in flight among those not cooling down."""
        if len(bases) == 1:
            return bases[0]
        now = time.monotonic()
        with self._lock:
            healthy = [b for b in bases if self._cooling.get(b, 0.0) <= now] or list(bases)
            start = next(self._turn) % len(healthy)
            rotated = healthy[start:] + healthy[:start]  # ties go round-robin
            return min(rotated, key=lambda b: self._in_flight.get(b, 0))

    def _cool(self, base: str) -> None:
        with self._lock:
            self._cooling[base] = time.monotonic() + self.cooldown_s

    # ---------------------------------------------------------------- the ledger

    def record(
        self, usage: Usage | None, model: str, prompt_tokens: int, completion_tokens: int, *, run: bool = True
    ) -> None:
        """Count one answered call on ``usage``, the run's meter (unless ``run=False``) and the ledger."""
        for meter in self._meters(usage, run=run):
            meter.add(model, prompt_tokens, completion_tokens)

    def record_failure(self, usage: Usage | None, *, run: bool = True) -> None:
        """Count one failed attempt the same way."""
        for meter in self._meters(usage, run=run):
            meter.add_failure()

    def _meters(self, usage: Usage | None, *, run: bool = True) -> list[Usage]:
        meters = [self.ledger]
        if usage is not None:
            meters.append(usage)
        scope = _RUN_USAGE.get() if run else None
        if scope is not None and all(scope is not m for m in meters):
            meters.append(scope)
        return meters

    # ---------------------------------------------------------------- requests

    async def run(
        self,
        call: Callable[[str, float], Awaitable[T]],
        *,
        bases: Sequence[str],
        timeout_s: float,
        policy: RetryPolicy,
        limit: int,
        translate: Translate,
        usage: Usage | None = None,
        what: str = "model call",
        count_in_run: bool = True,
    ) -> T:
        """Run ``call(base, timeout)`` with a replica, a concurrency slot, a deadline and retries.

        Args:
            call: One attempt against server ``base`` that must finish within ``timeout`` seconds.
            bases: The replicas' base URLs.
            timeout_s: Per-attempt timeout before the deadline clamps it.
            policy: Retry policy.
            limit: The endpoint's concurrency limit (see :meth:`limiter`).
            translate: Maps foreign exceptions to our error tree.
            usage: The caller's meter; failed attempts are counted there (answered calls are
                counted by the caller with :meth:`record`, which knows the tokens).
            what: Names the call in errors and logs.
            count_in_run: Count failed attempts on the run's meter too (not for embeddings,
                which run budgets do not count).

        Raises:
            DeadlineExceededError: The run's deadline passed before an attempt could finish.
            AgentragError: The last attempt's error, translated.
        """

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: attempt %d failed (%s); retrying in %.2fs",
                what,
                state.attempt_number,
                getattr(exc, "code", type(exc).__name__),
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.max_retries + 1) | _StopAtDeadline(),
            wait=_wait_random_exponential(multiplier=policy.backoff_initial_s, max=policy.backoff_max_s),
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(
                    call,
                    bases=bases,
                    timeout_s=timeout_s,
                    limit=limit,
                    translate=translate,
                    usage=usage,
                    what=what,
                    count_in_run=count_in_run,
                )
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    async def _attempt(
        self,
        call: Callable[[str, float], Awaitable[T]],
        *,
        bases: Sequence[str],
        timeout_s: float,
        limit: int,
        translate: Translate,
        usage: Usage | None,
        what: str,
        count_in_run: bool = True,
    ) -> T:
        base = self.pick(bases)
        clamp(timeout_s, what)  # no time left: do not even queue for a slot
        async with self.limiter(base, limit):
            timeout = clamp(timeout_s, what)  # waiting for the slot took some of it
            left = remaining()
            # The call passes `timeout` to its HTTP client; this outer bound also covers
            # connection setup and library bookkeeping, and never reaches past the deadline.
            hard = timeout + 1.0 if left is None else min(timeout + 1.0, left)
            with self._lock:
                self._in_flight[base] = self._in_flight.get(base, 0) + 1
            try:
                return await asyncio.wait_for(call(base, timeout), timeout=hard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.record_failure(usage, run=count_in_run)
                err = self._failure(exc, base, timeout, translate, what)
                if err.retryable and len(bases) > 1:
                    self._cool(base)
                raise err from exc
            finally:
                with self._lock:
                    self._in_flight[base] -= 1

    @staticmethod
    def _failure(exc: Exception, base: str, timeout: float, translate: Translate, what: str) -> AgentragError:
        if isinstance(exc, TimeoutError):
            err: AgentragError = LLMTimeoutError(
                f"{what} at {base} did not answer in {timeout:.3g}s", endpoint=base
            )
        else:
            err = exc if isinstance(exc, AgentragError) else translate(exc, base)
        left = remaining()
        if isinstance(err, LLMTimeoutError) and left is not None and left <= 0.05:
            # The attempt was cut by the run's deadline, not by the server's own timeout.
            return DeadlineExceededError(
                f"{what} at {base} was still running when the run's wall time (max_wall_s) ran out",
                endpoint=base,
            )
        return err

    # ---------------------------------------------------------------- lifecycle

    def hold(self) -> None:
        """Count one more user of the running loop's pool (an agent that runs on this loop).

        Agents on one loop share the pool; one agent closing must not cut the others' calls
        in flight (a stream dies mid-answer), so the pool closes when the last holder releases.
        """
        self._state().holders += 1

    def holders(self) -> int:
        """Users holding the running loop's pool."""
        state = self._loops.get(asyncio.get_running_loop())
        return 0 if state is None else state.holders

    async def release(self) -> bool:
        """One holder is done; the last one closes the running loop's pool.

        Returns:
            Whether the pool was closed (no holder is left).
        """
        state = self._loops.get(asyncio.get_running_loop())
        if state is None:
            return True
        state.holders = max(0, state.holders - 1)
        if state.holders:
            return False
        await self.aclose()
        return True

    async def aclose(self) -> None:
        """Close the running loop's pool (a later call opens a new one)."""
        loop = asyncio.get_running_loop()
        state = self._loops.pop(loop, None)
        if state is not None:
            await state.client.aclose()


def _tune_pool(transport: Any) -> None:
    """Make httpcore's per-request pool upkeep cheap (a no-op if httpx/httpcore change shape).

    Whenever a request starts or ends, httpcore's pool sweeps its connections. Two parts of
    that sweep grow with the connections a reranker's fan-out leaves open (20-30), and both ran
    on the event loop between the fan-out's requests:

    - it asks every idle connection whether the server closed it
      (``get_extra_info("is_readable")``). Through anyio each ask rebuilds the socket's
      attribute table (a ``getpeername`` call and several lambdas): ~0.4 ms of the loop's time
      per request with 20 connections. The raw socket of a connection never changes, so it is
      looked up once;
    - httpcore 1.0's keep-alive check counts the pool's connections with a list built for every
      idle connection: quadratic, ~0.3 ms per sweep with 25 connections (195,620 ``is_idle``
      calls in four runs of the rag graph; encode/httpcore#1035 proposes the same fix). The
      pool's class is swapped for one with the same sweep, linear (:func:`_linear_pool`).
    """
    pool = getattr(transport, "_pool", None)
    if pool is None or not hasattr(pool, "_network_backend"):
        return
    try:
        import httpcore
        from httpcore._backends.anyio import AnyIOBackend, AnyIOStream
        from httpcore._utils import is_socket_readable
    except ImportError:  # pragma: no cover - another httpcore layout: keep its default
        return

    class _Stream(AnyIOStream):
        _raw: Any = None

        def get_extra_info(self, info: str) -> Any:
            if info == "is_readable":
                if self._raw is None:
                    self._raw = super().get_extra_info("socket")
                return is_socket_readable(self._raw)
            return super().get_extra_info(info)

    class _Backend(AnyIOBackend):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> Any:
            stream = await super().connect_tcp(*args, **kwargs)
            inner = getattr(stream, "_stream", None)
            return stream if inner is None else _Stream(inner)

    pool._network_backend = _Backend()
    # Only the layout the linear sweep was written against (1.0.x); another version keeps its own.
    version = str(getattr(httpcore, "__version__", ""))
    if type(pool) is httpcore.AsyncConnectionPool and version.startswith("1.0."):
        pool.__class__ = _linear_pool()


@functools.cache
def _linear_pool() -> type:
    """The ``AsyncConnectionPool`` of httpcore 1.0 with its upkeep sweep made linear, nothing else changed."""
    import httpcore

    class LinearPool(httpcore.AsyncConnectionPool):
        def _assign_requests_to_connections(self) -> list[Any]:
            # httpcore 1.0.9's method (BSD-3-Clause, encode/httpcore) with one line changed: its
            # keep-alive test, ``len([c.is_idle() for c in self._connections]) > max_keepalive``,
            # is ``len(self._connections) > max_keepalive`` computed by a loop per connection.
            # The same test is kept (total connections, not idle ones), without the inner loop.
            closing: list[Any] = []
            for connection in list(self._connections):
                if connection.is_closed():
                    self._connections.remove(connection)
                elif connection.has_expired() or (
                    connection.is_idle() and len(self._connections) > self._max_keepalive_connections
                ):
                    self._connections.remove(connection)
                    closing.append(connection)

            for pool_request in [request for request in self._requests if request.is_queued()]:
                origin = pool_request.request.url.origin
                available = next(
                    (c for c in self._connections if c.can_handle_request(origin) and c.is_available()), None
                )
                if available is not None:
                    pool_request.assign_to_connection(available)
                elif len(self._connections) < self._max_connections:
                    connection = self.create_connection(origin)
                    self._connections.append(connection)
                    pool_request.assign_to_connection(connection)
                else:
                    idle = next((c for c in self._connections if c.is_idle()), None)
                    if idle is not None:
                        self._connections.remove(idle)
                        closing.append(idle)
                        connection = self.create_connection(origin)
                        self._connections.append(connection)
                        pool_request.assign_to_connection(connection)
            return closing

    return LinearPool


_shared: Transport | None = None
_shared_lock = threading.Lock()


def shared_transport() -> Transport:
    """The process-wide transport every model client uses by default."""
    global _shared  # noqa: PLW0603 - one transport per process, created on first use
    with _shared_lock:
        if _shared is None:
            _shared = Transport()
        return _shared


async def aclose_shared() -> None:
    """Close the shared transport's pool on the running loop, and any client litellm cached."""
    if _shared is not None:
        await _shared.aclose()
    from agentrag.llm import _litellm

    if _litellm._module is not None:
        # Clients litellm built on its own (a provider we do not hand a client to).
        from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

        with contextlib.suppress(Exception):
            await close_litellm_async_clients()  # type: ignore[no-untyped-call]
