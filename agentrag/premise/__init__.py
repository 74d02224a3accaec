r"""Lean 4 / Mathlib premise retrieval: the declaration corpus.

:func:`iter_tree` walks a Mathlib checkout and yields one :class:`Declaration` per theorem,
definition, instance, structure (and field), ... with its full name, signature and docstring;
:meth:`Declaration.retrieval_text` is what gets embedded and BM25-indexed. No Lean toolchain is
needed: the extractor reads the source text.

Example:
    >>> from agentrag.premise import extract_text
    >>> [d.name for d in extract_text("namespace Nat\ntheorem foo : 1 = 1 := rfl\nend Nat\n")]
    ['Nat.foo']
"""

from __future__ import annotations

from agentrag.premise.extract import (
    DECLARATION_KINDS,
    Declaration,
    DeclarationKind,
    ExtractionFailure,
    extract_file,
    extract_text,
    iter_tree,
    module_name,
)
from agentrag.premise.names import instance_name, name_words

__all__ = [
    "DECLARATION_KINDS",
    "Declaration",
    "DeclarationKind",
    "ExtractionFailure",
    "extract_file",
    "extract_text",
    "instance_name",
    "iter_tree",
    "module_name",
    "name_words",
]
