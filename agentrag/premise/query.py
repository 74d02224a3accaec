r"""What kind of premise query this is: Lean, LaTeX or natural language.

MathlibQR asks for the same declaration in several styles (``q1a_lean`` with Lean notation in
backticks, ``q1b_latex`` with ``$...$``, ``q1c_natural`` and the slogan / nickname styles in
plain words). The style decides which query-side steps can pay: notation is handled by the
Lean analyzer on the lexical side for every style, while a hypothetical Lean statement
(HyDE-style, one generation) is only worth its cost for a natural-language query, which shares
no notation with the formal text it looks for.

Example:
    >>> query_style("`f (lfp f) = lfp f`"), query_style(r"$a \mid b$"), query_style("compact set")
    ('lean', 'latex', 'natural')
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["QueryStyle", "query_style"]

QueryStyle = Literal["lean", "latex", "natural"]

_LATEX = re.compile(r"\$[^$]+\$|\\[A-Za-z]+")
# Lean notation outside ASCII, or code in backticks, or a qualified / snake_case identifier.
_LEAN_SYMBOL = re.compile(r"[≤≥≠∣⁻¹∑∏∫→↔∀∃¬∧∨∈∉⊆⊂∪∩∅ᶜ⊔⊓⊤⊥⨆⨅⋃⋂×∘⊗⊕↑‖⌊⌈⟪𝓝ℝℕℤℚℂ≃≅•]")
_LEAN_IDENT = re.compile(r"`[^`]+`|\b[A-Z][A-Za-z]*\.[a-z_][\w']*|\b[a-z]+_[a-z_]+\b")


def query_style(query: str) -> QueryStyle:
    """Classify a premise query by its surface form.

    Args:
        query: The user's query.

    Returns:
        ``latex`` when it holds ``$...$`` or a backslash command, ``lean`` when it holds Lean
        notation, code in backticks or a Lean-style identifier, ``natural`` otherwise.
    """
    if _LATEX.search(query):
        return "latex"
    if _LEAN_SYMBOL.search(query) or _LEAN_IDENT.search(query):
        return "lean"
    return "natural"
