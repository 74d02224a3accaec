"""`agentrag kb calibrate` on a real knowledge base: SciFact subset, real MiniLM, real bm25s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import invoke

SCIFACT = Path("/work/shared/data/scifact")


def scifact_subset(root: Path, n_queries: int = 60, n_other: int = 200) -> Path:
    """A BEIR folder: the first judged train queries, their relevant abstracts and some others."""
    qrels: dict[str, list[str]] = {}
    with (SCIFACT / "qrels" / "train.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, grade = line.split("\t")
            if int(grade) > 0:
                qrels.setdefault(qid, []).append(did)
    qids = list(qrels)[:n_queries]
    wanted = {d for q in qids for d in qrels[q]}
    corpus, others = [], 0
    with (SCIFACT / "corpus.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row["_id"] in wanted or others < n_other:
                others += row["_id"] not in wanted
                corpus.append(line.strip())
    out = root / "scifact-sub"
    (out / "qrels").mkdir(parents=True)
    (out / "corpus.jsonl").write_text("\n".join(corpus) + "\n")
    queries = {}
    with (SCIFACT / "queries.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            queries[row["_id"]] = line.strip()
    (out / "queries.jsonl").write_text("\n".join(queries[q] for q in qids) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q in qids for d in qrels[q]]
    (out / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n")
    return out


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact data not present")
def test_calibrate_a_real_kb_and_use_the_map_on_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrag.agent import Agent
    from agentrag.cli.doctor import check_calibration
    from agentrag.scoring.calibration import Calibration, calibration_path
    from agentrag.settings import Settings

    beir = scifact_subset(tmp_path)
    data = tmp_path / "data"
    res = invoke(data, "ingest", str(beir / "corpus.jsonl"), "--kb", "sci")
    assert res.exit_code == 0, res.output
    # The reranker kind that costs no LLM: embedding (PRF cosine over the real MiniLM).
    monkeypatch.setenv("AGENTRAG_RERANK__KIND", "embedding")
    settings = Settings.load(config=None, data_dir=data)
    assert not check_calibration(settings, "sci").ok  # raw cosines are not probabilities

    res = invoke(data, "kb", "calibrate", "sci", "--data", str(beir), "--queries", "60", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["labels"] == "gold"
    cal = Calibration.model_validate(report["calibration"])
    assert cal.score_name.startswith("embedding-prf:") and cal.n_pairs >= 400 and cal.n_positive > 20
    # Held out (every 5th query): calibrated probabilities beat the raw cosines as probabilities.
    assert report["held_out_brier"] < report["raw_brier"]
    assert report["held_out_ece"] < 0.15

    # Stored with the KB, keyed by the reranker; stats and doctor say so.
    path = Path(report["path"])
    assert path == calibration_path(settings.kb_dir("sci"), cal.score_name) and path.is_file()
    res = invoke(data, "kb", "stats", "sci")
    assert res.exit_code == 0 and "calibrated  embedding-prf:" in res.output, res.output
    assert check_calibration(settings, "sci").ok

    # Reopened: the agent's reranker carries the stored map, and a threshold is a probability.
    agent = Agent.from_settings(settings, kb="sci", create=False)
    reranker = agent.reranker
    assert reranker is not None and reranker.calibration == cal  # type: ignore[attr-defined]
    query = json.loads((beir / "queries.jsonl").read_text().splitlines()[0])["text"]
    hits = agent.knowledge_base.search(query, k=10)
    import asyncio

    scores = asyncio.run(reranker.ascore(query, hits))  # type: ignore[attr-defined]
    probs = cal.predict(scores)
    result = asyncio.run(reranker.arerank(query, hits, threshold=0.3))
    assert len(result.passages) == int((probs >= 0.3).sum())
    agent.close()


def test_labelled_pairs_and_unlabelled_queries_need_a_judge(tmp_path: Path) -> None:
    from agentrag.scoring.calibration import read_labelled_pairs

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "q", "text": "t", "label": 1}\n{"query": "q", "text": "u", "label": 0}\n')
    assert [p.label for p in read_labelled_pairs(pairs)] == [True, False]
    data = tmp_path / "data"
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("Cats purr when they are content.")
    assert invoke(data, "ingest", str(tmp_path / "docs"), "--kb", "pets").exit_code == 0
    queries = tmp_path / "queries.txt"
    queries.write_text("why do cats purr\n")
    res = invoke(data, "kb", "calibrate", "pets", "--data", str(queries))
    assert res.exit_code != 0 and "--judge" in res.output
