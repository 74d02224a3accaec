r"""Lean-aware lexical analysis: names and notation as words, for the BM25 side of premise search.

bm25s's default tokenizer keeps runs of two or more word characters, so a Lean signature loses
every operator (``a ∣ b``, ``x⁻¹``, ``∑ i, f i``, ``s ⊆ t``) and every one-letter word, and a
qualified name such as ``Nat.Prime.two_le`` survives only as its pieces when they are long
enough. Mathlib's naming convention spells notation as words (``mul_le_mul``, ``dvd_trans``,
``inv_inv``, ``sum_comm``), and users type either form, so the analyser rewrites both the indexed
text and the query into the same words before the default tokenizer runs:

* notation becomes the word Mathlib names it with (``≤`` → ``le``, ``∣`` → ``dvd``, ``⁻¹`` →
  ``inv``, ``∑`` → ``sum``, ``ℝ`` → ``Real``), keeping the symbol's neighbours apart;
* identifiers are split at dots, underscores, primes and camelCase humps (``IsOpen.inter`` →
  ``IsOpen Is Open inter``), keeping the whole piece too;
* LaTeX commands become their names (``\sqcup`` → ``sqcup`` → ``sup``) through the same table.

The analyser is a text-to-text function so that it composes with the index's stopwords and
stemmer: :class:`agentrag.retrieve.bm25.BM25Index` applies it to every text and query when
``[retrieval.bm25] analyzer = "lean"``.

Example:
    >>> lean_lexical("theorem Nat.Prime.two_le : 2 ≤ p")
    'theorem Nat Prime two le : 2  le  p'
    >>> lean_lexical("a ∣ b → a ∣ b * c")
    'a  dvd  b  imp  a  dvd  b  mul  c'
"""

from __future__ import annotations

import re

from agentrag.premise.names import name_words

__all__ = ["NOTATION", "lean_lexical"]

NOTATION: dict[str, str] = {
    # order and equality
    "≤": "le",
    "<": "lt",
    "≥": "ge",
    ">": "gt",
    "≠": "ne",
    "=": "eq",
    "≡": "modEq",
    "≃": "equiv",
    "≅": "iso",
    "⋖": "covBy",
    "⩿": "wcovBy",
    # logic
    "→": "imp",
    "↔": "iff",
    "∀": "forall",
    "∃": "exists",
    "¬": "not",
    "∧": "and",
    "∨": "or",
    "⊢": "",
    # arithmetic
    "∣": "dvd",
    "⁻¹": "inv",
    "+": "add",
    "*": "mul",
    "•": "smul",
    "/": "div",
    "^": "pow",
    "√": "sqrt",
    "∑": "sum",
    "∏": "prod",
    "∫": "integral",
    "∂": "deriv",
    "∞": "top infinity",
    "π": "pi",
    "%": "mod",
    # sets and lattices
    "∈": "mem",
    "∉": "not mem",
    "⊆": "subset",
    "⊂": "ssubset",
    "⊇": "superset",
    "∪": "union",
    "∩": "inter",
    "∅": "empty",
    "ᶜ": "compl",
    "∆": "symmDiff",
    "⊔": "sup",
    "⊓": "inf",
    "⊤": "top",
    "⊥": "bot",
    "⨆": "iSup",
    "⨅": "iInf",
    "⋃": "iUnion",
    "⋂": "iInter",
    "×": "prod",
    "∘": "comp",
    "⊗": "tensor",
    "⊕": "sum",
    "↑": "coe",
    "‖": "norm",
    "⌊": "floor",
    "⌈": "ceil",
    "⟪": "inner",
    "𝓝": "nhds",
    "∠": "angle",
    # number systems
    "ℝ": "Real",
    "ℕ": "Nat",
    "ℤ": "Int",
    "ℚ": "Rat",
    "ℂ": "Complex",
    "ℍ": "Quaternion",
    "ℝ≥0∞": "ENNReal",
    "ℝ≥0": "NNReal",
}
"""Lean / Mathlib notation and the word Mathlib's naming convention uses for it."""

_LATEX: dict[str, str] = {
    "leq": "le",
    "le": "le",
    "geq": "ge",
    "ge": "ge",
    "neq": "ne",
    "mid": "dvd",
    "sum": "sum",
    "prod": "prod",
    "int": "integral",
    "sqcup": "sup",
    "sqcap": "inf",
    "cup": "union",
    "cap": "inter",
    "subseteq": "subset",
    "subset": "ssubset",
    "in": "mem",
    "notin": "not mem",
    "emptyset": "empty",
    "varnothing": "empty",
    "infty": "top infinity",
    "mathbb": "",
    "mathcal": "",
    "mathrm": "",
    "operatorname": "",
    "frac": "div",
    "cdot": "mul",
    "times": "prod",
    "circ": "comp",
    "to": "imp",
    "rightarrow": "imp",
    "iff": "iff",
    "forall": "forall",
    "exists": "exists",
    "neg": "not",
    "land": "and",
    "lor": "or",
    "top": "top",
    "bot": "bot",
    "otimes": "tensor",
    "oplus": "sum",
    "equiv": "modEq",
    "cong": "iso",
    "lfloor": "floor",
    "lceil": "ceil",
    "partial": "deriv",
    "sqrt": "sqrt",
}

# Longest first, so ``ℝ≥0∞`` wins over ``ℝ`` and ``⁻¹`` is one symbol.
_SYMBOLS = re.compile("|".join(re.escape(s) for s in sorted(NOTATION, key=len, reverse=True)))
_LATEX_CMD = re.compile(r"\\([A-Za-z]+)")
_MATHBB = re.compile(r"\\mathbb\s*\{?\s*([RNZQC])\s*\}?")
_BLACKBOARD = {"R": "Real", "N": "Nat", "Z": "Int", "Q": "Rat", "C": "Complex"}
# A Lean identifier: word characters, dots between pieces, primes and ?/! suffixes.
_IDENT = re.compile(r"[^\W\d][\w'!?]*(?:\.[^\W\d][\w'!?]*)*", re.UNICODE)


def _split_ident(match: re.Match[str]) -> str:
    ident = match.group(0)
    words = name_words(ident)
    return " ".join(words) if words else ident


def lean_lexical(text: str) -> str:
    """Rewrite Lean / LaTeX notation as words and split identifiers, for a word tokenizer.

    Args:
        text: A declaration's retrieval text or a query, in any style.

    Returns:
        The same content with notation spelled out as the words Mathlib names use and every
        identifier followed by its pieces; meant to be tokenized by the index's usual tokenizer.
    """
    text = _MATHBB.sub(lambda m: f" {_BLACKBOARD[m.group(1)]} ", text)
    text = _LATEX_CMD.sub(lambda m: f" {_LATEX.get(m.group(1), m.group(1))} ", text)
    text = _SYMBOLS.sub(lambda m: f" {NOTATION[m.group(0)]} ", text)
    return _IDENT.sub(_split_ident, text)
