"""Tests for the Lean 4 declaration extractor, on small Lean files under ``data/``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from agentrag.errors import IngestError
from agentrag.premise import (
    DECLARATION_KINDS,
    Declaration,
    ExtractionFailure,
    extract_file,
    extract_text,
    iter_tree,
    module_name,
    name_words,
)
from agentrag.premise._lexer import clean_docstring, mask

DATA = Path(__file__).parent / "data"


def _decls(stem: str) -> dict[str, Declaration]:
    text = (DATA / f"{stem}.lean").read_text(encoding="utf-8")
    decls = extract_text(text, f"Test.{stem}", path=f"{stem}.lean")
    by_name = {d.name: d for d in decls}
    assert len(by_name) == len(decls), "duplicate names"
    return by_name


@pytest.fixture(scope="module")
def scopes() -> dict[str, Declaration]:
    return _decls("Scopes")


@pytest.fixture(scope="module")
def kinds() -> dict[str, Declaration]:
    return _decls("Kinds")


@pytest.fixture(scope="module")
def mathlib() -> dict[str, Declaration]:
    return _decls("MathlibExcerpts")


# -- names and scopes ------------------------------------------------------------------------


def test_scopes_names_in_order(scopes: dict[str, Declaration]) -> None:
    assert list(scopes) == [
        "top_level",
        "Outer.in_outer",
        "Outer.Inner.Deep.deep",
        "Outer.in_section",
        "Outer.Qualified.name",
        "escaped_root",
        "Outer.hidden",
        "Outer.prot",
        "A.B.C.abc",
        "after_set_option",
        "after_open",
        "uses_pending",
        "no_pending",
        "isEven",
        "isOdd",
        "after_mutual",
        "after_omit",
        "after_include",
    ]


def test_namespace_field_and_short_name(scopes: dict[str, Declaration]) -> None:
    deep = scopes["Outer.Inner.Deep.deep"]
    assert (deep.namespace, deep.short_name) == ("Outer.Inner.Deep", "deep")
    # A qualified declaration name is still prefixed by the namespace, not added to it.
    qualified = scopes["Outer.Qualified.name"]
    assert (qualified.namespace, qualified.short_name) == ("Outer", "name")
    # `_root_` escapes the namespace the declaration sits in.
    assert scopes["escaped_root"].namespace == "Outer"
    # `end A.B` closes two scopes opened by `namespace A.B`.
    assert scopes["A.B.C.abc"].namespace == "A.B.C"
    assert scopes["after_set_option"].namespace == ""


def test_private_and_protected(scopes: dict[str, Declaration]) -> None:
    hidden = scopes["Outer.hidden"]
    assert hidden.modifiers == ["private"]
    assert hidden.is_private
    prot = scopes["Outer.prot"]
    assert prot.modifiers == ["protected"]
    assert not prot.is_private


def test_variables_follow_scopes(scopes: dict[str, Declaration]) -> None:
    file_vars = ["{α : Type u}", "[Group α]"]
    assert scopes["top_level"].variables == file_vars
    assert scopes["Outer.in_outer"].variables == [*file_vars, "(n : ℕ)"]
    assert scopes["Outer.in_section"].variables == [*file_vars, "(n : ℕ)", "{β : Type v}"]
    # The section's `variable {β}` ends with the section, the namespace's `(n)` with the namespace.
    assert scopes["Outer.Qualified.name"].variables == [*file_vars, "(n : ℕ)"]
    assert scopes["A.B.C.abc"].variables == file_vars
    # `variable ... in` applies to the next declaration only.
    assert scopes["uses_pending"].variables == [*file_vars, "(γ : Type)"]
    assert scopes["no_pending"].variables == file_vars


def test_in_prefixes_and_mutual(scopes: dict[str, Declaration]) -> None:
    after_set = scopes["after_set_option"]
    assert (after_set.signature, after_set.start_line, after_set.end_line) == ("(x : ℕ) : True", 67, 67)
    after_open = scopes["after_open"]
    assert after_open.docstring == "Documented after `open ... in`."
    assert after_open.attributes == ["simp"]
    assert (after_open.start_line, after_open.decl_line, after_open.end_line) == (70, 71, 71)
    # Declarations indented inside `mutual ... end`, match arms excluded from the signature.
    assert [(scopes[n].signature, scopes[n].decl_line, scopes[n].end_line) for n in ("isEven", "isOdd")] == [
        (": ℕ → Bool", 79, 81),
        (": ℕ → Bool", 82, 84),
    ]
    # The `end` of `mutual` does not close a namespace or section.
    assert scopes["after_mutual"].namespace == ""
    # `omit ... in` / `include ... in` prefix a declaration without being one.
    assert (scopes["after_omit"].start_line, scopes["after_include"].start_line) == (90, 93)
    assert scopes["after_include"].end_line == 93  # `syntax`/`elab` below are separate commands


def test_comments_do_not_declare(
    scopes: dict[str, Declaration], kinds: dict[str, Declaration], mathlib: dict[str, Declaration]
) -> None:
    names = set(scopes) | set(kinds) | set(mathlib)
    assert not {n for n in names if "fake" in n or "not_a_decl" in n}
    assert "squarefree_bit10" not in names


# -- kinds, signatures, docstrings, attributes, lines ------------------------------------------


def test_theorem_with_tactic_block(kinds: dict[str, Declaration]) -> None:
    d = kinds["Kinds.one_line_doc"]
    assert (d.kind, d.signature, d.docstring) == ("theorem", ": 1 + 1 = 2", "A one-line docstring.")
    # `have`/`show` in the proof are not declarations; the body ends the span.
    assert (d.start_line, d.decl_line, d.end_line) == (5, 6, 9)
    assert d.module == "Test.Kinds"
    assert d.path == "Kinds.lean"


def test_multiline_signature_docstring_and_attributes(kinds: dict[str, Declaration]) -> None:
    d = kinds["Kinds.multi_doc"]
    assert d.kind == "lemma"
    assert d.signature == "{G : Type*} [Mul G] (a b : G) (h : a = b) : a * b = b * a"
    assert d.docstring == "A docstring\n  spanning lines,\nwith an indented line."
    assert d.attributes == ["simp", "to_additive"]
    assert (d.start_line, d.decl_line, d.end_line) == (11, 17, 22)


def test_stacked_attributes_with_arguments(kinds: dict[str, Declaration]) -> None:
    d = kinds["Kinds.stacked_attrs"]
    assert d.attributes == ["simp", "norm_cast", "to_additive"]
    assert (d.start_line, d.decl_line) == (24, 26)


def test_strings_and_chars_do_not_confuse(kinds: dict[str, Declaration]) -> None:
    assert kinds["Kinds.with_string"].signature == ": String"
    assert kinds["Kinds.char_lit"].signature == ": Char"
    assert kinds["Kinds.after_char"].decl_line == 36


def test_instances_named_and_anonymous(kinds: dict[str, Declaration]) -> None:
    named = kinds["Kinds.instNamed"]
    assert (named.kind, named.anonymous, named.signature) == ("instance", False, ": Inhabited MyNat")
    anon = kinds["Kinds.instInhabitedListMyNat"]
    assert anon.anonymous
    assert anon.signature == ": Inhabited (List MyNat)"
    prio = kinds["Kinds.instNonemptyOptionOfInhabited"]
    assert prio.signature == "{α : Type*} [Inhabited α] : Nonempty (Option α)"


def test_structure_fields_constructor_and_deriving(kinds: dict[str, Declaration]) -> None:
    point = kinds["Kinds.Point"]
    assert (point.kind, point.signature, point.docstring) == (
        "structure",
        "(α : Type*) extends Inhabited α",
        "A point in the plane.",
    )
    assert (point.start_line, point.decl_line, point.end_line) == (46, 47, 52)
    assert kinds["Kinds.Point.toInhabited"].signature == ": Inhabited α"
    assert kinds["Kinds.Point.mk'"].kind == "constructor"
    x = kinds["Kinds.Point.x"]
    assert (x.kind, x.signature, x.docstring, x.parent, x.decl_line) == (
        "field",
        ": α",
        "The first coordinate.",
        "Kinds.Point",
        50,
    )
    assert kinds["Kinds.Point.y"].signature == ": α"
    derived = kinds["Kinds.instReprPoint"]
    assert (derived.kind, derived.anonymous, derived.parent) == ("instance", True, "Kinds.Point")


def test_class_fields(kinds: dict[str, Declaration]) -> None:
    assert kinds["Kinds.Shape"].kind == "class"
    assert kinds["Kinds.Shape.area"].signature == ": α → ℕ"
    assert kinds["Kinds.Shape.sides"].signature == kinds["Kinds.Shape.corners"].signature == ": ℕ"
    perimeter = kinds["Kinds.Shape.perimeter"]
    assert (perimeter.signature, perimeter.modifiers) == ("(s : α) : ℕ", ["protected"])


def test_inductive_constructors(kinds: dict[str, Declaration]) -> None:
    color = kinds["Kinds.Color"]
    assert (color.kind, color.signature, color.end_line) == ("inductive", "", 64)
    red = kinds["Kinds.Color.red"]
    assert (red.kind, red.docstring, red.start_line, red.decl_line) == ("constructor", "Red.", 60, 61)
    assert kinds["Kinds.Color.rgb"].signature == "(r g b : ℕ) : Color"
    assert "Kinds.instDecidableEqColor" in kinds


def test_other_kinds(kinds: dict[str, Declaration]) -> None:
    assert (kinds["Kinds.MyNat"].kind, kinds["Kinds.MyNat"].signature) == ("abbrev", "")
    assert (kinds["Kinds.my_axiom"].kind, kinds["Kinds.my_axiom"].signature) == ("axiom", ": 0 = 0")
    assert (kinds["Kinds.secret"].kind, kinds["Kinds.secret"].signature) == ("opaque", ": ℕ")


def test_signature_stops_at_the_right_place(kinds: dict[str, Declaration]) -> None:
    matcher = kinds["Kinds.matcher"]
    assert (matcher.signature, matcher.end_line) == (": ℕ → ℕ", 73)  # match arms, termination_by
    assert kinds["Kinds.abs_sig"].signature == "(x : ℤ) : |x| = |x|"  # `|x|` is not a match arm
    with_where = kinds["Kinds.with_where"]
    assert (with_where.signature, with_where.end_line) == (": ℕ", 80)
    assert "Kinds.with_where.helper" not in kinds  # `where` sub-definitions are not emitted
    assert kinds["Kinds.let_in_type"].signature == ": let k := 1; k = 1"


def test_skipped_commands_and_aliases(kinds: dict[str, Declaration]) -> None:
    assert not [d for d in kinds.values() if d.decl_line in (82, 84, 86)]  # example, notation, macro
    alias = kinds["Kinds.one_line_doc_alias"]
    assert (alias.kind, alias.alias_of) == ("alias", "one_line_doc")
    assert kinds["Kinds.mp_alias"].alias_of == "two_iff"
    assert "alias of one_line_doc" in alias.retrieval_text()


# -- real Mathlib patterns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Lean.instToJsonPUnit_mathlib",  # Mathlib itself refers to this generated name
        "Lean.instFromJsonPUnit_mathlib",
        "instFintypeSimpleGraphOfDecidableEq",  # MathlibQR gold names from here on
        "SSet.instQuasicategoryOfKanComplex",
        "ContinuousLinearMap.instCStarRingId",
        "instAlgebraCliffordAlgebra",
        "FirstOrder.Language.Ultraproduct.structure",
        "NumberField.RingOfIntegers.instIsDedekindDomain",
    ],
)
def test_mathlib_generated_and_escaped_names(mathlib: dict[str, Declaration], name: str) -> None:
    assert name in mathlib


def test_mathlib_multiline_attribute(mathlib: dict[str, Declaration]) -> None:
    d = mathlib["precompEquiv"]
    assert d.attributes == ["to_additive"]
    assert d.docstring.startswith("The equivalence `(β →* γ) ≃ (α →* γ)`")
    assert (d.start_line, d.decl_line, d.end_line) == (67, 73, 75)
    assert d.signature.endswith(": (β →* γ) ≃ (α →* γ)")


def test_mathlib_indented_and_mutual(mathlib: dict[str, Declaration]) -> None:
    d = mathlib["equivNum_apply"]
    assert (d.attributes, d.start_line, d.decl_line, d.end_line) == (["simp"], 79, 80, 83)
    assert mathlib["Equiv.decidable"].signature == ": ∀ l₁ l₂ : Lists α, Decidable (l₁ ~ l₂)"
    assert mathlib["Subset.decidable"].decl_line == 91


def test_mathlib_structures(mathlib: dict[str, Declaration]) -> None:
    assert mathlib["PseudoMetric.refl'"].signature == "x : toFun x x = 0"
    assert mathlib["PseudoMetric.symm'"].signature == "x y : toFun x y = toFun y x"
    assert "PseudoMetric.compare" not in mathlib  # overrides a default, declares nothing
    assert mathlib["Lattice.toSemilatticeSup"].signature == ": SemilatticeSup α"
    assert "Lattice.toSemilatticeInf" in mathlib
    basis = mathlib["Module.Basis"]
    assert (basis.variables, basis.start_line, basis.decl_line) == (["(ι R M)"], 113, 114)
    assert mathlib["Module.Basis.ofRepr"].kind == "constructor"
    repr_field = mathlib["Module.Basis.repr"]
    assert repr_field.signature == ": M ≃ₗ[R] ι →₀ R"
    assert repr_field.docstring.startswith("`repr` is the linear equivalence")


# -- the model, helpers and entry points ------------------------------------------------------


def test_declaration_json_round_trip(kinds: dict[str, Declaration]) -> None:
    for d in kinds.values():
        again = Declaration.model_validate_json(d.model_dump_json())
        assert again == d
    assert set(DECLARATION_KINDS) >= {d.kind for d in kinds.values()}


def test_retrieval_text(scopes: dict[str, Declaration]) -> None:
    assert scopes["Outer.Inner.Deep.deep"].retrieval_text() == (
        "def Outer.Inner.Deep.deep\nOuter Inner Deep deep\nDoc for `deep`.\n: ℕ"
    )
    # No empty line when there is no docstring.
    assert scopes["top_level"].retrieval_text() == "theorem top_level\ntop level\n: True"


def test_name_words() -> None:
    assert name_words("Nat.Prime.two_le") == ["Nat", "Prime", "two", "le"]
    assert name_words("iSup_le") == ["iSup", "i", "Sup", "le"]
    assert name_words("bernoulli'_zero") == ["bernoulli", "zero"]


def test_mask_keeps_offsets() -> None:
    text = 'def a := "x -- y" /- c /- d -/ e -/ \'"\' -- z\n/-- doc -/ def b := 1\n'
    m = mask(text)
    assert len(m.code) == len(m.nocomment) == len(text)
    assert m.code.count("\n") == text.count("\n")
    assert "--" not in m.code
    assert "def b" in m.code
    assert '"x -- y"' in m.nocomment
    assert [clean_docstring(d.text) for d in m.docs] == ["doc"]


def test_extract_file_and_module_name(tmp_path: Path) -> None:
    src = tmp_path / "Mathlib" / "Foo" / "Bar.lean"
    src.parent.mkdir(parents=True)
    src.write_text("theorem t : True := trivial\n", encoding="utf-8")
    [d] = extract_file(src, tmp_path)
    assert (d.module, d.path) == ("Mathlib.Foo.Bar", "Mathlib/Foo/Bar.lean")
    assert module_name("Mathlib/Order/Lattice.lean") == "Mathlib.Order.Lattice"


def test_iter_tree_reports_and_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "Mathlib").mkdir()
    (tmp_path / "Mathlib" / "Good.lean").write_text("def good : ℕ := 1\n", encoding="utf-8")
    (tmp_path / "Mathlib" / "Bad.lean").write_bytes(b"def bad : \xff\xfe := 1\n")
    (tmp_path / "Mathlib" / "Skip.lean").write_text("def skipped : ℕ := 1\n", encoding="utf-8")
    failures: list[ExtractionFailure] = []
    with caplog.at_level(logging.WARNING, logger="agentrag.premise.extract"):
        decls = list(iter_tree(tmp_path, exclude=["Mathlib/Skip.lean"], failures=failures))
    assert [d.name for d in decls] == ["good"]
    assert [f.path for f in failures] == ["Mathlib/Bad.lean"]
    assert "Mathlib/Bad.lean" in caplog.text


def test_extract_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(IngestError):
        extract_file(tmp_path / "Missing.lean", tmp_path)
    with pytest.raises(IngestError):
        list(iter_tree(tmp_path / "nowhere"))
