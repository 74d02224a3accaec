"""A deterministic bag-of-words embedder for unit tests of KB logic (no model, instant).

Each word hashes to a few of 64 dimensions; vectors are L2-normalised, so texts sharing words
are close. Integration tests use the real MiniLM instead.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from agentrag.embed.base import CachedEmbedder, regex_token_spans

_WORD = re.compile(r"\w+")


class FakeEmbedder(CachedEmbedder):
    def __init__(self, *, dim: int = 64, max_tokens: int = 64, name: str = "fake:hash") -> None:
        super().__init__()
        self._dim = dim
        self._max = max_tokens
        self._name = name
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def normalized(self) -> bool:
        return True

    @property
    def max_tokens(self) -> int:
        return self._max

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return regex_token_spans(text)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[row, h[0] % self._dim] += 1.0
                out[row, h[1] % self._dim] += 0.5
            if not out[row].any():
                out[row, 0] = 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out
