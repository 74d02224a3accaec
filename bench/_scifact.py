"""SciFact train + first-stage candidates (MiniLM dense, bm25s, RRF) for the rerank benchmarks.

The knowledge base is built on another branch; these benchmarks make their own first stage,
directly with the embedder and bm25s. Corpus vectors are cached by content hash under
``.agentrag/bench-cache`` (minutes to build once, seconds after), and so are the candidate lists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from anywhere: import this checkout's agentrag

from agentrag import _offline  # noqa: E402

_offline.apply()

CACHE = Path(os.environ.get("AGENTRAG_BENCH_CACHE", REPO / ".agentrag" / "bench-cache"))


def shared_data() -> Path:
    if env := os.environ.get("AGENTRAG_SHARED_DATA"):
        return Path(env)
    for parent in REPO.parents:
        if (parent / "shared" / "data").is_dir():
            return parent / "shared" / "data"
    raise SystemExit("benchmark data (shared/data) not found; set AGENTRAG_SHARED_DATA")


@dataclass
class SciFact:
    doc_ids: list[str]
    titles: dict[str, str]
    texts: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def document(self, doc_id: str) -> str:
        """What is embedded and reranked: title + newline + abstract (document_text's form)."""
        return f"{self.titles[doc_id]}\n{self.texts[doc_id]}" if self.titles[doc_id] else self.texts[doc_id]


def load_scifact() -> SciFact:
    root = shared_data() / "scifact"
    doc_ids, titles, texts = [], {}, {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            doc_ids.append(row["_id"])
            titles[row["_id"]] = row["title"]
            texts[row["_id"]] = row["text"]
    from agentrag.evaluation.data import read_beir

    beir = read_beir(root, "train")
    return SciFact(doc_ids=doc_ids, titles=titles, texts=texts, queries=beir.queries, qrels=beir.qrels)


def embedder(threads: int | None = None):
    from agentrag.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(cache_path=CACHE / "embeddings.sqlite", threads=threads, batch_size=64)


def first_stage(data: SciFact, *, depth: int = 100, threads: int | None = None):
    """``{"dense"|"bm25"|"rrf": {qid: [(doc_id, score), ...]}}``, each ``depth`` long, cached."""
    path = CACHE / f"scifact-train-candidates-{depth}.json"
    if path.exists():
        return json.loads(path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    qids = sorted(data.queries, key=int)
    emb = embedder(threads)
    t0 = time.perf_counter()
    doc_vecs = emb.embed_documents([data.document(d) for d in data.doc_ids])
    print(
        f"[first stage] corpus vectors ({len(data.doc_ids)} docs) in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    q_vecs = np.stack([emb.embed_query(data.queries[q]) for q in qids])
    sims = q_vecs @ doc_vecs.T
    dense = {}
    for i, q in enumerate(qids):
        top = np.argsort(-sims[i], kind="stable")[:depth]
        dense[q] = [(data.doc_ids[j], float(sims[i, j])) for j in top]

    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    corpus_tokens = bm25s.tokenize(
        [data.document(d) for d in data.doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    index = bm25s.BM25()
    index.index(corpus_tokens, show_progress=False)
    q_tokens = bm25s.tokenize(
        [data.queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    docs, scores = index.retrieve(q_tokens, k=min(depth, len(data.doc_ids)), show_progress=False)
    bm25 = {}
    for i, q in enumerate(qids):
        # bm25s pads with score-0 hits for out-of-vocabulary queries: drop them.
        bm25[q] = [(data.doc_ids[int(j)], float(s)) for j, s in zip(docs[i], scores[i], strict=True) if s > 0]

    rrf = {}
    for q in qids:
        fused: dict[str, float] = {}
        for run in (dense[q], bm25[q]):
            for rank, (d, _) in enumerate(run, start=1):
                fused[d] = fused.get(d, 0.0) + 1.0 / (60 + rank)
        rrf[q] = sorted(fused.items(), key=lambda kv: -kv[1])[:depth]
    out = {"dense": dense, "bm25": bm25, "rrf": rrf}
    path.write_text(json.dumps(out))
    return out


def run_of(candidates: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """A trec-style run that keeps each list's order (score = −rank)."""
    from agentrag.scoring.metrics import run_from_rankings

    return run_from_rankings({q: [d for d, _ in hits] for q, hits in candidates.items()})
