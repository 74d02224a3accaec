from __future__ import annotations

from pathlib import Path

import pytest

from agentrag.errors import ConfigError
from agentrag.settings import Settings, StoreSettings
from agentrag.stores import open_store


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("AGENTRAG_"):
            monkeypatch.delenv(key)


def test_kb_and_retrieval_sections_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "agentrag.toml"
    cfg.write_text(
        '[kb]\ndefault_name = "notes"\nexclude = ["drafts"]\n[kb.store]\nbackend = "qdrant"\n'
        'url = "http://127.0.0.1:6333/"\n[kb.chunking]\nchunk_tokens = 128\n'
        '[retrieval]\nfusion = "rrf"\nrrf_weights = [1.0, 2.0]\n[retrieval.bm25]\nstemmer = ""\n'
    )
    monkeypatch.setenv("AGENTRAG_RETRIEVAL__K", "7")
    s = Settings.load(config=cfg)
    assert s.kb.default_name == "notes" and s.kb.exclude == ["drafts"]
    assert s.kb.store.backend == "qdrant" and s.kb.store.url == "http://127.0.0.1:6333"
    assert s.kb.chunking.chunk_tokens == 128 and s.kb.chunking.overlap_tokens == 32
    assert s.retrieval.fusion == "rrf" and s.retrieval.rrf_weights == (1.0, 2.0) and s.retrieval.k == 7
    assert not s.retrieval.bm25.stemmer
    assert s.kb_dir("notes") == s.data_dir / "kb" / "notes"


def test_invalid_values_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kb\.store\.backend"):
        Settings.load(config=None, kb={"store": {"backend": "pinecone"}})
    with pytest.raises(ConfigError, match="alpha"):
        Settings.load(config=None, retrieval={"alpha": 1.5})
    with pytest.raises(ConfigError, match="default_name"):
        Settings.load(config=None, kb={"default_name": "../escape"})
    with pytest.raises(ConfigError, match="name"):
        Settings.load(config=None).kb_dir("a/b")
    with pytest.raises(ConfigError, match="url"):
        open_store(StoreSettings(backend="chroma-http"), "x", tmp_path)
