"""Every public entry of the ask API checks its arguments up front, with a typed error and a hint,
and the one budget model is validated and enforced before every model-calling node."""

from __future__ import annotations

import pytest

from agentrag import Agent
from agentrag.errors import ConfigError, GraphSpecError, InvalidArgumentError
from agentrag.graph.spec import parse_spec
from agentrag.settings import Budget
from tests.conftest import relevance_by_keyword
from tests.support.fakes import FakeLLM, FakeReranker


def make_agent(settings, retriever, llm=None, graph="rag") -> Agent:
    llm = llm or FakeLLM(
        structured={"_Rewrite": {"query": "Hamlet author", "variants": []}},
        answer=lambda m: "Shakespeare wrote Hamlet [1].",
    )
    return Agent(
        settings=settings,
        knowledge_base=retriever,
        graph=graph,
        llm=llm,
        reranker=FakeReranker(relevance_by_keyword),
        checkpoint="memory",
    )


@pytest.mark.parametrize(
    ("question", "message"),
    [(None, "not None"), (123, "not int"), ("", "is empty"), ("   ", "is empty"), (["q"], "not list")],
)
async def test_bad_questions_are_typed_errors(settings, retriever, question, message) -> None:
    llm = FakeLLM()
    agent = make_agent(settings, retriever, llm=llm)
    with pytest.raises(InvalidArgumentError, match=message) as info:
        await agent.aask(question)  # type: ignore[arg-type]
    assert info.value.code == "api.invalid_argument" and info.value.hint
    assert llm.usage.calls == 0  # nothing ran
    await agent.aclose()


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({"max_round": 2}, "unknown limit 'max_round' \\(did you mean 'max_rounds'\\?\\)"),
        ({"max_wall_s": "soon"}, "max_wall_s='soon'"),
        ({"max_rounds": 0}, "max_rounds=0"),
        ({"max_rounds": 10**9}, "max_rounds="),
        ({"max_llm_calls": None}, "max_llm_calls=None"),
        ({"max_wall_s": float("nan")}, "max_wall_s=nan"),
        ([("max_rounds", 2)], "must be a mapping"),
        ("max_rounds=2", "must be a mapping"),
    ],
)
async def test_bad_budget_overrides_fail_before_any_work(settings, retriever, budget, message) -> None:
    llm = FakeLLM()
    agent = make_agent(settings, retriever, llm=llm, graph="crag")
    with pytest.raises(InvalidArgumentError, match=message) as info:
        await agent.aask("Who wrote Hamlet?", budget=budget)
    assert "max_rounds" in info.value.hint
    assert llm.usage.calls == 0
    await agent.aclose()


@pytest.mark.parametrize("thread_id", [123, "", "x" * 500])
def test_bad_thread_ids(settings, retriever, thread_id) -> None:
    agent = make_agent(settings, retriever)
    with pytest.raises(InvalidArgumentError, match="thread_id"):
        agent.ask("Who wrote Hamlet?", thread_id=thread_id)  # type: ignore[arg-type]
    agent.close()


@pytest.mark.parametrize("filters", [42, "tenant=a", {"tenant": None}])
def test_bad_filters(settings, retriever, filters) -> None:
    agent = make_agent(settings, retriever)
    with pytest.raises(InvalidArgumentError, match="invalid filters"):
        agent.ask("Who wrote Hamlet?", filters=filters)
    agent.close()


def test_a_budget_override_applies(settings, retriever) -> None:
    agent = make_agent(settings, retriever, graph="crag")
    answer = agent.ask("Who wrote Hamlet?", budget={"max_rounds": 1, "max_wall_s": 30})
    assert answer.outcome in ("answered", "budget_exhausted")
    agent.close()


def test_one_budget_model_everywhere() -> None:
    # Settings, spec and overrides all validate against Budget (extra="forbid").
    with pytest.raises(Exception, match="max_round"):
        Budget.model_validate({"max_round": 1})
    assert Budget().override({"max_rounds": "3"}).max_rounds == 3
    spec = """
name: bad
entry: retrieve
nodes: {retrieve: {}}
edges: [retrieve -> END]
budgets: {max_round: 2}
"""
    with pytest.raises(GraphSpecError, match="max_round"):
        parse_spec(spec)


def test_settings_budgets_are_the_same_model(tmp_path) -> None:
    from agentrag.settings import Settings

    with pytest.raises(ConfigError, match="max_round"):
        Settings.load(config=None, data_dir=tmp_path, budgets={"max_round": 1})


async def test_the_budget_is_checked_before_every_model_call(settings, retriever) -> None:
    """max_llm_calls=1: rewrite spends it; rerank (Prism would call a model) and generate are
    skipped with a budget event, the outcome says so, and no further call is made."""
    llm = FakeLLM(
        structured={"_Rewrite": {"query": "Hamlet author", "variants": []}},
        answer=lambda m: "Shakespeare wrote Hamlet [1].",
    )
    agent = make_agent(settings, retriever, llm=llm)
    answer = await agent.aask("Who wrote Hamlet?", budget={"max_llm_calls": 1})
    assert answer.usage.calls == 1
    assert answer.outcome == "budget_exhausted" and answer.text == ""
    skipped = [e.node for e in answer.trace if e.event == "budget"]
    assert skipped == ["rerank", "generate"]
    await agent.aclose()


async def test_failed_calls_count_against_the_budget(settings, retriever) -> None:
    # Every structured call fails: the failed attempts are counted, so a loop over a failing
    # server stops at the budget instead of retrying for ever.
    llm = FakeLLM(
        structured={"_PlanOut": {"definition_queries": ["Hamlet"]}},
        fail={"_PlanOut": set(range(1, 100)), "_Keep": set(range(1, 100)), "_Verdict": set(range(1, 100))},
        answer=lambda m: "Shakespeare [1].",
    )
    agent = make_agent(settings, retriever, llm=llm, graph="srr")
    answer = await agent.aask("Who wrote Hamlet?", budget={"max_llm_calls": 3, "max_rounds": 10})
    assert answer.usage.calls + answer.usage.failed_calls <= 4
    # The budget stopped the model calls; with failures and no answer the run is "failed".
    assert any(e.event == "budget" for e in answer.trace)
    assert answer.outcome == "failed" and answer.errors
    await agent.aclose()


def test_recursion_limit_follows_the_budget(settings) -> None:
    from agentrag.graph import load_graph

    graph = load_graph("srr")
    small = graph.recursion_limit(graph.limits(settings, {"max_rounds": 1}))
    big = graph.recursion_limit(graph.limits(settings, {"max_rounds": 50}))
    assert small < big
    # Each round runs at most every node once: the limit is above the longest budgeted run.
    assert small >= len(graph.spec.nodes) * 3
