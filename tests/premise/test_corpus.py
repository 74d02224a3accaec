"""The premise corpus through the real write path: MiniLM, Chroma, bm25s, the manifest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from agentrag.embed import regex_token_spans
from agentrag.kb import KnowledgeBase
from agentrag.premise import extract_text
from agentrag.premise.corpus import TextFitter, index_tree
from agentrag.premise.search import PremiseSearcher, premise_hits

DATA = Path(__file__).parent / "data"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "lean"
    root.mkdir()
    for f in DATA.glob("*.lean"):
        shutil.copy(f, root / f.name)
    return root


@pytest.fixture
def kb(settings: Any, embedder: Any):
    base = KnowledgeBase.open(settings, "premises", embedder=embedder)
    yield base
    base.close()


LONG = (
    "/-- "
    + "This docstring goes on and on about lattices, joins, meets and orders. " * 40
    + "-/\ntheorem Long.sup_le_sup_of_everything {α : Type*} [Lattice α] "
    + " ".join(f"(h{i} : a{i} ≤ b{i})" for i in range(80))
    + " : a0 ⊔ a1 ≤ b0 ⊔ b1 := sorry\n"
)


def test_fitter_keeps_header_docstring_and_signature(embedder: Any) -> None:
    decl = extract_text(LONG, "Demo")[0]
    limit = embedder.max_tokens
    assert len(embedder.token_spans(decl.retrieval_text())) > 3 * limit
    text, cut = TextFitter(embedder.token_spans, limit).fit(decl)
    assert cut
    assert len(embedder.token_spans(text)) <= limit
    lines = text.split("\n")
    assert lines[0] == "theorem Long.sup_le_sup_of_everything"
    assert lines[1].startswith("Long sup le sup of everything")
    # Both long: the docstring and the signature each keep a share of the window.
    assert lines[2].startswith("This docstring goes on") and lines[3].startswith(
        "{α : Type*} [Lattice α] (h0"
    )
    doc_tokens, sig_tokens = (len(embedder.token_spans(line)) for line in lines[2:4])
    assert abs(doc_tokens - sig_tokens) <= 8

    short_sig = extract_text("/-- " + "word " * 400 + "-/\ntheorem t (n : ℕ) : n = n := rfl\n")[0]
    text, cut = TextFitter(embedder.token_spans, limit).fit(short_sig)
    # A short signature is kept whole; the docstring takes the rest of the window.
    assert cut and text.endswith("(n : ℕ) : n = n")
    assert len(embedder.token_spans(text)) in range(limit - 4, limit + 1)

    fits = extract_text("theorem small : True := trivial\n")[0]
    assert TextFitter(embedder.token_spans, limit).fit(fits) == (fits.retrieval_text(), False)


def test_fitter_logic_with_a_word_tokenizer() -> None:
    decl = extract_text("/-- a b c d e f g h i j -/\ntheorem t (x : y) : z := q\n")[0]
    text, cut = TextFitter(regex_token_spans, 12).fit(decl)
    assert cut and len(regex_token_spans(text)) <= 12
    assert text.split("\n")[0] == "theorem t" and "(x" in text  # the signature keeps a share
    with pytest.raises(ValueError, match="at least 8 tokens"):
        TextFitter(regex_token_spans, 4)


def test_index_tree_one_chunk_per_declaration(tree: Path, kb: KnowledgeBase) -> None:
    (tree / "Long.lean").write_text(LONG)
    report = index_tree(kb, tree)
    assert report.files == 4 and not report.failed
    assert report.declarations == report.added == report.chunks_added == 79
    assert report.truncated == 1
    assert report.documents == report.chunks == 79 and report.disk_bytes > 0
    stats = kb.stats()
    assert stats.chunks == stats.store_count == stats.bm25_chunks == 79
    hit = kb.search("Long.sup_le_sup_of_everything", k=1, mode="bm25")[0]
    assert hit.metadata["name"] == "Long.sup_le_sup_of_everything" and hit.metadata["truncated"] is True
    assert hit.metadata["seq"] == 0  # the chunker left it whole

    lattice = premise_hits(kb.search("Lattice", k=5, filters={"name": "Lattice"}))[0]
    assert (lattice.name, lattice.kind, lattice.module, lattice.path) == (
        "Lattice",
        "class",
        "MathlibExcerpts",
        "MathlibExcerpts.lean",
    )
    assert lattice.line == 107 and lattice.signature.startswith("(α : Type u) extends SemilatticeSup α")
    assert lattice.text.startswith("class Lattice\nLattice\nA lattice is")

    # Unchanged tree: nothing embedded, nothing removed.
    again = index_tree(kb, tree)
    assert (again.added, again.unchanged, again.replaced, again.removed, again.chunks_added) == (
        0,
        79,
        0,
        0,
        0,
    )

    # Edit a file: a changed docstring is replaced, a removed declaration pruned, a new one added.
    path = tree / "Scopes.lean"
    src = path.read_text()
    assert "theorem after_omit" in src
    src = src.replace("theorem after_omit", "theorem after_omit_renamed")
    path.write_text(src)
    (tree / "Long.lean").unlink()
    third = index_tree(kb, tree)
    assert (third.added, third.removed) == (1, 2)
    assert third.documents == third.chunks == 78
    names = {p.metadata["name"] for p in kb.search("after omit renamed", k=3, mode="bm25")}
    assert "after_omit_renamed" in names and "after_omit" not in names


def test_include_exclude_and_errors(tree: Path, kb: KnowledgeBase) -> None:
    (tree / ".lake" / "packages").mkdir(parents=True)
    shutil.copy(tree / "Kinds.lean", tree / ".lake" / "packages" / "Dep.lean")
    report = index_tree(kb, tree)
    assert report.files == 3  # .lake is left out by default
    only = index_tree(kb, tree, include=["Kinds.lean"], prune=False)
    assert only.files == 1 and only.unchanged == only.declarations
    excluded = index_tree(kb, tree, exclude=["Scopes.lean", "MathlibExcerpts.lean"], prune=False)
    assert excluded.files == 2  # Kinds.lean and the .lake copy (own exclude list replaces the default)
    from agentrag.errors import IngestError

    with pytest.raises(IngestError, match="not a directory"):
        index_tree(kb, tree / "missing")


async def test_standard_search_dedupes_names(tree: Path, kb: KnowledgeBase, settings: Any) -> None:
    # The same declaration in two files: two chunks, one name in the results.
    (tree / "Copy.lean").write_text((tree / "MathlibExcerpts.lean").read_text())
    index_tree(kb, tree)
    searcher = PremiseSearcher(kb, settings=settings)
    hits = await searcher.asearch("a lattice is a join-semilattice and a meet-semilattice", k=5)
    names = [h.name for h in hits]
    assert names[0] == "Lattice" and len(names) == len(set(names)) == 5
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert set(hits[0].scores) >= {"bm25", "dense", "convex"}
    dense = await searcher.asearch("every Kan complex is a quasicategory", k=3, search_mode="dense")
    assert dense[0].name == "SSet.instQuasicategoryOfKanComplex" and set(dense[0].scores) == {"dense"}


async def test_standard_search_with_the_embedding_reranker(
    tree: Path, kb: KnowledgeBase, settings: Any
) -> None:
    from agentrag.rerank import EmbeddingPRFReranker

    index_tree(kb, tree)
    searcher = PremiseSearcher(kb, settings=settings, reranker=EmbeddingPRFReranker(kb.embedder))
    hits = await searcher.asearch("every Kan complex is a quasicategory", k=3, rerank=True, candidates=20)
    assert hits[0].name == "SSet.instQuasicategoryOfKanComplex" and "rerank" in hits[0].scores

    none = settings.model_copy(update={"rerank": settings.rerank.model_copy(update={"kind": "none"})})
    from agentrag.errors import ConfigError

    with pytest.raises(ConfigError, match="kind is 'none'"):
        await PremiseSearcher(kb, settings=none).asearch("x", rerank=True)
