"""Fixtures for reranker tests: real SciFact candidates, a tiny local cross-encoder, its vLLM server."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentrag.types import Passage

CE_PORT_OFFSET = 2  # the generator is on server.port, the embedding server on +1


@dataclass
class Candidates:
    query: str
    passages: list[Passage]
    relevant: set[str]


@pytest.fixture(scope="session")
def scifact_candidates(shared_data: Path) -> list[Candidates]:
    """Six SciFact train queries, each with its relevant abstracts and 5 random others (seeded)."""
    root = shared_data / "scifact"
    corpus = {}
    with (root / "corpus.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            corpus[row["_id"]] = row
    queries = {}
    with (root / "queries.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            queries[row["_id"]] = row["text"]
    qrels: dict[str, set[str]] = {}
    with (root / "qrels" / "train.tsv").open() as f:
        next(f)
        for line in f:
            q, d, s = line.split("\t")
            if int(s) > 0:
                qrels.setdefault(q, set()).add(d)
    rng = random.Random(7)
    ids = sorted(corpus)
    out = []
    for q in sorted(qrels, key=int)[:6]:
        others = [d for d in rng.sample(ids, 8) if d not in qrels[q]][:5]
        docs = sorted(qrels[q]) + others
        rng.shuffle(docs)
        offset = 0
        passages = []
        for d in docs:
            # Short abstracts keep the LLM tests quick; start/end mimic a chunk inside a source.
            text = corpus[d]["text"][:400]
            passages.append(
                Passage(
                    id=d,
                    text=text,
                    title=corpus[d]["title"],
                    source=f"scifact/{d}",
                    start=offset,
                    end=offset + len(text),
                )
            )
            offset += 1000
        out.append(Candidates(query=queries[q], passages=passages, relevant=qrels[q]))
    return out


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-label cross-encoder built from the bundled MiniLM weights (untrained head, fixed seed).

    It proves loading, scoring and ordering plumbing, not ranking quality: no real
    cross-encoder weights exist offline.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from transformers.utils import logging as hf_logging

    from agentrag.embed import default_model_path

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = CrossEncoder(str(default_model_path()), num_labels=1, device="cpu", local_files_only=True)
    # A larger head than the default init spreads the scores apart, so orderings are decisive.
    with torch.no_grad():
        head = model.model.classifier
        head.weight.normal_(0.0, 0.5)
        head.bias.zero_()
    path = tmp_path_factory.mktemp("models") / "tiny-minilm-ce"
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def vllm_rerank_server(tiny_cross_encoder: Path, server_settings) -> Iterator[str]:
    """A real vLLM server (``--runner pooling``) serving the tiny cross-encoder; yields its ``/v1`` URL."""
    from agentrag.errors import ModelServerError
    from agentrag.models.server import serve, stop

    port = server_settings.port + CE_PORT_OFFSET
    # A server left by an interrupted session would serve an older build of the weights.
    stop(server_settings, port=port)
    try:
        info = serve(
            server_settings,
            port=port,
            model_path=tiny_cross_encoder,
            served_name="tiny-ce",
            max_model_len=512,
            embedding=True,  # --runner pooling: vLLM exposes /v1/rerank and /v1/score
        )
    except ModelServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield info.url
    finally:
        stop(server_settings, port=port)
