"""Scale: one million synthetic chunks through the real write path, then hybrid query latency.

Run: .venv/bin/python bench/retrieval.py [--n 1000000] [--queries 200] [--backend chroma]

Chunks are synthetic: a random unit 384-d vector each and ~40 words drawn from a Zipf
distribution over a 50k-word vocabulary (so BM25 posting lists look like text's). Embedding is
excluded: a lookup "embedder" hands back the pre-drawn vectors, so what is timed is the
store side of `KnowledgeBase.ingest_documents`: chunking, manifest (SQLite) two-phase writes,
the vector store, and the BM25 rebuild.

Printed: ingest rate (chunks/s) and where the time went; peak RSS; query latency p50/p95 for
hybrid search (`KnowledgeBase.asearch`, k=10, 100 candidates per side, query embedding excluded)
next to the same queries against bm25s alone (`BM25Index.search`) and the store alone
(`store.search`), so fusion overhead is a ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentrag.embed.base import CachedEmbedder, regex_token_spans  # noqa: E402
from agentrag.ingest.loaders import Document  # noqa: E402
from agentrag.kb import KnowledgeBase  # noqa: E402
from agentrag.settings import Settings  # noqa: E402

DIM = 384
VOCAB = 50_000
WORDS = 40


def rss() -> tuple[float, float]:
    """Current and peak resident memory in GiB (from /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 2**20, int(fields["VmHWM"].split()[0]) / 2**20


class LookupEmbedder(CachedEmbedder):
    """Returns pre-drawn vectors for known texts (no model): embedding is not what is measured."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self._dim = dim
        self.table: dict[str, np.ndarray] = {}

    @property
    def model_id(self) -> str:
        return "lookup"

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def normalized(self) -> bool:
        return True

    @property
    def max_tokens(self) -> int:
        return 512

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return regex_token_spans(text)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.table.pop(t) for t in texts])


class TimedStore:
    """Wraps a store and adds up the time spent in its write calls."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.write_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def upsert(self, records) -> None:
        t0 = time.perf_counter()
        self.inner.upsert(records)
        self.write_seconds += time.perf_counter() - t0

    def delete(self, ids) -> None:
        t0 = time.perf_counter()
        self.inner.delete(ids)
        self.write_seconds += time.perf_counter() - t0


def synthetic(n: int, emb: LookupEmbedder, seed: int = 0) -> Iterator[Document]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(VOCAB)])
    done = 0
    while done < n:
        m = min(50_000, n - done)
        vecs = rng.normal(size=(m, DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        words = rng.zipf(1.2, size=(m, WORDS)) % VOCAB
        for j in range(m):
            i = done + j
            text = " ".join(vocab[words[j]]) + f" id{i}."
            emb.table[text] = vecs[j]
            yield Document(source=f"syn#{i}", text=text, metadata={"bucket": i % 10})
        done += m


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backend", default="chroma", choices=["chroma", "memory", "qdrant"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "retrieval")
    args = parser.parse_args()

    data_dir = args.out / f"{args.backend}-{args.n}"
    if data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)
    settings = Settings.load(
        config=None,
        data_dir=data_dir,
        kb={
            "store": {"backend": args.backend, "batch_size": 5000},
            "embed_batch": 5000,
            "embed_title": False,
        },
    )
    from agentrag.stores import open_store

    emb = LookupEmbedder(DIM)
    store = TimedStore(open_store(settings.kb.store, "syn", settings.kb_dir("syn")))
    kb = KnowledgeBase.open(settings, "syn", embedder=emb, store=store)
    kb.write_step = 5000
    print(f"{args.n:,} synthetic chunks, backend {args.backend}; RSS at start {rss()[0]:.2f} GiB")

    t0 = time.perf_counter()
    report = kb.ingest_documents(synthetic(args.n, emb))
    took = time.perf_counter() - t0
    other = took - store.write_seconds - report.index_seconds - report.embed_seconds
    print(
        f"ingest: {report.chunks_added:,} chunks in {took:.1f}s = {report.chunks_added / took:,.0f} chunks/s "
        f"(store writes {store.write_seconds:.1f}s = "
        f"{report.chunks_added / max(store.write_seconds, 1e-9):,.0f}/s; "
        f"BM25 rebuild {report.index_seconds:.1f}s; lookup 'embedding' {report.embed_seconds:.1f}s; "
        f"chunking + manifest + bookkeeping {other:.1f}s)"
    )
    cur, peak = rss()
    print(f"RSS after ingest {cur:.2f} GiB, peak {peak:.2f} GiB")
    disk = sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file())
    print(f"on disk: {disk / 2**30:.2f} GiB")

    # Queries: 4 words of mid frequency; vectors drawn near a random stored chunk's.
    rng = np.random.default_rng(1)
    qwords = rng.integers(50, 2000, size=(args.queries, 4))
    queries = [" ".join(f"w{w}" for w in row) for row in qwords]
    qvecs = rng.normal(size=(args.queries, DIM)).astype(np.float32)
    qvecs /= np.linalg.norm(qvecs, axis=1, keepdims=True)
    bm25 = kb._bm25
    assert bm25 is not None

    def timed(fn) -> list[float]:
        out = []
        for i in range(args.queries):
            t = time.perf_counter()
            fn(i)
            out.append(time.perf_counter() - t)
        return out

    def pct(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))] * 1000

    # Warm both sides (first bm25 query loads arrays; first Chroma query loads the HNSW index).
    bm25.search(queries[0], 100)
    store.inner.search(qvecs[0], 100)
    t_bm25 = timed(lambda i: bm25.search(queries[i], 100))
    t_store = timed(lambda i: store.inner.search(qvecs[i], 100))

    async def hybrid(i: int) -> None:
        emb.table  # noqa: B018 - query embedding is excluded: hand the vector over directly
        kb.embedder.aembed_query = _fixed(qvecs[i])  # type: ignore[method-assign]
        await kb.asearch(queries[i], k=10, mode="hybrid", candidates=100)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(hybrid(0))
    t_hybrid = timed(lambda i: loop.run_until_complete(hybrid(i)))
    filt = (
        timed(lambda i: loop.run_until_complete(_filtered(kb, queries[i], qvecs[i]))) if args.queries else []
    )
    loop.close()
    for name, xs in (
        ("bm25s alone", t_bm25),
        (f"{args.backend} alone", t_store),
        ("hybrid (KB)", t_hybrid),
        ("hybrid + filter bucket=3", filt),
    ):
        print(
            f"{name:28s} p50 {pct(xs, 0.5):8.1f} ms   p95 {pct(xs, 0.95):8.1f} ms   "
            f"mean {statistics.mean(xs) * 1000:8.1f} ms"
        )
    b, s, h = statistics.median(t_bm25), statistics.median(t_store), statistics.median(t_hybrid)
    print(
        f"fusion overhead (p50): hybrid / (bm25 + store) = {h / (b + s):.2f}x; "
        f"hybrid / max(bm25, store) = {h / max(b, s):.2f}x"
    )
    print(f"peak RSS {rss()[1]:.2f} GiB")
    kb.close()


def _fixed(vec: np.ndarray):
    async def embed(_text: str) -> np.ndarray:
        return vec

    return embed


async def _filtered(kb: KnowledgeBase, query: str, vec: np.ndarray) -> None:
    kb.embedder.aembed_query = _fixed(vec)  # type: ignore[method-assign]
    await kb.asearch(query, k=10, mode="hybrid", candidates=100, filters={"bucket": 3})


if __name__ == "__main__":
    main()
