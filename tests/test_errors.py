from __future__ import annotations

import pytest

from agentrag import errors
from agentrag.llm._litellm import litellm, translate


def test_codes_are_unique_and_hints_render() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.AgentragError)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    err = errors.LLMConnectionError("cannot reach x")
    assert "hint:" in str(err) and "agentrag models" in str(err)
    assert err.to_dict()["code"] == "llm.connection"


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (errors.LLMTimeoutError("t"), True),
        (errors.LLMConnectionError("c"), True),
        (errors.LLMRateLimitError("r"), True),
        (errors.LLMServerError("s"), True),
        (errors.LLMBadRequestError("b"), False),
        (errors.LLMOutputError("o"), False),
        (errors.ConfigError("c"), False),
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (ValueError(), False),
    ],
)
def test_is_retryable(exc: BaseException, retryable: bool) -> None:
    assert errors.is_retryable(exc) is retryable


def test_translate_litellm_exceptions() -> None:
    lm = litellm()
    kw = {"llm_provider": "hosted_vllm", "model": "m"}
    cases = [
        (lm.ServiceUnavailableError(message="busy", **kw), errors.LLMServerError),
        (lm.RateLimitError(message="slow down", **kw), errors.LLMRateLimitError),
        (lm.Timeout(message="late", **kw), errors.LLMTimeoutError),
        (lm.BadRequestError(message="bad", **kw), errors.LLMBadRequestError),
        (lm.NotFoundError(message="The model `x` does not exist.", **kw), errors.LLMBadRequestError),
        (
            lm.InternalServerError(message="Cannot connect to host 127.0.0.1:9", **kw),
            errors.LLMConnectionError,
        ),
        (
            lm.BadRequestError(message="response_format json_schema is not supported", **kw),
            errors.LLMUnsupportedError,
        ),
    ]
    for exc, expected in cases:
        out = translate(exc, endpoint="http://h/v1", model="m")
        assert type(out) is expected, (exc, out)
        assert out.details["endpoint"] == "http://h/v1"
    nf = translate(cases[4][0], endpoint="e", model="m")
    assert "models status" in nf.hint
