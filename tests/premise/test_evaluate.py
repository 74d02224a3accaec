"""MathlibQR / MathlibMPR readers and metrics on hand-checked cases; the resumable runner's logic.

The runner tests use a fake searcher (the logic under test is caching and scoring); the real
search is exercised in test_corpus.py, the CLI tests and the examples.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agentrag.errors import ConfigError, LLMTimeoutError
from agentrag.premise.evaluate import (
    QR_STYLES,
    EvalConfig,
    EvalQuery,
    EvalRecord,
    EvalReport,
    PremiseGroup,
    comparison_markdown,
    config_from_spec,
    detect_format,
    mpr_scores,
    qr_position,
    read_eval_data,
    read_mathlibmpr,
    read_mathlibqr,
    report_markdown,
    run_eval,
    short_name,
    summarize,
)
from agentrag.premise.search import PremiseHit, PremiseResult

DATA = Path(__file__).parent / "data" / "eval"
QR = DATA / "qr_small.json"
MPR = DATA / "mpr_small.json"


# ----------------------------------------------------------------------------- readers


def test_read_mathlibqr_small_file() -> None:
    qs = read_mathlibqr(QR)
    # T1: 5 non-empty styles, T2: 4, T3: 5, T4: 2.
    assert len(qs) == 16
    assert qs[0].id == "T1_q1a_lean" and qs[0].gold == ["Lattice"] and qs[0].style == "q1a_lean"
    assert {q.style for q in qs if q.meta["decl"] == "T4"} == {"q1a_lean", "q1c_natural"}
    assert all(q.query.strip() for q in qs)
    only = read_mathlibqr(QR, styles=["q3_nickname", "q4_special_case"])
    assert [q.id for q in only] == ["T1_q3_nickname", "T3_q4_special_case"]
    with pytest.raises(ConfigError, match="unknown MathlibQR style"):
        read_mathlibqr(QR, styles=["q9"])


def test_read_real_mathlibqr(shared_data: Path) -> None:
    qs = read_mathlibqr(shared_data / "mathlib" / "MathlibQR.json")
    assert len(qs) == 946  # the data README's count of non-empty queries
    assert len({q.id for q in qs}) == 946
    assert {q.style for q in qs} == set(QR_STYLES)
    assert detect_format(shared_data / "mathlib" / "MathlibQR.json") == "mathlibqr"


def test_read_mathlibmpr_small_file() -> None:
    qs = read_mathlibmpr(MPR)
    assert [q.id for q in qs] == ["mpr_test_001", "mpr_test_002"]
    first = qs[0]
    assert first.style == "mpr" and not first.gold
    assert first.query.startswith("In a lattice") and "theorem sup_inf_le" in first.query
    assert [g.docs for g in first.groups] == [
        ["Lattice", "Lattice.toSemilatticeSup"],
        ["Lattice.toSemilatticeInf"],
    ]
    assert [g.kind for g in qs[1].groups] == ["original", "original", "alternative"]
    assert first.meta == {"pr": "1", "main_result": "Lattice.sup_inf_le"}
    assert detect_format(MPR) == "mpr"
    assert [q.id for q in read_eval_data(MPR)] == ["mpr_test_001", "mpr_test_002"]
    with pytest.raises(ConfigError, match="no query styles"):
        read_eval_data(MPR, "mpr", ["q3_nickname"])


def test_read_mathlibmpr_rejects_other_shapes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"id": "x", "NL_main_result": "s", "premise_group": [{"kind": "other", "docs": ["a"]}]}])
    )
    with pytest.raises(ConfigError, match="row 0 is not a MathlibMPR problem"):
        read_mathlibmpr(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_mathlibmpr(bad)
    with pytest.raises(ConfigError, match="is not MathlibQR"):
        read_mathlibqr(MPR)


# ----------------------------------------------------------------------------- metrics


def _records(rankings: dict[str, list[str]], style: str = "q1a_lean") -> list[EvalRecord]:
    return [EvalRecord(id=q, style=style, retrieved=r) for q, r in rankings.items()]


def test_mathlibqr_ndcg_and_recall_by_hand() -> None:
    # LeanSearch v2: nDCG@k = 1/log2(pos+1) for the gold at 1-based pos <= k, else 0.
    queries = {
        "a": EvalQuery(id="a", query="x", style="q1a_lean", gold=["G"]),  # pos 1 -> 1
        "b": EvalQuery(id="b", query="x", style="q1a_lean", gold=["G"]),  # pos 3 -> 0.5
        "c": EvalQuery(id="c", query="x", style="q2_slogan", gold=["G"]),  # pos 11 -> 0 at k=10
        "d": EvalQuery(id="d", query="x", style="q2_slogan", gold=["G"]),  # absent -> 0
        "e": EvalQuery(id="e", query="x", style="q2_slogan", gold=["G"]),  # pos 2 -> 1/log2(3)
    }
    filler = [f"n{i}" for i in range(20)]
    rankings = {
        "a": ["G", *filler[:9]],
        "b": ["x", "y", "G", *filler[:7]],
        "c": [*filler[:10], "G"],
        "d": filler[:10],
        "e": ["x", "G"],
    }
    records = _records({q: r for q, r in rankings.items() if q in ("a", "b")}) + _records(
        {q: r for q, r in rankings.items() if q in ("c", "d", "e")}, "q2_slogan"
    )
    assert qr_position(rankings["b"], "G") == 3 and qr_position(rankings["d"], "G") is None
    table = summarize(records, queries, k=10)
    assert list(table) == ["q1a_lean", "q2_slogan", "all"]
    assert table["q1a_lean"]["n"] == 2
    assert table["q1a_lean"]["ndcg@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert table["q1a_lean"]["recall@10"] == pytest.approx(1.0)
    assert table["q1a_lean"]["recall@1"] == pytest.approx(0.5)
    assert table["q2_slogan"]["ndcg@10"] == pytest.approx((0 + 0 + 1 / math.log2(3)) / 3)
    assert table["q2_slogan"]["recall@10"] == pytest.approx(1 / 3)
    assert table["all"]["n"] == 5
    assert table["all"]["ndcg@10"] == pytest.approx((1 + 0.5 + 1 / math.log2(3)) / 5)
    assert table["all"]["recall@5"] == pytest.approx(3 / 5)
    # The shared metrics module (trec_eval) agrees with the formula at every position.
    for pos in range(1, 11):
        ranking = [*filler[: pos - 1], "G"]
        row = summarize(_records({"a": ranking}), queries, k=10)["all"]
        assert row["ndcg@10"] == pytest.approx(1 / math.log2(pos + 1))


def test_config_specs() -> None:
    c = config_from_spec("bm25", k=5)
    assert (c.mode, c.search_mode, c.rerank, c.hyde, c.k) == ("standard", "bm25", False, "off", 5)
    c = config_from_spec("hybrid+rerank+hyde-all", candidates=20)
    assert (c.search_mode, c.rerank, c.candidates, c.hyde) == ("hybrid", True, 20, "all")
    assert config_from_spec(" dense+hyde ").hyde == "natural"
    assert config_from_spec("reasoning", fmt="mpr").model_dump()["mode"] == "reasoning"
    capped = config_from_spec("reasoning", max_rounds=1, max_seconds=30.0)
    assert capped.budget() == {"max_rounds": 1, "max_wall_s": 30.0}
    assert config_from_spec("hybrid", max_rounds=1).budget() is None
    for bad in ("sparse", "hybrid+rerunk", "hybrid+rerank+rerank", "bm25+hyde+hyde-all", "hybrid+", ""):
        with pytest.raises(ConfigError) as err:
            config_from_spec(bad)
        assert err.value.hint and "+rerank" in err.value.hint


def test_comparison_table() -> None:
    def report(name: str, ndcg: float, style_rows: dict[str, float]) -> tuple[str, EvalReport]:
        by_style = {s: {"n": 2.0, "ndcg@10": v, "recall@10": 1.0} for s, v in style_rows.items()}
        by_style["all"] = {"n": 4.0, "ndcg@10": ndcg, "recall@10": 0.5}
        return name, EvalReport(
            config=config_from_spec(name), data="d", kb="lean", n=4, search_seconds=2.0, by_style=by_style
        )

    table = comparison_markdown(
        [report("bm25", 0.25, {"q1a_lean": 0.5}), report("hybrid+rerank", 0.75, {"q3_nickname": 0.125})]
    )
    lines = table.splitlines()
    assert lines[2] == "| style | n | bm25 | hybrid+rerank |"
    # Styles in the release's order, a style one run lacks shown as missing, `all` last.
    assert lines[4] == "| q1a_lean | 2 | 0.500 / 1.000 | – |"
    assert lines[5] == "| q3_nickname | 2 | – | 0.125 / 1.000 |"
    assert lines[6] == "| **all** | 4 | 0.250 / 0.500 | 0.750 / 0.500 |"
    assert lines[7] == "| s/query | | 0.50 | 0.50 |"
    assert comparison_markdown([]) == ""


def test_mpr_group_recall_and_covered_by_hand() -> None:
    groups = [
        PremiseGroup(docs=["A.one", "A.one'"]),
        PremiseGroup(docs=["B.two"]),
        PremiseGroup(kind="alternative", docs=["C.three"]),
    ]
    # Group 1 by its second alternative name, group 3 (the alternative route) hit; group 2 not.
    s = mpr_scores(["x", "A.one'", "C.three", "B.two"], groups, k=3)
    assert s == {"recall_group": pytest.approx(2 / 3), "covered": 1, "hit": [True, False, True]}
    # At k=4 every group is hit.
    assert mpr_scores(["x", "A.one'", "C.three", "B.two"], groups, k=4)["recall_group"] == 1.0
    # Original route incomplete, alternative not hit -> not covered.
    s = mpr_scores(["A.one", "z"], groups, k=10)
    assert (s["recall_group"], s["covered"]) == (pytest.approx(1 / 3), 0)
    # Only original groups: covered means all hit.
    only = groups[:2]
    assert mpr_scores(["B.two", "A.one"], only, k=2)["covered"] == 1
    assert mpr_scores(["B.two", "A.one"], only, k=1)["covered"] == 0
    # LeanSearch doc ids (`Module::Name::index`) compare by the bare name.
    assert short_name("Mathlib.Order.Basic::A.one::17") == "A.one"
    assert short_name("A.one") == "A.one" and short_name("M::x::y") == "y"
    assert mpr_scores(["Mathlib.X::B.two::3"], only, k=1)["hit"] == [False, True]


def test_mpr_summary_macro_averages() -> None:
    queries = {q.id: q for q in read_mathlibmpr(MPR)}
    records = [
        EvalRecord(id="mpr_test_001", style="mpr", retrieved=["Lattice.toSemilatticeSup", "zzz"]),
        EvalRecord(id="mpr_test_002", style="mpr", retrieved=["SSet.instQuasicategoryOfKanComplex"]),
    ]
    table = summarize(records, queries, k=10)
    # Problem 1: 1 of 2 groups, not covered. Problem 2: 2 of 3 groups (the index-suffixed id is
    # not retrieved), covered through the alternative route.
    assert table["all"]["recall_group@10"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert table["all"]["covered@10"] == pytest.approx(0.5)
    assert table["mpr"]["n"] == 2


# ----------------------------------------------------------------------------- runner


class _FakeKB:
    name = "fake"

    class _Embedder:
        name = "fake-embedder"

    class _Manifest:
        version = 7

        def live_rowids(self, flt: Any) -> Any:
            import numpy as np

            return np.asarray([i for i, n in enumerate(_FakeKB.present) if n in flt.values], dtype=np.int64)

        def live_ids_by_rowids(self, rowids: list[int]) -> dict[int, str]:
            return {r: str(r) for r in rowids}

    present: ClassVar[list[str]] = [
        "Lattice",
        "SSet.instQuasicategoryOfKanComplex",
        "instFintypeSimpleGraphOfDecidableEq",
    ]

    def __init__(self) -> None:
        self.embedder = self._Embedder()
        self.manifest = self._Manifest()

    def get(self, ids: list[str]) -> list[Any]:
        from agentrag.types import Chunk

        return [Chunk(id=i, text="", source="s", metadata={"name": self.present[int(i)]}) for i in ids]


class _FakeSearcher:
    """Returns the gold at position 2 for every query; fails on the queries it is told to."""

    def __init__(self, settings: Any, fail: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.kb = _FakeKB()
        self.settings = settings
        self.fail = set(fail)
        self.degrade: set[str] = set()
        self.calls: list[str] = []
        self.hyde: list[str | None] = []
        self.budgets: list[Any] = []
        self.gold = {q.query: q.gold[0] for q in read_mathlibqr(QR)}

    async def arun(self, query: str, **kw: Any) -> PremiseResult:
        self.calls.append(query)
        self.hyde.append(kw.get("hyde"))
        self.budgets.append(kw.get("budget"))
        if query in self.fail:
            raise LLMTimeoutError("no answer")
        hits = [PremiseHit(rank=1, name="other"), PremiseHit(rank=2, name=self.gold[query])]
        if query in self.degrade:  # as PremiseSearcher reports a failed HyDE generation
            return PremiseResult(hits=hits, errors=["hyde: cannot reach the server"])
        return PremiseResult(hits=hits, hyde="theorem guess : True" if kw.get("hyde") != "off" else "")


def test_runner_scores_writes_and_resumes(tmp_path: Path, settings: Any) -> None:
    queries = read_mathlibqr(QR)
    out = tmp_path / "run"
    searcher = _FakeSearcher(settings, fail={queries[3].query})
    seen: list[int] = []
    report = run_eval(
        searcher,  # type: ignore[arg-type]
        queries[:6],
        EvalConfig(k=10),
        data=QR,
        out_dir=out,
        progress=lambda done, total, rec: seen.append(done),
    )
    assert seen == [1, 2, 3, 4, 5, 6]
    assert report.n == 6 and report.errors == 1 and report.reused == 0
    # Five queries with the gold at position 2, one failed (scores 0).
    assert report.overall["ndcg@10"] == pytest.approx(5 / 6 / math.log2(3))
    assert report.overall["recall@1"] == 0.0
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 5  # the failed query is not cached
    assert json.loads((out / "report.json").read_text())["n"] == 6
    md = (out / "report.md").read_text()
    assert "| **all** | 6 |" in md and "ndcg@10" in md

    # Interrupted mid-write: a partial last line is ignored and that query reruns.
    with (out / "records.jsonl").open("a") as fh:
        fh.write('{"id": "T2_q1a_lean", "sty')
    searcher.calls.clear()
    searcher.fail.clear()
    report = run_eval(searcher, queries, EvalConfig(k=10), data=QR, out_dir=out)  # type: ignore[arg-type]
    assert report.reused == 5 and report.errors == 0 and report.n == len(queries)
    assert len(searcher.calls) == len(queries) - 5
    assert report.overall["ndcg@10"] == pytest.approx(1 / math.log2(3))
    # Gold names present in the (fake) corpus: 3 of the 4 distinct golds.
    assert (report.gold_in_corpus, report.gold_total) == (3, 4)
    assert "Gold names in the corpus: 3/4" in report_markdown(report)


def test_default_run_folder_depends_on_the_setup(tmp_path: Path, settings: Any) -> None:
    queries = read_mathlibqr(QR)[:2]
    searcher = _FakeSearcher(settings)
    a = run_eval(searcher, queries, EvalConfig(k=10), data=QR)  # type: ignore[arg-type]
    b = run_eval(searcher, queries, EvalConfig(k=10), data=QR)  # type: ignore[arg-type]
    c = run_eval(searcher, queries, EvalConfig(k=5), data=QR)  # type: ignore[arg-type]
    assert a.out_dir == b.out_dir and b.reused == 2
    assert c.out_dir != a.out_dir and c.reused == 0
    assert Path(a.out_dir).parent == settings.data_dir / "premise-eval"
    searcher.kb.manifest.version = 8  # the knowledge base changed: nothing may be reused
    d = run_eval(searcher, queries, EvalConfig(k=10), data=QR)  # type: ignore[arg-type]
    assert d.out_dir != a.out_dir and d.reused == 0
    # A reasoning budget is part of the key and reaches the search; none by default.
    assert set(map(str, searcher.budgets)) == {"None"}
    capped = EvalConfig(k=10, max_rounds=1, max_seconds=90.0)
    e = run_eval(searcher, queries, capped, data=QR)  # type: ignore[arg-type]
    assert e.out_dir != d.out_dir and e.reused == 0
    assert searcher.budgets[-1] == {"max_rounds": 1, "max_wall_s": 90.0}


def test_hyde_runs_are_keyed_apart_and_degraded_queries_rerun(tmp_path: Path, settings: Any) -> None:
    queries = read_mathlibqr(QR)[:3]
    searcher = _FakeSearcher(settings)
    off = run_eval(searcher, queries, EvalConfig(k=10), data=QR)  # type: ignore[arg-type]
    assert set(searcher.hyde) == {"off"}
    searcher.degrade = {queries[1].query}
    on = run_eval(searcher, queries, EvalConfig(k=10, hyde="natural"), data=QR)  # type: ignore[arg-type]
    assert on.out_dir != off.out_dir and "-hyde-natural-" in Path(on.out_dir).name
    assert on.reused == 0 and on.degraded == 1 and on.errors == 0
    assert on.setup["generator"] == settings.generator.model
    assert "HyDE (natural)" in report_markdown(on) and "1 degraded" in report_markdown(on)
    records = [
        EvalRecord.model_validate_json(x)
        for x in (Path(on.out_dir) / "records.jsonl").read_text().splitlines()
    ]
    assert [r.warnings for r in records if r.warnings] == [["hyde: cannot reach the server"]]
    assert {r.hyde for r in records if not r.warnings} == {"theorem guess : True"}
    # Resumed with the server back: the degraded query is searched again, the others reused.
    searcher.degrade.clear()
    searcher.calls.clear()
    again = run_eval(searcher, queries, EvalConfig(k=10, hyde="natural"), data=QR)  # type: ignore[arg-type]
    assert again.reused == 2 and again.degraded == 0 and searcher.calls == [queries[1].query]
