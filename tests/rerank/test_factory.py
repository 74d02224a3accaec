"""reranker_from_settings: the kind and, for Prism, the prompt style that fits the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import ConfigError
from agentrag.rerank import EmbeddingPRFReranker
from agentrag.rerank.factory import reranker_from_settings
from agentrag.rerank.prism import PrismReranker
from agentrag.settings import Settings


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(f"AGENTRAG_{key}", value)
    return Settings.load(config=None, data_dir=tmp_path)


def test_prism_prompt_follows_the_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = reranker_from_settings(load(tmp_path, monkeypatch))
    assert isinstance(default, PrismReranker)
    # SmolLM2 was not trained on Prism's format: worked examples, or every score is 0.5.
    assert default.config.examples and default.config.think == "<think>\n\n</think>\n"

    prism = reranker_from_settings(load(tmp_path, monkeypatch, RERANKER__MODEL="hosted_vllm/Prism-4B"))
    assert isinstance(prism, PrismReranker) and not prism.config.examples

    forced = reranker_from_settings(load(tmp_path, monkeypatch, RERANK__PRISM_PROMPT="exact"))
    assert isinstance(forced, PrismReranker) and not forced.config.examples
    evidence_off = reranker_from_settings(load(tmp_path, monkeypatch, RERANK__GENERATE_EVIDENCE="false"))
    assert isinstance(evidence_off, PrismReranker) and not evidence_off.config.generate_evidence


def test_other_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="none")) is None
    emb = reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="embedding"), embedder=object())  # type: ignore[arg-type]
    assert isinstance(emb, EmbeddingPRFReranker)
    with pytest.raises(ConfigError, match="model_path"):
        reranker_from_settings(load(tmp_path, monkeypatch, RERANK__KIND="cross-encoder"))
