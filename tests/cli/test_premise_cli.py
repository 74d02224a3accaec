"""`agentrag premise index / search / eval` through typer's CliRunner and one real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.conftest import REPO

LEAN = REPO / "tests" / "premise" / "data"
QR = LEAN / "eval" / "qr_small.json"
MPR = LEAN / "eval" / "mpr_small.json"


@pytest.fixture
def lean_tree(tmp_path: Path) -> Path:
    root = tmp_path / "lean"
    root.mkdir()
    for f in LEAN.glob("*.lean"):
        shutil.copy(f, root / f.name)
    return root


def test_index_search_eval(tmp_path: Path, lean_tree: Path) -> None:
    data = tmp_path / "data"
    res = invoke(data, "premise", "index", str(lean_tree), "--kb", "lean")
    assert res.exit_code == 0, res.output
    assert "78 declarations, 78 chunks" in res.output and "MB on disk" in res.output
    res = invoke(data, "premise", "index", str(lean_tree), "--kb", "lean", "--json")
    report = json.loads(res.output)
    assert (report["declarations"], report["added"], report["unchanged"]) == (78, 0, 78)

    res = invoke(data, "premise", "search", "every Kan complex is a quasicategory", "--kb", "lean", "-k", "3")
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert "SSet.instQuasicategoryOfKanComplex" in first and "instance" in first
    assert "MathlibExcerpts:36" in first and "convex=" in first
    assert "(S : SSet) [KanComplex S] : Quasicategory S" in res.output

    hits = json.loads(
        invoke(data, "premise", "search", "Lattice", "--kb", "lean", "--mode", "bm25", "--json").output
    )
    # BM25 returns only declarations that contain the word: the class and its two parents.
    assert len(hits) == 3 and {"name", "kind", "module", "line", "signature", "scores"} <= set(hits[0])
    assert "Lattice" in [h["name"] for h in hits[:3]] and set(hits[0]["scores"]) == {"bm25"}

    out = tmp_path / "qr-run"
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "lean", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert (
        "MathlibQR" in res.output
        and "q1a_lean" in res.output
        and "Gold names in the corpus: 3/4" in res.output
    )
    report = json.loads((out / "report.json").read_text())
    assert report["n"] == 16 and report["reused"] == 0
    all_row = report["by_style"]["all"]
    # T4 (2 of the 16 queries) asks for a declaration the corpus does not have.
    assert 0.0 < all_row["ndcg@10"] <= all_row["recall@10"] <= 14 / 16
    assert len((out / "records.jsonl").read_text().splitlines()) == 16
    assert (out / "report.md").read_text().startswith("**MathlibQR** on `lean`")

    # A second run reuses every record; --styles and --limit select queries.
    again = json.loads(
        invoke(data, "premise", "eval", "--data", str(QR), "--kb", "lean", "--out", str(out), "--json").output
    )
    assert again["reused"] == 16 and again["by_style"] == report["by_style"]
    some = json.loads(
        invoke(
            data,
            "premise",
            "eval",
            "--data",
            str(QR),
            "--kb",
            "lean",
            "--styles",
            "q3_nickname,q1c_natural",
            "--limit",
            "3",
            "--retrieval",
            "dense",
            "--json",
        ).output
    )
    assert some["n"] == 3 and set(some["by_style"]) == {"q1c_natural", "q3_nickname", "all"}
    assert some["config"]["search_mode"] == "dense" and "premise-eval" in some["out_dir"]

    # Several configurations on the same queries: one sub-folder each and one table.
    multi = tmp_path / "multi"
    res = invoke(
        data,
        "premise",
        "eval",
        "--data",
        str(QR),
        "--kb",
        "lean",
        "-c",
        "bm25,dense",
        "-c",
        "hybrid",
        "--out",
        str(multi),
    )
    assert res.exit_code == 0, res.output
    table = (multi / "comparison.md").read_text()
    assert "| style | n | bm25 | dense | hybrid |" in table and "| **all** | 16 |" in table
    assert "s/query" in table and table.splitlines()[-2].startswith("| **all** |")
    hybrid = json.loads((multi / "hybrid" / "report.json").read_text())
    # The same configuration as the first run above: the same scores, in its own folder.
    assert hybrid["by_style"] == report["by_style"] and hybrid["config"]["search_mode"] == "hybrid"
    bm25 = json.loads((multi / "bm25" / "report.json").read_text())
    cell = f"{bm25['by_style']['all']['ndcg@10']:.3f} / {bm25['by_style']['all']['recall@10']:.3f}"
    assert f"| **all** | 16 | {cell} |" in table

    mpr = json.loads(invoke(data, "premise", "eval", "--data", str(MPR), "--kb", "lean", "--json").output)
    assert mpr["config"]["format"] == "mpr" and mpr["n"] == 2
    assert set(mpr["by_style"]["all"]) >= {"n", "recall_group@10", "covered@10"}


def test_errors_are_readable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = invoke(data, "premise", "search", "x", "--kb", "missing")
    assert res.exit_code == 1 and "kb.not_found" in res.output
    res = invoke(data, "premise", "index", str(tmp_path / "nope"), "--kb", "lean")
    assert res.exit_code == 1 and "not a directory" in res.output and "hint" in res.output
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "--format", "csv")
    assert res.exit_code == 1 and "unknown format" in res.output
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "--styles", "q7")
    assert res.exit_code == 1 and "unknown MathlibQR style" in res.output
    res = invoke(data, "premise", "search", "x", "--kb", "x", "--reasoning", "--rerank")
    assert res.exit_code == 1 and "standard mode only" in res.output
    res = invoke(data, "premise", "search", "x", "--kb", "x", "--max-seconds", "30")
    assert res.exit_code == 1 and "apply to --reasoning" in res.output
    # A bad --config fails before any knowledge base is opened (kb "x" does not exist).
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "-c", "hybrid,hybrid+rerunk")
    assert res.exit_code == 1 and "hybrid+rerunk" in res.output and "+rerank" in res.output
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "-c", "hybrid", "--rerank")
    assert res.exit_code == 1 and "--config replaces" in res.output
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "-c", "bm25,bm25")
    assert res.exit_code == 1 and "given twice" in res.output
    res = invoke(data, "premise", "eval", "--data", str(QR), "--kb", "x", "-c", "bm25", "--max-rounds", "1")
    assert res.exit_code == 1 and "reasoning mode" in res.output


@pytest.mark.slow
def test_real_subprocess(tmp_path: Path, lean_tree: Path) -> None:
    cmd = [sys.executable, "-m", "agentrag", "--data-dir", str(tmp_path / "data"), "premise"]
    run = subprocess.run(
        [*cmd, "index", str(lean_tree), "--kb", "sub"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
    # The summary goes to stdout; progress to stderr, as plain lines (no terminal here).
    assert "78 declarations, 78 chunks" in run.stdout
    assert "index: 3/3 files (100%)" in run.stderr, run.stderr
    out = subprocess.run(
        [*cmd, "search", "a poset with binary joins and meets", "--kb", "sub", "-k", "3", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out)[0]["name"] == "Lattice"
    run = subprocess.run(
        [*cmd, "eval", "--data", str(QR), "--kb", "sub", "--limit", "3", "-c", "bm25,hybrid"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "eval bm25: 3/3 queries (100%), last " in run.stderr, run.stderr
    assert "eval hybrid: 3/3 queries (100%)" in run.stderr
    # The comparison table is rendered for the terminal (rich markdown) on stdout.
    assert "ndcg@10 / recall@10" in run.stdout and "q1a_lean" in run.stdout
