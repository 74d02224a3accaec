"""End-to-end ingest rate on SciFact next to raw SentenceTransformer.encode on the same texts.

Run: .venv/bin/python bench/ingest.py [--docs 5183] [--threads N]

Both sides use the same loaded MiniLM, the same torch threads and batch size, in the same run,
with the embedding cache OFF (with it on, the ratio would measure a SQLite lookup). The
pipeline is `KnowledgeBase.ingest` on a JSONL of the first --docs abstracts: loading, token
chunking, embedding, the two-phase manifest writes, embedded Chroma, and the BM25 rebuild. The
baseline is `model.encode` over exactly the texts the pipeline embedded (recorded on the way).
Raw encode runs before and after the pipeline; their mean is the baseline (the machine is
shared, so drift shows up as a difference between the two).

Target: pipeline time / raw encode time < 1.10.

``--runtimes torch,onnx-int8`` instead times the whole ingest once per embedder runtime (same
docs, cache off, one run) and prints the speed-up over torch.

``--against REV`` compares whole products rather than runtimes: the tree of git revision REV
(e.g. ``8067e08``, the code when the ingest target was set) and this tree each ingest the same
docs with their own default settings, in fresh data folders, in child processes run alternately
(``--rounds`` times each), model load and warm-up outside the timing. The speed-up is old
seconds / new seconds (target: >= 4x). Measured 2026-12-01, 2-core box with AVX512-BF16
(OpenVINO bf16 is this tree's default there): ``--against 8067e08 --docs 5183`` 412.0 s -> 99.9 s,
4.13x; ``--docs 600 --rounds 3`` 4.08x.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from agentrag.embed import SentenceTransformerEmbedder  # noqa: E402
from agentrag.kb import KnowledgeBase  # noqa: E402
from agentrag.settings import Settings  # noqa: E402


class RecordingEmbedder(SentenceTransformerEmbedder):
    """The real embedder, remembering which texts it was asked to embed."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.seen: list[str] = []

    def embed_documents(self, texts):
        self.seen.extend(texts)
        return super().embed_documents(texts)


