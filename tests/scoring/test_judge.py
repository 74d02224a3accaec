"""The LLM judge: prompts and parsing with a fake client, schema-constrained output from real vLLM."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agentrag.llm import LLMClient
from agentrag.scoring.judge import CorrectnessJudgement, LLMJudge, RelevanceJudgement


@dataclass
class FakeStructured:
    calls: list[tuple[list[dict[str, str]], type]] = field(default_factory=list)

    async def structured(self, messages, output, *, max_tokens=None, temperature=None):
        self.calls.append((messages, output))
        if output is RelevanceJudgement:
            return RelevanceJudgement(relevant="Shakespeare" in messages[-1]["content"], reason="r")
        return CorrectnessJudgement(correct="1600" in messages[-1]["content"], reason="r")


async def test_prompts_carry_the_inputs() -> None:
    fake = FakeStructured()
    judge = LLMJudge(fake)  # type: ignore[arg-type]
    verdicts = await judge.relevances("Who wrote Hamlet?", ["Shakespeare wrote it.", "Oceans are big."])
    assert [v.relevant for v in verdicts] == [True, False]
    (messages, output), _ = fake.calls
    assert output is RelevanceJudgement and messages[0]["role"] == "system"
    assert (
        "Who wrote Hamlet?" in messages[-1]["content"] and "Shakespeare wrote it." in messages[-1]["content"]
    )
    verdict = await judge.correctness("When was Hamlet written?", "around 1600", reference="c. 1600")
    assert verdict.correct
    msgs, _ = fake.calls[-1]
    assert "Reference answer: c. 1600" in msgs[-1]["content"] and "reference answer" in msgs[0]["content"]
    await judge.correctness("When?", "1600")
    assert "Reference answer" not in fake.calls[-1][0][-1]["content"]


@pytest.mark.vllm
async def test_real_model_returns_schema_valid_verdicts(llm: LLMClient) -> None:
    judge = LLMJudge(llm)
    rel = await judge.relevance("Who wrote Hamlet?", "Hamlet is a tragedy written by William Shakespeare.")
    assert isinstance(rel, RelevanceJudgement) and isinstance(rel.relevant, bool) and len(rel.reason) <= 300
    cor = await judge.correctness("What is the capital of France?", "Paris", reference="Paris")
    assert isinstance(cor, CorrectnessJudgement) and isinstance(cor.correct, bool)
