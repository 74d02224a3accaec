"""`agentrag eval retrieval` through typer's CliRunner on a real slice of SciFact.

Real bm25s, real embedded Chroma, real all-MiniLM-L6-v2 (the session embedder, whose vectors
are cached across runs). 30 train queries, the documents they are judged against, and 270
other abstracts from the corpus as distractors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import invoke

N_QUERIES = 30
N_OTHER = 270


def flat(text: str) -> str:
    """Rich wraps long lines at the terminal width: compare with whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def scifact_slice(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_data / "scifact"
    root = tmp_path_factory.mktemp("beir") / "scifact-slice"
    (root / "qrels").mkdir(parents=True)
    lines = (src / "qrels" / "train.tsv").read_text().splitlines()
    qrels = [line.split("\t") for line in lines[1:]]
    qids = list(dict.fromkeys(q for q, _, _ in qrels))[:N_QUERIES]
    kept = [row for row in qrels if row[0] in qids]
    (root / "qrels" / "train.tsv").write_text("\n".join([lines[0], *("\t".join(r) for r in kept)]) + "\n")
    queries = [json.loads(x) for x in (src / "queries.jsonl").read_text().splitlines()]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in qids))
    needed = {d for _, d, _ in kept}
    docs, others = [], 0
    for line in (src / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["_id"] in needed:
            docs.append(line)
        elif others < N_OTHER:
            docs.append(line)
            others += 1
    (root / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    return root


CONFIGS = ("bm25", "dense", "hybrid", "hybrid+prf")


def test_eval_retrieval_on_a_scifact_slice(tmp_path: Path, scifact_slice: Path) -> None:
    data_dir, out = tmp_path / "data", tmp_path / "out"
    args = ["eval", "retrieval", "--data", str(scifact_slice), "--out", str(out)]
    args += [x for c in CONFIGS for x in ("--config", c)]
    res = invoke(data_dir, *args, "-q")
    assert res.exit_code == 0, res.output
    n_docs = len((scifact_slice / "corpus.jsonl").read_text().splitlines())
    assert re.search(
        rf"knowledge base beir-scifact-slice-[0-9a-f]{{6}}: \+{n_docs} documents", flat(res.output)
    )
    for name in ("results.json", "report.md", "report.png", "records.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    assert results["split"] == "train" and results["cases"] == N_QUERIES
    assert [r["name"] for r in results["rows"]] == list(CONFIGS)
    table = (out / "report.md").read_text()
    for c in CONFIGS:
        assert f"| {c} | {N_QUERIES} |" in table
        # Not a terminal: the markdown rows are printed whole, not squeezed into 80 columns.
        assert any(line.startswith(f"| {c} | {N_QUERIES} |") for line in res.output.splitlines())
    for row in results["rows"]:
        assert set(row["metrics"]) == {"ndcg@10", "recall@10", "recall@100", "mrr", "map"}
        assert all(0.0 <= v <= 1.0 for v in row["metrics"].values()), row
        assert row["errors"] == 0 and row["seconds"] > 0
    # The report records the fusion (alpha, normalisation) and counts 100 distinct documents.
    assert re.search(r"fusion hybrid.*convex, alpha 0\.\d+, normalization \w+", table)
    assert "100 distinct documents" in table
    # "wall s" is wall time: at most the sum of the per-query times (4 queries in flight).
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    for row in results["rows"]:
        summed = sum(r["seconds"] for r in records if r["system"] == row["name"])
        assert 0 < row["seconds"] <= summed + 0.5, (row["name"], row["seconds"], summed)
    metrics = {r["name"]: r["metrics"] for r in results["rows"]}
    # 300 abstracts: every method finds most gold ones; published full-corpus figures are ~0.65.
    assert metrics["hybrid"]["ndcg@10"] > 0.6
    assert metrics["hybrid"]["recall@100"] > 0.9
    assert min(m["ndcg@10"] for m in metrics.values()) > 0.4
    # The knowledge base is reused (nothing re-embedded) and every query comes from the cache.
    before = {n: (out / n).read_bytes() for n in ("results.json", "report.md", "report.png")}
    res = invoke(data_dir, *args)  # with progress this time
    assert res.exit_code == 0, res.output
    assert "knowledge base beir" not in flat(res.output)  # nothing added: no ingest line
    assert f"{len(CONFIGS) * N_QUERIES} results reused" in flat(res.output)
    # stderr is not a terminal here: progress comes as plain lines, the last one at 100%.
    total = len(CONFIGS) * N_QUERIES
    assert f"retrieval: {total}/{total} queries (100%)" in res.output
    assert {n: (out / n).read_bytes() for n in before} == before


def test_eval_errors_are_typed_and_hinted(tmp_path: Path) -> None:
    res = invoke(tmp_path / "data", "eval", "retrieval", "--data", str(tmp_path / "nope"))
    assert res.exit_code == 1
    assert "eval.data" in res.output and "hint" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question_text": "q"}\n')
    res = invoke(tmp_path / "data", "eval", "qa", "--data", str(bad))
    assert res.exit_code == 1 and "not a HotpotQA question" in flat(res.output)
    assert "question_text" in flat(res.output)  # the hint names the expected fields


def test_bad_configs_and_paths_fail_before_the_ingest(tmp_path: Path, scifact_slice: Path) -> None:
    data_dir = tmp_path / "data"
    base = ["eval", "retrieval", "--data", str(scifact_slice), "--out", str(tmp_path / "out")]
    res = invoke(data_dir, *base, "--config", "bm25", "--config", "hybird")
    assert res.exit_code == 1
    assert "unknown configuration" in flat(res.output) and "did you mean 'hybrid'" in flat(res.output)
    res = invoke(data_dir, *base, "--config", "hybrid+cross-encoder", "--cross-encoder", str(tmp_path / "no"))
    assert res.exit_code == 1 and "is not a folder" in flat(res.output)
    res = invoke(data_dir, *base, "--config", "hybrid+cross-encoder")
    assert res.exit_code == 1 and "needs a local cross-encoder" in flat(res.output)
    (tmp_path / "file").write_text("x")
    res = invoke(data_dir, *base[:-1], str(tmp_path / "file" / "out"), "--config", "bm25")
    assert res.exit_code == 1 and "is a file" in flat(res.output)
    res = invoke(data_dir, *base, "--kb", "bad name!", "--config", "bm25")
    assert res.exit_code == 1
    # None of these ingested anything.
    assert not (data_dir / "kb").exists()


def test_plain_progress_lines_for_the_ingest(tmp_path: Path, scifact_slice: Path) -> None:
    # A tiny corpus: the ingest prints plain lines (no terminal), ending at 100%.
    small = tmp_path / "tiny"
    (small / "qrels").mkdir(parents=True)
    lines = (scifact_slice / "corpus.jsonl").read_text().splitlines()[:20]
    (small / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    first = json.loads(lines[0])["_id"]
    (small / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "cells"}) + "\n")
    (small / "qrels" / "train.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\t{first}\t1\n")
    res = invoke(tmp_path / "data", "eval", "retrieval", "--data", str(small), "--config", "hybrid-rrf")
    assert res.exit_code == 0, res.output
    assert re.search(r"ingest: [\d.]+/[\d.]+ MiB read \(100%\), \d+ chunks embedded", res.output), res.output
    assert "retrieval: 1/1 queries (100%)" in res.output
