"""Metadata filters: one small typed language, translated for each backend.

``Eq``, ``In``, ``Range``, ``And``, ``Or`` are frozen pydantic models (JSON round-trip, so they
can sit in graph state); ``&`` and ``|`` combine them. Every vector store translates them to its
own syntax (Chroma ``where``, Qdrant ``Filter``); the BM25 side evaluates them in SQL over the
manifest; :meth:`matches` evaluates them in Python (the exact store, the LangChain adapter).

Example:
    >>> from agentrag.stores.filters import Eq, In, Range
    >>> f = Eq(field="lang", value="en") & Range(field="year", gte=2000)
    >>> f.matches({"lang": "en", "year": 2004})
    True
    >>> to_filter({"lang": "en", "tag": ["a", "b"]}) == Eq(field="lang", value="en") & In(
    ...     field="tag", values=("a", "b"))
    True
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrag.types import MetadataValue

__all__ = ["And", "Eq", "Filter", "FilterLike", "In", "Or", "Range", "to_filter"]


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def __and__(self, other: _Node) -> And:
        return And(filters=(self, other))

    def __or__(self, other: _Node) -> Or:
        return Or(filters=(self, other))

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a chunk with this metadata passes."""
        raise NotImplementedError


def _same(a: Any, b: Any) -> bool:
    # True == 1 in Python; in metadata a bool and a number are different things.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


class Eq(_Node):
    """``field == value``."""

    kind: Literal["eq"] = "eq"
    """Discriminator."""

    field: str
    """Metadata key."""

    value: MetadataValue
    """Value to equal."""

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return self.field in metadata and _same(metadata[self.field], self.value)


class In(_Node):
    """``field`` equals one of ``values``."""

    kind: Literal["in"] = "in"
    """Discriminator."""

    field: str
    """Metadata key."""

    values: tuple[MetadataValue, ...] = Field(min_length=1)
    """Accepted values."""

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return self.field in metadata and any(_same(metadata[self.field], v) for v in self.values)


_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class Range(_Node):
    """A numeric range on ``field`` (bounds left empty are open)."""

    kind: Literal["range"] = "range"
    """Discriminator."""

    field: str
    """Metadata key (numeric values)."""

    gt: float | None = None
    """Exclusive lower bound."""

    gte: float | None = None
    """Inclusive lower bound."""

    lt: float | None = None
    """Exclusive upper bound."""

    lte: float | None = None
    """Inclusive upper bound."""

    @model_validator(mode="after")
    def _some_bound(self) -> Range:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("a Range needs at least one of gt, gte, lt, lte")
        return self

    def bounds(self) -> list[tuple[str, float]]:
        """The set bounds as ``(op, value)`` pairs, ``op`` in gt/gte/lt/lte."""
        return [(op, v) for op in ("gt", "gte", "lt", "lte") if (v := getattr(self, op)) is not None]

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        value = metadata.get(self.field)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return all(_OPS[op](value, bound) for op, bound in self.bounds())


class And(_Node):
    """All of ``filters``."""

    kind: Literal["and"] = "and"
    """Discriminator."""

    filters: tuple[Filter, ...] = Field(min_length=1)
    """Conditions that must all hold."""

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return all(f.matches(metadata) for f in self.filters)


class Or(_Node):
    """Any of ``filters``."""

    kind: Literal["or"] = "or"
    """Discriminator."""

    filters: tuple[Filter, ...] = Field(min_length=1)
    """Conditions of which one must hold."""

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return any(f.matches(metadata) for f in self.filters)


Filter = Annotated[Eq | In | Range | And | Or, Field(discriminator="kind")]
"""Any filter node."""

And.model_rebuild()
Or.model_rebuild()

FilterLike = Eq | In | Range | And | Or | Mapping[str, MetadataValue | Sequence[MetadataValue]]
"""A filter, or the shorthand ``{"field": value, "other": [a, b]}`` (equality / membership, all
must hold)."""


def to_filter(value: FilterLike | None) -> Eq | In | Range | And | Or | None:
    """Normalise a filter or the mapping shorthand; ``None`` and ``{}`` mean no filter."""
    if value is None or isinstance(value, Eq | In | Range | And | Or):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"filters must be a Filter or a mapping, not {type(value).__name__}")
    nodes: list[Eq | In | Range | And | Or] = []
    for key, val in value.items():
        if isinstance(val, str | int | float | bool):
            nodes.append(Eq(field=key, value=val))
        else:
            nodes.append(In(field=key, values=tuple(val)))
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else And(filters=tuple(nodes))
