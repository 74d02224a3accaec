"""HyDE for premise search: cleaning, when it applies, fusion and fallback over a real premise KB.

The knowledge base is real (MiniLM, Chroma, bm25s over the test Lean files). The model is a
fake that answers or fails as the real client does (``LLMServerError`` after retries), the real
client against a port nobody listens on (a transport error), and, in the slow test, the real
default 1.5B server.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agentrag.premise.hyde import HYDE_MAX_TOKENS, clean_declaration, hyde_applies, hypothesize
from agentrag.premise.search import PremiseSearcher
from tests.premise.conftest import free_port, unreachable
from tests.support.fakes import FakeLLM

DATA = Path(__file__).parent / "data"

# Natural language, no notation: the query side HyDE is for.
KAN = "a simplicial set where every horn has a filler is one where inner horns have fillers"
KAN_GUESS = (
    "```lean\ninstance SSet.instQuasicategoryOfKanComplex (S : SSet) [KanComplex S] : "
    "Quasicategory S := by\n  infer_instance\n```"
)


# ------------------------------------------------------------------------------------ logic


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("theorem foo (n : ℕ) : n = n := rfl", "theorem foo (n : ℕ) : n = n"),
        ("```lean\ndef bar : ℕ → ℕ\n```", "def bar : ℕ → ℕ"),
        ("`class Baz (α : Type*) extends Foo α`", "class Baz (α : Type*) extends Foo α"),
        ("structure P where\n  x : ℕ", "structure P"),
        ("theorem s {s : Set α} : {x | x ∈ s} = s", "theorem s {s : Set α} : {x | x ∈ s} = s"),
        ("```\n```", ""),
        ("", ""),
    ],
)
def test_clean_declaration(answer: str, expected: str) -> None:
    assert clean_declaration(answer) == expected


def test_hyde_applies_by_mode_and_style() -> None:
    natural, lean, latex = "a compact set is closed", "`IsCompact s → IsClosed s`", r"$K$ compact"
    assert [hyde_applies("off", q) for q in (natural, lean, latex)] == [False, False, False]
    assert [hyde_applies("natural", q) for q in (natural, lean, latex)] == [True, False, False]
    assert [hyde_applies("all", q) for q in (natural, lean, latex)] == [True, True, True]


async def test_hypothesize_asks_once_greedy_and_short() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(FakeLLM):
        async def chat(self, messages, *, max_tokens=None, temperature=None, **kw: Any):  # type: ignore[no-untyped-def]
            seen.append({"max_tokens": max_tokens, "temperature": temperature, **kw})
            return await super().chat(messages, max_tokens=max_tokens, temperature=temperature)

    llm = Recording(answer=lambda _m: KAN_GUESS)
    text = await hypothesize(llm, KAN)
    assert text == "instance SSet.instQuasicategoryOfKanComplex (S : SSet) [KanComplex S] : Quasicategory S"
    assert seen == [{"max_tokens": HYDE_MAX_TOKENS, "temperature": 0.0, "stop": [":=", "\n\n"]}]
    # The query reaches the model inside the prompt.
    assert KAN in llm.log[0][1][-1]["content"]


# ------------------------------------------------------------------ search over a real KB


async def test_hyde_fuses_the_hypothesis_ranking(premise_kb: Any) -> None:
    settings, kb = premise_kb
    plain = await PremiseSearcher(kb, settings=settings).arun(KAN, k=5)
    assert plain.hits[0].name == "SSet.instQuasicategoryOfKanComplex"
    assert "Kinds.two_iff" not in [h.name for h in plain.hits]
    # A guess naming another declaration: its ranking enters the fused list beside the query's.
    llm = FakeLLM(
        answer=lambda _m: "theorem Kinds.two_iff : 2 = 2 ↔ True := ⟨fun _ => trivial, fun _ => rfl⟩"
    )
    searcher = PremiseSearcher(kb, settings=settings, llm=llm)
    result = await searcher.arun(KAN, k=5, hyde="natural")
    assert result.errors == [] and not result.degraded
    assert result.hyde == "theorem Kinds.two_iff : 2 = 2 ↔ True"
    assert llm.calls == {"chat": 1}
    top = [h.name for h in result.hits]
    # Reciprocal-rank fusion of two rankings: each one's first is in the fused top two.
    assert set(top[:2]) == {"SSet.instQuasicategoryOfKanComplex", "Kinds.two_iff"}
    assert all("multi_rrf" in h.scores for h in result.hits)

    # Not natural language (a Lean identifier): no generation under "natural", one under "all".
    lean = "SSet.instQuasicategoryOfKanComplex"
    assert (await searcher.arun(lean, k=3, hyde="natural")).hyde == ""
    assert llm.calls == {"chat": 1}
    assert (await searcher.arun(lean, k=3, hyde="all")).hyde != ""
    assert llm.calls == {"chat": 2}
    # "off" (the default setting) never calls the model.
    assert settings.premise.hyde == "off"
    assert (await searcher.arun(KAN, k=3)).hyde == ""
    assert llm.calls == {"chat": 2}


async def test_hyde_falls_back_when_the_model_fails(premise_kb: Any) -> None:
    settings, kb = premise_kb
    plain = await PremiseSearcher(kb, settings=settings).asearch(KAN, k=5)
    llm = FakeLLM(answer=lambda _m: KAN_GUESS, fail={"chat": {1}})
    result = await PremiseSearcher(kb, settings=settings, llm=llm).arun(KAN, k=5, hyde="natural")
    assert result.degraded and result.errors[0].startswith("hyde: injected failure")
    assert result.hyde == ""
    assert [h.name for h in result.hits] == [h.name for h in plain]

    # An answer with no declaration in it: the query's own ranking, and the reason.
    empty = FakeLLM(answer=lambda _m: "```\n```")
    result = await PremiseSearcher(kb, settings=settings, llm=empty).arun(KAN, k=5, hyde="all")
    assert result.errors == ["hyde: the model wrote no declaration"]
    assert [h.name for h in result.hits] == [h.name for h in plain]


async def test_hyde_with_the_real_client_and_no_server(premise_kb: Any) -> None:
    settings, kb = premise_kb
    offline = unreachable(settings, "generator")
    plain = await PremiseSearcher(kb, settings=settings).asearch(KAN, k=5)
    result = await PremiseSearcher(kb, settings=offline).arun(KAN, k=5, hyde="natural")
    assert result.degraded and "hyde: cannot reach" in result.errors[0], result.errors
    assert [h.name for h in result.hits] == [h.name for h in plain]
    # asearch keeps its list-of-hits shape.
    hits = await PremiseSearcher(kb, settings=offline).asearch(KAN, k=5, hyde="natural")
    assert [h.name for h in hits] == [h.name for h in plain]


@pytest.mark.slow
async def test_hyde_with_the_real_default_model(premise_kb: Any, default_llm_server: str) -> None:
    settings, kb = premise_kb
    gen = settings.generator.model_copy(update={"api_base": [default_llm_server]})
    live = settings.model_copy(update={"generator": gen})
    searcher = PremiseSearcher(kb, settings=live)
    result = await searcher.arun(
        "a lattice is a partial order where every two elements have a least upper bound and a "
        "greatest lower bound",
        k=5,
        hyde="natural",
    )
    assert result.errors == [], result.errors
    # A real generation: a Lean declaration (keyword first), no proof, used in the ranking.
    first = result.hyde.split(" ", 1)[0]
    assert first in {"theorem", "lemma", "def", "class", "structure", "instance", "abbrev"}, result.hyde
    assert ":=" not in result.hyde and len(result.hyde) < 600
    assert all("multi_rrf" in h.scores for h in result.hits)
    assert "Lattice" in [h.name for h in result.hits[:3]]


def test_cli_hyde_flag_falls_back_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.cli.conftest import invoke

    tree = tmp_path / "lean"
    tree.mkdir()
    for f in DATA.glob("*.lean"):
        shutil.copy(f, tree / f.name)
    data = tmp_path / "data"
    assert invoke(data, "premise", "index", str(tree), "--kb", "lean", "-q").exit_code == 0
    # The generator is down (nobody listens on the port): the search still answers.
    monkeypatch.setenv("AGENTRAG_GENERATOR__API_BASE", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("AGENTRAG_GENERATOR__MAX_RETRIES", "0")
    res = invoke(data, "premise", "search", KAN, "--kb", "lean", "-k", "3", "--hyde", "natural")
    assert res.exit_code == 0, res.output
    assert "degraded hyde: cannot reach" in " ".join(res.output.split())
    assert "SSet.instQuasicategoryOfKanComplex" in res.output

    res = invoke(data, "premise", "search", KAN, "--kb", "lean", "--hyde", "sometimes")
    assert res.exit_code != 0 and "unknown HyDE mode 'sometimes'" in res.output

    qr = DATA / "eval" / "qr_small.json"
    out = tmp_path / "run"
    res = invoke(
        data, "premise", "eval", "--data", str(qr), "--kb", "lean", "--out", str(out), "--hyde", "all"
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["hyde"] == "all" and report["degraded"] == report["n"] > 0
