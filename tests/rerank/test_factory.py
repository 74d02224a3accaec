"""reranker_from_settings: the kind and, for Prism, the prompt style that fits the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import ConfigError
from agentrag.rerank import EmbeddingPRFReranker
from agentrag.rerank.factory import reranker_from_settings
from agentrag.rerank.prism import PrismReranker
from agentrag.rerank.retrieval import RetrievalScoreReranker
from agentrag.rerank.yesno import YesNoReranker
from agentrag.settings import Settings


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(f"AGENTRAG_{key}", value)
    return Settings.load(config=None, data_dir=tmp_path)


def test_prism_prompt_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = reranker_from_settings(load(tmp_path, monkeypatch, PROFILE="gpu"))
    # The released Prism format by default: on a model not trained on it, scores tie and the
    # retrieval order is kept (the worked-example prompt measured worse on SmolLM2).
    assert isinstance(default, PrismReranker) and not default.config.examples

    general = reranker_from_settings(
        load(tmp_path, monkeypatch, PROFILE="gpu", RERANK__PRISM_PROMPT="general")
    )
    assert isinstance(general, PrismReranker) and general.config.examples
    assert general.config.think == "<think>\n\n</think>\n"
    evidence_off = reranker_from_settings(
        load(tmp_path, monkeypatch, PROFILE="gpu", RERANK__GENERATE_EVIDENCE="false")
    )
    assert isinstance(evidence_off, PrismReranker) and not evidence_off.config.generate_evidence


def test_other_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="none")) is None
    emb = reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="embedding"), embedder=object())  # type: ignore[arg-type]
    assert isinstance(emb, EmbeddingPRFReranker)
    with pytest.raises(ConfigError, match="model_path"):
        reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="cross-encoder"))


def test_profile_chooses_unset_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # cpu: no reranker that spends a generation, unless asked for explicitly.
    assert isinstance(
        reranker_from_settings(load(tmp_path, monkeypatch, PROFILE="cpu")), RetrievalScoreReranker
    )
    explicit = reranker_from_settings(load(tmp_path, monkeypatch, PROFILE="cpu", RERANK__KIND="prism"))
    assert isinstance(explicit, PrismReranker) and not explicit.config.generate_evidence
    forced = reranker_from_settings(
        load(tmp_path, monkeypatch, PROFILE="cpu", RERANK__KIND="prism", RERANK__GENERATE_EVIDENCE="true")
    )
    assert isinstance(forced, PrismReranker) and forced.config.generate_evidence
    gpu = reranker_from_settings(load(tmp_path, monkeypatch, PROFILE="gpu"))
    assert isinstance(gpu, PrismReranker) and gpu.config.generate_evidence
    yesno = reranker_from_settings(
        load(tmp_path, monkeypatch, RERANK__KIND="yesno", RERANK__MAX_DOCUMENT_TOKENS="64")
    )
    assert isinstance(yesno, YesNoReranker) and yesno.max_document_tokens == 64