def scifact_subset(work: Path, docs: int) -> Path:
    """The first ``docs`` abstracts of ../shared's SciFact corpus, as a JSONL file under ``work``."""
    data = next(
        p / "shared" / "data" / "scifact"
        for p in ROOT.parents
        if (p / "shared" / "data" / "scifact").is_dir()
    )
    corpus = work / "corpus.jsonl"
    with (data / "corpus.jsonl").open() as src, corpus.open("w") as dst:
        for i, line in enumerate(src):
            if i >= docs:
                break
            dst.write(line)
    return corpus


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=5183)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the runtime's own")
    parser.add_argument("--runtimes", default=None, help="e.g. torch,onnx-int8: ingest once per runtime")
    parser.add_argument(
        "--against", default=None, metavar="REV", help="compare with the tree of git revision REV"
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --against: ingests per tree, alternating")
    args = parser.parse_args()
    if args.against:
        compare_trees(args)
        return
    if args.runtimes:
        compare_runtimes(args)
        return
    work = Path(tempfile.mkdtemp(prefix="agentrag-ingest-bench-"))
    try:
        corpus = scifact_subset(work, args.docs)
        args.batch_size = args.batch_size or 64
        emb = RecordingEmbedder(cache_path=None, threads=args.threads, batch_size=args.batch_size)
        model = emb.model  # load before timing anything
        model.encode(["warm up"] * 8, batch_size=8)

        def raw(texts: list[str]) -> float:
            t0 = time.perf_counter()
            model.encode(
                texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
            return time.perf_counter() - t0

        # Learn the texts from a dry chunking pass (no embedding): same chunker as the KB.
        settings = Settings.load(config=None, data_dir=work / "data")
        kb = KnowledgeBase.open(settings, "bench", embedder=emb)
        from agentrag.ingest.loaders import load_file

        texts = []
        for doc in load_file(corpus):
            _, reserve = kb.writer._title_budget(doc.title)
            texts += [kb.writer._embed_text(c) for c in kb.chunker.chunk(doc, reserve_tokens=reserve)]
        print(f"SciFact first {args.docs} abstracts -> {len(texts)} chunks to embed (cache off)")
        raw_before = raw(texts)
        t0 = time.perf_counter()
        report = kb.ingest([corpus])
        pipeline = time.perf_counter() - t0
        kb.close()
        assert sorted(emb.seen) == sorted(texts), "the pipeline embedded other texts than the baseline"
        raw_after = raw(texts)
        base = (raw_before + raw_after) / 2
        print(
            f"raw SentenceTransformer.encode: {raw_before:.1f}s before, {raw_after:.1f}s after "
            f"(mean {base:.1f}s)"
        )
        print(
            f"KnowledgeBase.ingest: {pipeline:.1f}s ({report.chunks_added} chunks, "
            f"{report.chunks_added / pipeline:.1f} chunks/s; embedding {report.embed_seconds:.1f}s, "
            f"BM25 {report.index_seconds:.2f}s)"
        )
        ratio = pipeline / base
        print(f"pipeline / raw encode = {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f} %; target < +10 %)")
        print(
            json.dumps(
                {
                    "docs": args.docs,
                    "chunks": len(texts),
                    "raw_s": [raw_before, raw_after],
                    "pipeline_s": pipeline,
                    "ratio": ratio,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_runtimes(args: argparse.Namespace) -> None:
    """Whole SciFact ingests (cache off), one per runtime, in one run; speed-up over the first."""
    from agentrag.embed import embedder_from_settings

    work = Path(tempfile.mkdtemp(prefix="agentrag-ingest-bench-"))
    try:
        corpus = scifact_subset(work, args.docs)
        rows = {}
        for rt in args.runtimes.split(","):
            settings = Settings.load(config=None, data_dir=work / rt)
            cfg = settings.embedder.model_copy(
                update={"runtime": rt, "cache": False, "threads": args.threads, "batch_size": args.batch_size}
            )
            settings = settings.model_copy(update={"embedder": cfg})
            emb = embedder_from_settings(settings)
            emb.embed_documents(["warm up"])  # load (and export, once) outside the timing
            kb = KnowledgeBase.open(settings, "bench", embedder=emb)
            t0 = time.perf_counter()
            report = kb.ingest([corpus])
            rows[rt] = {"seconds": time.perf_counter() - t0, "chunks": report.chunks_added}
            kb.close()
            print(rt, json.dumps(rows[rt]), flush=True)
        first = next(iter(rows.values()))["seconds"]
        for rt, row in rows.items():
            print(
                f"{rt}: {row['seconds']:.1f}s, {row['chunks'] / row['seconds']:.1f} chunks/s, "
                f"x{first / row['seconds']:.2f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Runs inside each tree (old API and new are the same here): default settings, timed ingest only.
_DRIVER = """
import json, sys, time
from pathlib import Path
import agentrag
from agentrag.embed import embedder_from_settings
from agentrag.kb import KnowledgeBase
from agentrag.settings import Settings
settings = Settings.load(config=None, data_dir=Path(sys.argv[1]))
emb = embedder_from_settings(settings)
emb.embed_documents(["warm up"])
kb = KnowledgeBase.open(settings, "bench", embedder=emb)
t0 = time.perf_counter()
report = kb.ingest([sys.argv[2]])
seconds = time.perf_counter() - t0
kb.close()
print(json.dumps({"seconds": seconds, "chunks": report.chunks_added, "from": agentrag.__file__}))
"""


def compare_trees(args: argparse.Namespace) -> None:
    """The same SciFact ingest by the tree of ``args.against`` and by this tree, alternately."""
    import os
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="agentrag-ingest-bench-"))
    try:
        corpus = scifact_subset(work, args.docs)
        old = work / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.against, "agentrag", "prompts", "graphs"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "x", "-C", str(old)], input=archive, check=True)
        trees = {args.against: old, "this tree": ROOT}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRAG_")}
        times: dict[str, list[float]] = {name: [] for name in trees}
        for r in range(args.rounds):
            for name, tree in trees.items():
                out = subprocess.run(
                    [sys.executable, "-c", _DRIVER, str(work / f"data-{r}-{tree.name}"), str(corpus)],
                    cwd=work,
                    env={**env, "PYTHONPATH": str(tree)},
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                row = json.loads(out.strip().splitlines()[-1])
                # An installed agentrag must not shadow the tree under test.
                assert Path(row["from"]).is_relative_to(tree), row["from"]
                times[name].append(row["seconds"])
                print(
                    f"round {r + 1} {name}: {row['seconds']:.1f}s, {row['chunks']} chunks, "
                    f"{row['chunks'] / row['seconds']:.1f} chunks/s",
                    flush=True,
                )
        old_s, new_s = (statistics.median(times[name]) for name in trees)
        print(
            f"{args.against}: {old_s:.1f}s  this tree: {new_s:.1f}s  speed-up x{old_s / new_s:.2f} "
            f"(median of {args.rounds})"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
