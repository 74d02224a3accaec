from __future__ import annotations

import random
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from agentrag.ingest.manifest import Manifest
from agentrag.stores.filters import And, Eq, Filter, In, Or, Range, to_filter
from agentrag.types import Chunk


def test_shorthand_and_operators() -> None:
    assert to_filter(None) is None and to_filter({}) is None
    assert to_filter({"a": 1}) == Eq(field="a", value=1)
    assert to_filter({"a": 1, "b": ["x", "y"]}) == And(
        filters=(Eq(field="a", value=1), In(field="b", values=("x", "y")))
    )
    f = Eq(field="a", value=1) | Range(field="y", gte=3)
    assert isinstance(f, Or) and f.matches({"y": 4}) and not f.matches({"a": 2, "y": 1})
    with pytest.raises(TypeError):
        to_filter(["a"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Range(field="y")


def test_bool_and_number_are_distinct() -> None:
    assert not Eq(field="f", value=True).matches({"f": 1})
    assert not Eq(field="f", value=1).matches({"f": True})
    assert not Range(field="f", gte=0).matches({"f": True})
    assert In(field="f", values=(1, "1")).matches({"f": "1"})


def test_json_round_trip() -> None:
    f = And(
        filters=(
            Eq(field="a", value="x"),
            Or(filters=(In(field="b", values=(1, 2)), Range(field="c", lt=3.5))),
        )
    )
    adapter = TypeAdapter(Filter)
    assert adapter.validate_json(adapter.dump_json(f)) == f


def test_sql_translation_agrees_with_python(tmp_path: Path) -> None:
    # The BM25 side filters in SQL over the manifest; it must select exactly what matches().
    rng = random.Random(1)
    manifest = Manifest(tmp_path / "m.sqlite")
    metas = []
    chunks = []
    for i in range(300):
        meta = {
            "lang": rng.choice(["en", "fr", "de"]),
            "year": rng.randint(1990, 2020),
            "score": rng.random() * 10,
            "flag": rng.random() < 0.5,
            "odd key.with dot": rng.choice(["a", "b"]),
        }
        if rng.random() < 0.2:
            del meta["year"]
        if rng.random() < 0.1:
            meta["year"] = "unknown"  # a string where others have numbers
        metas.append(meta)
        chunks.append(Chunk(id=f"c{i}", text=f"t{i}", source=f"s{i % 7}", doc_id=f"d{i % 7}", metadata=meta))
    by_doc: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    manifest.prepare([(d, f"s{d[1:]}", "h", 0, cs) for d, cs in by_doc.items()])
    manifest.commit(list(by_doc))
    rowid_of = {cid: r for r, cid in manifest.live_ids_by_rowids(manifest.live_rowids().tolist()).items()}
    filters = [
        Eq(field="lang", value="en"),
        Eq(field="flag", value=False),
        Eq(field="year", value=2001),
        Eq(field="odd key.with dot", value="a"),
        Eq(field="source", value="s3"),
        In(field="lang", values=("en", "de")),
        Range(field="year", gte=2000, lt=2010),
        Range(field="score", gt=2.5, lte=7.5),
        And(filters=(Eq(field="lang", value="fr"), Range(field="year", lt=2005))),
        Or(filters=(Eq(field="flag", value=True), In(field="year", values=(1990, 1991)))),
    ]
    for f in filters:
        want = sorted(rowid_of[c.id] for c in chunks if f.matches({**c.metadata, "source": c.source}))
        got = manifest.live_rowids(f).tolist()
        assert got == want, f
    manifest.close()
