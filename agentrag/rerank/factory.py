"""Build the reranker that ``[rerank]`` settings describe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agentrag.errors import ConfigError

if TYPE_CHECKING:
    from agentrag.embed import Embedder
    from agentrag.rerank.base import Reranker
    from agentrag.scoring.calibration import Calibration
    from agentrag.settings import Settings

__all__ = ["reranker_from_settings"]


def _calibration(path: Path | None, fallback: Path | None) -> Calibration | None:
    from agentrag.scoring.calibration import Calibration

    for candidate in (path, fallback):
        if candidate is not None and candidate.is_file():
            return Calibration.load(candidate)
    if path is not None:
        raise ConfigError(f"calibration file {path} does not exist", hint="check [rerank] calibration")
    return None


def reranker_from_settings(
    settings: Settings, *, embedder: Embedder | None = None, kb_dir: Path | None = None
) -> Reranker | None:
    """The configured reranker (None for ``kind = "none"``). Models load on first use.

    ``[rerank] kind`` and ``generate_evidence`` left unset follow the profile
    (:mod:`agentrag.profiles`): ``retrieval`` without evidence on ``cpu``, ``prism`` with
    evidence on ``gpu``.

    Args:
        settings: Settings (``[rerank]``, ``[reranker]`` endpoint, ``[embedder]``).
        embedder: For ``embedding`` (default: the settings' embedder).
        kb_dir: A knowledge base folder: its calibration for this reranker (written by
            ``agentrag kb calibrate``), else its ``calibration.json``, is used when
            ``[rerank] calibration`` is empty.

    Example:
        >>> from agentrag.settings import Settings
        >>> reranker_from_settings(Settings.load(config=None, profile="gpu")).name
        'prism:qwen2.5-coder-1.5b'
        >>> reranker_from_settings(Settings.load(config=None, profile="cpu")).name
        'retrieval'
    """
    reranker = _build(settings, embedder=embedder, kb_dir=kb_dir)
    if reranker is not None and kb_dir is not None and settings.rerank.calibration is None:
        from agentrag.scoring.calibration import find_calibration

        fitted = find_calibration(kb_dir, reranker.name)
        if fitted is not None:
            reranker.calibration = fitted  # type: ignore[attr-defined]
    return reranker


def _build(settings: Settings, *, embedder: Embedder | None, kb_dir: Path | None) -> Reranker | None:
    from agentrag.profiles import resolve

    cfg = settings.rerank
    profile = resolve(settings)
    # Fields left unset follow the profile: on CPU no reranker spends a generation.
    kind = cfg.kind if "kind" in cfg.model_fields_set else profile.rerank_kind
    evidence = (
        cfg.generate_evidence if "generate_evidence" in cfg.model_fields_set else profile.generate_evidence
    )
    calibration = _calibration(cfg.calibration, kb_dir / "calibration.json" if kb_dir else None)
    if kind == "none":
        return None
    if kind == "retrieval":
        from agentrag.rerank.retrieval import RetrievalScoreReranker

        return RetrievalScoreReranker(calibration=calibration)
    if kind == "yesno":
        from agentrag.llm import LLMClient
        from agentrag.rerank.yesno import YesNoReranker

        return YesNoReranker(
            LLMClient.from_settings(settings, "reranker"),
            max_document_tokens=cfg.max_document_tokens,
            calibration=calibration,
        )
    if kind == "prism":
        from agentrag.llm import LLMClient
        from agentrag.rerank.prism import PrismConfig, PrismReranker

        llm = LLMClient.from_settings(settings, "reranker")
        make = PrismConfig if cfg.prism_prompt == "exact" else PrismConfig.for_general_models
        config = make(
            generate_evidence=evidence,
            max_document_chars=cfg.max_document_chars,
            min_evidence_chars=profile.min_evidence_chars,
        )
        return PrismReranker(llm, config, calibration=calibration)
    if kind == "embedding":
        from agentrag.embed import embedder_from_settings
        from agentrag.rerank.embedding import EmbeddingPRFReranker

        return EmbeddingPRFReranker(embedder or embedder_from_settings(settings), calibration=calibration)
    if kind == "cross-encoder":
        from agentrag.rerank.cross_encoder import CrossEncoderReranker

        if cfg.model_path is None:
            raise ConfigError(
                "the cross-encoder reranker needs [rerank] model_path",
                hint="a local sentence-transformers cross-encoder folder; nothing is downloaded",
            )
        return CrossEncoderReranker(
            cfg.model_path, threads=settings.embedder.threads, calibration=calibration
        )
    from agentrag.rerank.cross_encoder import VLLMRerankReranker

    return VLLMRerankReranker(settings.reranker, calibration=calibration)
