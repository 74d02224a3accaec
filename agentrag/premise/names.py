"""Lean names as text: word splitting for lexical retrieval, and anonymous instance names.

``name_words`` turns ``Nat.Prime.two_le`` into ``["Nat", "Prime", "two", "le"]``: BM25 sees
one opaque token per dotted, snake_case or camelCase name otherwise, and a query such as
"prime two le" would never match it.

``instance_name`` approximates the name Lean 4 gives an anonymous ``instance`` (Lean's
``Lean.Elab.DeclNameGen``; e.g. ``instance [DecidableEq V] : Fintype (SimpleGraph V)`` becomes
``instFintypeSimpleGraphOfDecidableEq``). Lean computes it from the *elaborated* type; we only
have the text, so implicit arguments that Lean would mention (``Decidable (a < b)`` with ``a b :
ℕ`` gives ``instDecidableLtNat``) are missed, and notation is only known through a small table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["head_constant", "instance_name", "name_words"]

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+|[^\W\d_a-zA-Z]+", re.UNICODE)


def name_words(name: str) -> list[str]:
    """Split a Lean name into words at dots and underscores, then at camelCase humps.

    A piece with humps is kept whole *and* split (``iSup`` gives ``iSup``, ``i``, ``Sup``), so
    that a query can match either the Mathlib spelling or its parts. Primes, ``?``/``!`` and
    guillemets are dropped; Unicode letters (``δ``, ``ℝ``) stay words.

    Args:
        name: A (possibly qualified) Lean name.

    Returns:
        The words, in order, case preserved.

    Example:
        >>> name_words("Nat.Prime.two_le")
        ['Nat', 'Prime', 'two', 'le']
        >>> name_words("ENNReal.instCommSemiring")
        ['ENNReal', 'ENN', 'Real', 'instCommSemiring', 'inst', 'Comm', 'Semiring']
        >>> name_words("CategoryTheory.SimplicialObject.δ_comp_δ")[-3:]
        ['δ', 'comp', 'δ']
    """
    words: list[str] = []
    for piece in re.split(r"[._'!?«»\s]+", name):
        if not piece:
            continue
        humps = _CAMEL.findall(piece)
        if len(humps) > 1:
            words.append(piece)
            words.extend(humps)
        else:
            words.append(piece)
    return words


# ---------------------------------------------------------------------------------------------
# Anonymous instance names
# ---------------------------------------------------------------------------------------------

# Notation Lean elaborates to a constant that the generated name then mentions.
_NOTATION: dict[str, str] = {
    "ℕ": "Nat",
    "ℤ": "Int",
    "ℚ": "Rat",
    "ℝ": "Real",
    "ℂ": "Complex",
    "ℍ": "Quaternion",
    "ℝ≥0": "NNReal",
    "ℝ≥0∞": "ENNReal",
    "ℕ∞": "ENat",
    "ℚ≥0": "NNRat",
    "×": "Prod",
    "⊕": "Sum",
    "⊕'": "PSum",
    "×'": "PProd",
    "<": "LT.lt",
    "≤": "LE.le",
    ">": "GT.gt",
    "≥": "GE.ge",
    "=": "Eq",
    "≠": "Ne",
    "∣": "Dvd.dvd",
    "⟶": "Quiver.Hom",
    "≅": "CategoryTheory.Iso",
    "≃": "Equiv",
    "∈": "Membership.mem",
    "ᵐᵒᵖ": "MulOpposite",
    "ᵃᵒᵖ": "AddOpposite",
    "ᵒᵈ": "OrderDual",
    "ᵒᵖ": "Opposite",
    "ˣ": "Units",
    "𝓝": "nhds",
    "𝓞": "NumberField.RingOfIntegers",
    "⥤": "CategoryTheory.Functor",
    "≌": "CategoryTheory.Equivalence",
    "⧸": "HasQuotient.Quotient",
    "↪": "Function.Embedding",
}

# Operators and notation heads that stand for an application of a constant. Each is replaced by
# the constants Lean would mention, in the order it would mention them (the head first; for the
# semilinear arrows the ring homomorphism `RingHom.id`/`starRingEnd` comes next).
_OPERATORS: dict[str, str] = {
    "→L⋆[": "ContinuousLinearMap starRingEnd [",
    "→ₗ⋆[": "LinearMap starRingEnd [",
    "→L[": "ContinuousLinearMap RingHom.id [",
    "≃L[": "ContinuousLinearEquiv RingHom.id [",
    "→ₗ[": "LinearMap RingHom.id [",
    "≃ₗ[": "LinearEquiv RingHom.id [",
    "→ₐ[": "AlgHom [",
    "≃ₐ[": "AlgEquiv [",
    "→ᵃ[": "AffineMap [",
    "⊗[": "TensorProduct [",
    "→+*": "RingHom",
    "≃+*": "RingEquiv",
    "→*₀": "MonoidWithZeroHom",
    "→*": "MonoidHom",
    "→+": "AddMonoidHom",
    "≃*": "MulEquiv",
    "≃+": "AddEquiv",
    "→₀": "Finsupp",
    "→ᵇ": "BoundedContinuousFunction",
    "≃o": "OrderIso",
    "↪o": "OrderEmbedding",
    "→o": "OrderHom",
    "Π₀": "DFinsupp",
    "C(": "ContinuousMap (",
    "ℤ_[": "PadicInt [",
    "ℚ_[": "Padic [",
}
_OPERATOR_RE = re.compile("|".join(re.escape(op) for op in sorted(_OPERATORS, key=len, reverse=True)))

# Constants that come from Lean core / Batteries rather than Mathlib. When an instance name
# mentions nothing else, Lean appends the project suffix (`_mathlib`) to keep it unique.
_CORE = frozenset(
    {
        "Nat",
        "Int",
        "List",
        "Array",
        "String",
        "Char",
        "Bool",
        "Prop",
        "Type",
        "Sort",
        "Option",
        "Unit",
        "PUnit",
        "Fin",
        "UInt8",
        "UInt16",
        "UInt32",
        "UInt64",
        "USize",
        "Float",
        "Prod",
        "PProd",
        "Sum",
        "PSum",
        "Sigma",
        "PSigma",
        "Subtype",
        "Decidable",
        "DecidableEq",
        "DecidablePred",
        "DecidableRel",
        "Inhabited",
        "Nonempty",
        "Repr",
        "ToString",
        "Hashable",
        "BEq",
        "LawfulBEq",
        "Functor",
        "Monad",
        "Applicative",
        "LawfulMonad",
        "LawfulFunctor",
        "Seq",
        "Bind",
        "Pure",
        "Coe",
        "CoeTail",
        "CoeHead",
        "CoeOut",
        "CoeSort",
        "CoeFun",
        "CoeDep",
        "HAdd",
        "HMul",
        "HSub",
        "HDiv",
        "HPow",
        "HMod",
        "Add",
        "Mul",
        "Sub",
        "Div",
        "Mod",
        "Neg",
        "Pow",
        "LT",
        "LE",
        "Max",
        "Min",
        "Ord",
        "OfNat",
        "Zero",
        "NatCast",
        "IntCast",
        "ToJson",
        "FromJson",
        "Quot",
        "Quotient",
        "Setoid",
        "HasEquiv",
        "Membership",
        "Insert",
        "Singleton",
        "EmptyCollection",
        "Append",
        "Subsingleton",
        "Thunk",
        "Except",
        "StateT",
        "ReaderT",
        "ExceptT",
        "OptionT",
        "IO",
        "Task",
        "Eq",
        "Ne",
        "Iff",
        "And",
        "Or",
        "Not",
        "True",
        "False",
        "Empty",
        "PEmpty",
        "ULift",
        "PLift",
        "Id",
        "Function",
        "Std",
        "Lean",
        "Vector",
        "ByteArray",
        "Substring",
        "Ordering",
        "Xor",
        "AndOp",
        "OrOp",
        "Complement",
        "HAnd",
        "HOr",
        "HXor",
        "HShiftLeft",
        "HShiftRight",
        "ShiftLeft",
        "ShiftRight",
        "SizeOf",
        "Rat",
        "Dvd",
    }
)

_TOKEN = re.compile(
    r"ℝ≥0∞|ℝ≥0|ℚ≥0|ℕ∞|⊕'|×'|ᵐᵒᵖ|ᵃᵒᵖ|ᵒᵈ|ᵒᵖ|[ℕℤℚℝℂℍ×⊕<≤>≥=≠∣⟶≅≃∈ˣ𝓝𝓞⥤≌⧸↪→∀Π]"
    r"|(?:«[^»]*»|[^\W\d][\w'!?₀-₉]*)(?:\.(?:«[^»]*»|[^\W\d][\w'!?₀-₉]*))*(?:\.\{[^}]*\})?"
    r"|\(\s*[^\W\d][\w']*\s*:=[^()]*\)"  # a named argument `(α := α)`: skipped below
    r"|\d+"
)
_KEYWORDS = frozenset({"fun", "λ", "∃", "by", "with", "at", "if", "then", "else"})
_FORALL = "Forall"  # a pi type (`∀ i, M i`, `ι → M`): Lean writes "Forall", never deduplicated


# Bundled-morphism notation heading a parent structure (`extends A ≃+* B`): the parent's head
# constant names the projection (`toRingEquiv`).
_HEADS: dict[str, str] = {
    "≃+*": "RingEquiv",
    "≃*": "MulEquiv",
    "≃+": "AddEquiv",
    "≃ₜ": "Homeomorph",
    "≃o": "OrderIso",
    "≃ₗc[": "CoalgEquiv",
    "≃ₗ[": "LinearEquiv",
    "≃ₐ[": "AlgEquiv",
    "≃L[": "ContinuousLinearEquiv",
    "≃+c[": "AddConstEquiv",
    "≃ᵃ[": "AffineEquiv",
    "≃ᵢ": "IsometryEquiv",
    "≃": "Equiv",
    "→ₙ+*": "NonUnitalRingHom",
    "→+*": "RingHom",
    "→*₀": "MonoidWithZeroHom",
    "→ₙ*": "MulHom",
    "→*": "MonoidHom",
    "→+": "AddMonoidHom",
    "→o": "OrderHom",
    "→ₗc[": "CoalgHom",
    "→ₗ[": "LinearMap",
    "→ₙₐ[": "NonUnitalAlgHom",
    "→ₐ[": "AlgHom",
    "→L[": "ContinuousLinearMap",
    "→ₑ+*[": "MulSemiringActionHom",
    "→ₑ+[": "DistribMulActionHom",
    "→ₑ[": "MulActionHom",
    "→+c[": "AddConstMap",
    "→ᵃ[": "AffineMap",
    "→ᵇ": "BoundedContinuousFunction",
    "↪o": "OrderEmbedding",
    "↪": "Function.Embedding",
    "⥤": "CategoryTheory.Functor",
}
_HEAD_RE = re.compile("|".join(re.escape(op) for op in sorted(_HEADS, key=len, reverse=True)))
_HEAD_IDENT = re.compile(r"(?:«[^»]*»|[^\W\d][\w'!?]*)(?:\.(?:«[^»]*»|[^\W\d][\w'!?]*))*")


def head_constant(type_text: str) -> str | None:
    """The constant at the head of a type, as written, or None when it cannot be told.

    Known bundled-morphism notation wins (``A ≃+* B`` is ``RingEquiv``); otherwise the first
    identifier, unless it looks like a variable (``A``, ``M₁``, ``α``).

    Example:
        >>> head_constant("A ≃+* B"), head_constant("Module.Finite R M"), head_constant("G ≃ₜ H")
        ('RingEquiv', 'Module.Finite', 'Homeomorph')
    """
    depth = 0
    for m in re.finditer(r"[(\[{⟨]|[)\]}⟩]|" + _HEAD_RE.pattern, type_text):
        tok = m.group()
        if tok in "([{⟨":
            depth += 1
        elif tok in ")]}⟩":
            depth -= 1
        elif depth == 0:
            return _HEADS[tok]
    ident = _HEAD_IDENT.match(type_text.lstrip("@ "))
    if ident is None:
        return None
    name = ident.group()
    if re.fullmatch(r"[A-Za-z][\d'₀-₉]*|[α-ωΑ-Ω𝕜𝔸𝕂][\w'₀-₉]*", name):
        return None
    return name


def _bound_names(binder_text: str) -> set[str]:
    names: set[str] = set()
    for group in re.finditer(r"[({⦃\[]([^:(){}\[\]⦃⦄]*?):", binder_text):
        names.update(group.group(1).split())
    # Binders without a type: `{M}`, `(R)`, `⦃x y⦄`.
    for group in re.finditer(r"[({⦃]([^:(){}\[\]⦃⦄=]*)[)}⦄]", binder_text):
        names.update(group.group(1).split())
    return names


def _constants(type_text: str, bound: set[str]) -> list[str]:
    """Constants (qualified as written) a type mentions, in order, variables left out."""
    out: list[str] = []
    type_text = _OPERATOR_RE.sub(lambda m: f" {_OPERATORS[m.group()]} ", type_text)
    for m in _TOKEN.finditer(type_text):
        tok = m.group()
        if tok.startswith("(") or tok.isdigit() or tok in _KEYWORDS:
            continue
        tok = re.sub(r"\.\{[^}]*\}$", "", tok)  # universe arguments `Foo.{u}`
        if tok in ("→", "∀", "Π", "forall"):
            out.append(_FORALL)
            continue
        if tok in _NOTATION:
            out.append(_NOTATION[tok])
            continue
        head = tok.split(".", 1)[0]
        if head in bound:
            # `x.Prime` is `Nat.Prime x`: the constant shows, the variable does not.
            if "." in tok:
                out.append(tok.rsplit(".", 1)[1])
            continue
        if tok in ("Type", "Sort", "Prop"):
            out.append(tok)
            continue
        # Auto-bound implicits and section variables are short lowercase or Greek names;
        # constants in Mathlib are capitalised (types, classes) or snake_case (functions).
        if len(tok) <= 2 and not tok[0].isupper():
            continue
        if re.fullmatch(r"[A-Za-z][\d'₀-₉]*", tok):  # `R`, `M₁`, `K'`: variables by convention
            continue
        if re.fullmatch(r"[α-ωΑ-Ω𝕜𝔸𝕂][\w'₀-₉]*", tok):
            continue
        out.append(tok)
    return out


def _piece(const: str) -> str:
    last = const.rsplit(".", 1)[-1].strip("«»")
    return last[:1].upper() + last[1:]


def _split_binders(binders: str) -> list[tuple[str, str, str]]:
    """``[(bracket, names, type)]`` for each top-level binder group of a signature prefix."""
    groups: list[tuple[str, str, str]] = []
    depth = 0
    start = -1
    pairs = {"(": ")", "[": "]", "{": "}", "⦃": "⦄"}
    for i, ch in enumerate(binders):
        if ch in "([{⦃⟨":
            if depth == 0:
                start = i
            depth += 1
        elif ch in ")]}⦄⟩":
            depth -= 1
            if depth == 0 and start >= 0:
                opener = binders[start]
                inner = binders[start + 1 : i]
                if opener in pairs:
                    # The names end at the first colon that is not part of `:=`.
                    colon = re.search(r":(?!=)", inner)
                    names_part = inner[: colon.start()] if colon else ""
                    if colon is None or re.search(r"[()\[\]{}]", names_part):
                        groups.append((opener, "", inner.strip()))  # `[Group α]`
                    else:
                        typ = inner[colon.end() :].split(":=", 1)[0]
                        groups.append((opener, names_part.strip(), typ.strip()))
                start = -1
    return groups


def instance_name(
    binders: str,
    type_text: str,
    *,
    namespace: Sequence[str] = (),
    variables: Iterable[str] = (),
    taken: Iterable[str] = (),
) -> str:
    """Approximate Lean 4's generated name for ``instance <binders> : <type_text>``.

    Lean's rule (``Lean.Elab.DeclNameGen``): ``"inst"`` followed by the capitalised last
    component of every constant in the type, then ``"Of"`` + constants for each non-dependent
    binder (instance arguments, hypotheses), each constant mentioned once; constants naming
    the current namespace or its prefixes are not repeated. If every constant is from Lean core,
    ``_mathlib`` is appended; a name already taken gets ``_1``, ``_2``, ...

    Args:
        binders: The binder groups before the colon, as text.
        type_text: The instance type after the colon.
        namespace: Components of the active namespace.
        variables: Binder groups of the ``variable`` commands in scope (their names are
            variables, not constants).
        taken: Full names already declared in this module (for the ``_n`` suffix).

    Returns:
        The short name (without the namespace).

    Example:
        >>> instance_name("{V : Type u} [Fintype V] [DecidableEq V]", "Fintype (SimpleGraph V)")
        'instFintypeSimpleGraphOfDecidableEq'
        >>> instance_name("(S : SSet) [KanComplex S]", "Quasicategory S", namespace=["SSet"])
        'instQuasicategoryOfKanComplex'
    """
    groups = _split_binders(binders)
    bound: set[str] = _bound_names(binders)
    _variable_names: set[str] = set()
    for group in variables:
        _variable_names |= _bound_names(group)
    bound |= _variable_names
    # Every prefix of the namespace counts as already mentioned (when it names a constant).
    seen: set[str] = set()
    for i in range(len(namespace)):
        seen.add(".".join(namespace[: i + 1]))
        seen.add(namespace[i])
    mentioned: list[str] = []

    def render(text: str) -> str:
        out = []
        for const in _constants(text, bound):
            if const == _FORALL:
                out.append(const)
                continue
            if const in seen or _piece(const) in seen:
                continue
            seen.add(const)
            seen.add(_piece(const))
            mentioned.append(const)
            out.append(_piece(const))
        return "".join(out)

    body = render(type_text)
    # Lean visits the type first, then the binders from the innermost outwards, but writes
    # the `Of...` parts in binder order.
    ofs: list[str] = []
    for idx in range(len(groups) - 1, -1, -1):
        _opener, names, typ = groups[idx]
        later = " ".join(g[2] for g in groups[idx + 1 :]) + " " + type_text
        dependent = bool(names) and any(
            re.search(rf"(?<![\w.']){re.escape(n)}(?![\w'])", later) for n in names.split()
        )
        if not dependent and _opener == "[" and not names:
            # An instance argument that a later instance argument on the same variables needs
            # (`[Add M] [TwoUniqueSums M]`: `TwoUniqueSums M` is `@TwoUniqueSums M inst`) is
            # a dependency in Lean's eyes and not named. Without types we guess: a later
            # instance binder over the same variables depends on it.
            own = set(re.findall(r"(?<![\w.'])[^\W\d][\w'₀-₉]*", typ)) & (bound | _variable_names)
            dependent = bool(own) and any(
                g[0] == "[" and own <= set(re.findall(r"(?<![\w.'])[^\W\d][\w'₀-₉]*", g[2]))
                for g in groups[idx + 1 :]
            )
        if dependent or not typ:
            continue
        # `[∀ i, AddCommGroup (M i)]`: Lean leaves out a leading forall over a variable.
        text = render(re.sub(r"^(?:∀|Π)[^,]*,\s*", "", typ))
        if text:
            ofs.append("Of" + text)
    name = "inst" + body + "".join(reversed(ofs))
    # Lean counts the namespace among the mentioned constants when it names one; we cannot
    # check that, so any namespace outside core (and not a pure `...Theory` namespace) counts.
    local_ns = [c for c in namespace if c not in _CORE and not c.endswith("Theory") and c != "Mathlib"]
    if mentioned and not local_ns and all(c.split(".", 1)[0] in _CORE for c in mentioned):
        name += "_mathlib"
    taken_set = set(taken)
    prefix = ".".join(namespace)
    full = f"{prefix}.{name}" if prefix else name
    if full in taken_set:
        n = 1
        while f"{full}_{n}" in taken_set:
            n += 1
        name = f"{name}_{n}"
    return name
