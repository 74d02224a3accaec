"""One error tree for agentrag.

Every error carries a stable ``code`` (for scripts and logs), a ``message`` that says what went
wrong, and a ``hint`` that says what to do about it. :func:`is_retryable` is the single predicate
that the retry machinery (tenacity) consults: only transient transport failures are retried,
never a request the server rejected or an output the model got wrong.

Example:
    >>> from agentrag.errors import LLMTimeoutError, is_retryable
    >>> err = LLMTimeoutError("no answer in 5 s", hint="raise llm timeout_s")
    >>> err.code, is_retryable(err)
    ('llm.timeout', True)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AgentragError",
    "BudgetExhaustedError",
    "ConfigError",
    "DeadlineExceededError",
    "EmbedderMismatchError",
    "EmbeddingError",
    "EvalDataError",
    "GraphSpecError",
    "IngestError",
    "InvalidArgumentError",
    "KBBusyError",
    "KBNotFoundError",
    "LLMBadRequestError",
    "LLMConnectionError",
    "LLMError",
    "LLMOutputError",
    "LLMRateLimitError",
    "LLMServerError",
    "LLMTimeoutError",
    "LLMUnsupportedError",
    "ModelServerError",
    "ModelVerificationError",
    "PromptError",
    "RerankError",
    "RetrievalError",
    "StoreError",
    "is_retryable",
]


class AgentragError(Exception):
    """Base of every error agentrag raises on purpose.

    Attributes:
        code: Stable dotted identifier, e.g. ``"llm.timeout"``. Safe to match on in scripts.
        message: What went wrong, in one sentence.
        hint: What the user can do about it (may be empty).
        details: Structured context (endpoint, attempt count, offending value, ...).
    """

    code: ClassVar[str] = "agentrag.error"
    retryable: ClassVar[bool] = False
    default_hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.details: dict[str, Any] = details

    def __str__(self) -> str:
        text = f"[{self.code}] {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (for ``--json`` output and run reports)."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "details": {
                k: repr(v) if not isinstance(v, str | int | float | bool) else v
                for k, v in self.details.items()
            },
        }


class ConfigError(AgentragError):
    """Settings, a graph spec or a prompt could not be read or failed validation."""

    code = "config.invalid"
    default_hint = "check agentrag.toml and AGENTRAG_* environment variables"


class InvalidArgumentError(ConfigError):
    """A public API call got an argument of the wrong type or value (checked before any work)."""

    code = "api.invalid_argument"
    default_hint = "see the function's docstring for the accepted values"


class PromptError(ConfigError):
    """A prompt template is missing, malformed, or was rendered without a declared variable."""

    code = "prompt.invalid"
    default_hint = "check the template under prompts/ and the variables it declares"


class GraphSpecError(ConfigError):
    """A graph spec (YAML) is invalid: unknown node, unreachable node, unmapped route, ..."""

    code = "graph.invalid"
    default_hint = "fix the graph spec; `agentrag graph show NAME` validates and draws it"


class LLMError(AgentragError):
    """Base for failures talking to a language model server."""

    code = "llm.error"


class LLMConnectionError(LLMError):
    """The model server could not be reached."""

    code = "llm.connection"
    retryable = True
    default_hint = "is the model server running? `agentrag models status` / `agentrag models serve`"


class LLMTimeoutError(LLMError):
    """The model server did not answer within the per-call timeout."""

    code = "llm.timeout"
    retryable = True
    default_hint = "the server may be overloaded; raise the endpoint's timeout_s or lower max_concurrency"


class LLMRateLimitError(LLMError):
    """The server answered 429 Too Many Requests."""

    code = "llm.rate_limit"
    retryable = True
    default_hint = "lower the endpoint's max_concurrency or add replicas (api_base list)"


class LLMServerError(LLMError):
    """The server failed with a 5xx status."""

    code = "llm.server"
    retryable = True
    default_hint = "look at the model server's log (`agentrag models status` shows where it is)"


class LLMBadRequestError(LLMError):
    """The server rejected the request (4xx other than 429): wrong model name, too long, ..."""

    code = "llm.bad_request"
    default_hint = "check the model name (`agentrag models status`) and the prompt length"


class LLMUnsupportedError(LLMError):
    """The server cannot do what was asked (no logprobs, no guided decoding, ...)."""

    code = "llm.unsupported"
    default_hint = "serve the model with vLLM (guided decoding and logprobs are built in)"


class LLMOutputError(LLMError):
    """The model answered, but the answer could not be parsed or validated."""

    code = "llm.output"
    default_hint = "pass a JSON schema (constrained decoding) and enough max_tokens; small models need both"


class EvalDataError(ConfigError):
    """An evaluation data set (BEIR folder, HotpotQA file) is missing, malformed or empty."""

    code = "eval.data"
    default_hint = "check the --data path and the file format `agentrag eval <kind> --help` describes"


class EmbeddingError(AgentragError):
    """An embedding model could not be loaded or failed to embed."""

    code = "embed.error"
    default_hint = "check the embedder settings; models must be available offline"


class StoreError(AgentragError):
    """A vector store or lexical index failed."""

    code = "store.error"


class KBNotFoundError(StoreError):
    """A knowledge base that was asked for does not exist."""

    code = "kb.not_found"
    default_hint = (
        "`agentrag kb list` shows the knowledge bases; `agentrag ingest PATH --kb NAME` creates one"
    )


class KBBusyError(StoreError):
    """Another process is writing to the knowledge base."""

    code = "kb.busy"
    retryable = True
    default_hint = "wait for the other ingest to finish (one writer per knowledge base at a time)"


class EmbedderMismatchError(StoreError):
    """A knowledge base holds vectors of another embedding model (or other prefixes)."""

    code = "kb.embedder_mismatch"


class IngestError(AgentragError):
    """A document could not be loaded, chunked or written."""

    code = "ingest.error"


class RetrievalError(AgentragError):
    """Retrieval failed (bad query, missing index, ...)."""

    code = "retrieve.error"


class RerankError(AgentragError):
    """A reranker could not be built or could not score (model missing, bad output)."""

    code = "rerank.error"
    default_hint = "rerankers load models from local paths only; check the path or the served endpoint"


class ModelServerError(AgentragError):
    """Setting up, starting or stopping a local model server failed."""

    code = "models.server"
    default_hint = "see the server log named in the message; `agentrag models status` shows the state"


class ModelVerificationError(ModelServerError):
    """A downloaded model does not match the catalog (size or sha256): nothing was kept."""

    code = "models.verify"
    default_hint = "run `agentrag models setup --model NAME --force` to download it again"


class BudgetExhaustedError(AgentragError):
    """A run used up a budget (rounds, calls, tokens, wall time)."""

    code = "budget.exhausted"
    default_hint = "raise the budget in settings ([budgets]) or the graph spec"


class DeadlineExceededError(BudgetExhaustedError):
    """The run's wall-time budget (``max_wall_s``) ran out before a call could finish."""

    code = "budget.wall_time"
    retryable = False
    default_hint = (
        "raise [budgets] max_wall_s (AGENTRAG_BUDGETS__MAX_WALL_S), or check that the model "
        "server answers: `agentrag models status`"
    )


_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def is_retryable(exc: BaseException) -> bool:
    """Whether a failure is transient and worth another attempt.

    Our own errors answer through their class. Foreign exceptions (raised before we could
    translate them) are judged by status code and type: connection errors and timeouts,
    429 and 5xx are retryable; everything else is not.
    """
    if isinstance(exc, AgentragError):
        return type(exc).retryable
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status in _RETRYABLE_STATUS
    import asyncio

    return isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError)
