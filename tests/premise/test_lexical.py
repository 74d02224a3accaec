"""The Lean analyzer and the query-style detector, against the real bm25s index."""

from __future__ import annotations

import pytest

from agentrag.premise import extract_text
from agentrag.premise.lexical import lean_lexical
from agentrag.premise.query import query_style
from agentrag.retrieve.bm25 import BM25Index, bm25_fingerprint
from agentrag.settings import BM25Settings, Settings

SOURCE = """\
namespace Nat
/-- Two is at most any prime. -/
theorem Prime.two_le {p : ℕ} (hp : p.Prime) : 2 ≤ p := hp.two_le
end Nat
theorem dvd_mul_right (a b : α) : a ∣ a * b := Dvd.intro b rfl
theorem inv_inv (a : G) : a⁻¹⁻¹ = a := by simp
theorem Finset.sum_comm {s : Finset γ} {t : Finset α} {f : γ → α → β} :
    (∑ x ∈ s, ∑ y ∈ t, f x y) = ∑ y ∈ t, ∑ x ∈ s, f x y := by simp
theorem Set.union_comm (a b : Set α) : a ∪ b = b ∪ a := by ext; simp [or_comm]
theorem add_comm (a b : α) : a + b = b + a := by simp
"""


def _index(analyzer: str) -> tuple[BM25Index, list[str]]:
    decls = extract_text(SOURCE)
    cfg = BM25Settings(analyzer=analyzer)  # type: ignore[arg-type]
    index = BM25Index.build(
        [d.retrieval_text() for d in decls], list(range(1, len(decls) + 1)), cfg, version=1
    )
    return index, [d.name for d in decls]


@pytest.mark.parametrize(
    ("query", "gold"),
    [
        ("a ∣ a * b", "dvd_mul_right"),
        ("x⁻¹⁻¹ = x", "inv_inv"),
        ("∑ x ∈ s, ∑ y ∈ t, f x y = ∑ y ∈ t, ∑ x ∈ s, f x y", "Finset.sum_comm"),
        ("$s \\cup t = t \\cup s$", "Set.union_comm"),
        ("2 ≤ p", "Nat.Prime.two_le"),
    ],
)
def test_notation_queries_find_their_declaration_only_with_the_lean_analyzer(query: str, gold: str) -> None:
    lean, names = _index("lean")
    top = [names[row - 1] for row, _ in lean.search(query, 1)]
    assert top == [gold]
    # The prose analyzer drops the symbols these queries are made of.
    text, _ = _index("text")
    assert [names[row - 1] for row, _ in text.search(query, 1)] != [gold]


def test_the_analyzer_is_part_of_the_index_fingerprint() -> None:
    assert bm25_fingerprint(BM25Settings(analyzer="lean")) != bm25_fingerprint(BM25Settings())


def test_premise_settings_use_the_lean_analyzer_and_their_depth_and_leave_the_rest_alone() -> None:
    settings = Settings.load(config=None)
    premise = settings.for_premises()
    assert premise.retrieval.bm25.analyzer == "lean"
    assert settings.retrieval.bm25.analyzer == "text"
    assert (premise.retrieval.candidates, settings.retrieval.candidates) == (200, 100)
    rest = {"bm25", "candidates"}
    assert premise.retrieval.model_dump(exclude=rest) == settings.retrieval.model_dump(exclude=rest)


def test_lean_lexical_spells_notation_and_splits_names() -> None:
    assert lean_lexical("IsOpen.inter").split() == ["IsOpen", "Is", "Open", "inter"]
    assert lean_lexical("(x : ℝ≥0∞)").split() == ["(x", ":", "ENNReal", "ENN", "Real", ")"]
    assert "sup" in lean_lexical(r"$a \sqcup b$").split()
    assert "Real" in lean_lexical(r"$\mathbb{R}$").split()


@pytest.mark.parametrize(
    ("query", "style"),
    [
        ("for adjoint `f`, `f (⨆ i, x i) = ⨆ i, f (x i)`", "lean"),
        ("a ≤ b → b ≤ c → a ≤ c", "lean"),
        ("Nat.Prime.two_le", "lean"),
        (r"a poset with binary $\sqcup$ and $\sqcap$", "latex"),
        ("a partial order in which any two elements have both a join and a meet", "natural"),
        ("metric space", "natural"),
    ],
)
def test_query_style(query: str, style: str) -> None:
    assert query_style(query) == style
