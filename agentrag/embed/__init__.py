"""Embedders: a local model (OpenVINO, ONNX Runtime or torch) and OpenAI-compatible ``/v1/embeddings``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrag.embed.base import CachedEmbedder, Embedder, EmbeddingCache, regex_token_spans
from agentrag.embed.fingerprint import model_fingerprint
from agentrag.embed.local import DEFAULT_MODEL_NAME, SentenceTransformerEmbedder, default_model_path
from agentrag.embed.onnx import OnnxEmbedder
from agentrag.embed.remote import OpenAIEmbedder

if TYPE_CHECKING:
    from agentrag.settings import Settings

__all__ = [
    "DEFAULT_MODEL_NAME",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingCache",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "default_model_path",
    "embedder_from_settings",
    "model_fingerprint",
    "regex_token_spans",
]


def embedder_from_settings(settings: Settings) -> CachedEmbedder:
    """Build the embedder that ``settings.embedder`` describes (the model loads on first use).

    Example:
        >>> from agentrag.settings import Settings
        >>> emb = embedder_from_settings(Settings.load(config=None))
        >>> emb.name
        'st:all-MiniLM-L6-v2@9adb893eabd0'
    """
    cfg = settings.embedder
    cache = settings.cache_dir() / "embeddings.sqlite" if cfg.cache else None
    if cfg.backend == "openai":
        from agentrag.errors import ConfigError

        if not cfg.api_base or not cfg.model:
            raise ConfigError(
                "the openai embedder needs [embedder] api_base and model",
                hint="e.g. api_base = 'http://127.0.0.1:8401/v1', model = '<served name>'",
            )
        return OpenAIEmbedder(
            cfg.model,
            api_base=cfg.api_base,
            api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
            timeout_s=cfg.timeout_s,
            batch_size=cfg.batch_size or 64,
            normalize=cfg.normalize,
            cache_path=cache,
            query_prefix=cfg.query_prefix,
            document_prefix=cfg.document_prefix,
        )
    if cfg.runtime != "torch" and cfg.device == "cpu":
        from agentrag.embed.onnx import OnnxEmbedder

        return OnnxEmbedder(
            cfg.model,
            runtime=cfg.runtime,  # "auto" is resolved when the model is first needed
            export_dir=cfg.export_dir or settings.server.home / "onnx",
            batch_size=cfg.batch_size,
            threads=cfg.threads,
            normalize=cfg.normalize,
            cache_path=cache,
            query_prefix=cfg.query_prefix,
            document_prefix=cfg.document_prefix,
        )
    return SentenceTransformerEmbedder(
        cfg.model,
        device=cfg.device,
        batch_size=cfg.batch_size or 64,
        threads=cfg.threads,
        normalize=cfg.normalize,
        cache_path=cache,
        query_prefix=cfg.query_prefix,
        document_prefix=cfg.document_prefix,
    )
