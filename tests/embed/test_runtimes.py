"""The ONNX Runtime embedder and model identity by content, against the real all-MiniLM-L6-v2."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from agentrag.embed import SentenceTransformerEmbedder, default_model_path, embedder_from_settings
from agentrag.embed.fingerprint import check_embedder_name, model_fingerprint
from agentrag.embed.onnx import OnnxEmbedder, preferred_cpu_runtime
from agentrag.errors import EmbedderMismatchError, EmbeddingError

# Real texts of both kinds the project embeds: prose and Lean declarations (premise texts).
TEXTS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A man is riding a horse.",
    "The girl is carrying a baby.",
    "Vitamin D deficiency is associated with an increased risk of tuberculosis in adults.",
    "Mutations in the BRCA1 gene raise the lifetime risk of breast and ovarian cancer.",
    "theorem Nat.succ_le_of_lt\nNat succ le of lt\n{n m : ℕ} (h : n < m) : succ n ≤ m",
    "lemma mul_le_mul_left'\nmul le mul left\n[Mul α] [LE α] {b c : α} (bc : b ≤ c) (a : α) : a * b ≤ a * c",
    "def Finset.sum\nFinset sum\nThe sum of f over a finite set.\n(s : Finset α) (f : α → β) : β",
]
QUERY = "A man is eating pasta."


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-exports")


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    return SentenceTransformerEmbedder().embed_documents(TEXTS)


@pytest.mark.parametrize(("runtime", "floor"), [("onnx", 0.9999), ("onnx-int8", 0.99), ("openvino", 0.9999)])
def test_onnx_runtime_matches_torch(
    runtime: str, floor: float, export_dir: Path, torch_vectors: np.ndarray
) -> None:
    torch_emb = SentenceTransformerEmbedder()
    emb = OnnxEmbedder(runtime=runtime, export_dir=export_dir)  # type: ignore[arg-type]
    vecs = emb.embed_documents(TEXTS)
    assert vecs.shape == (len(TEXTS), 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cos = np.sum(vecs * torch_vectors, axis=1)
    assert cos.min() >= floor, cos
    # Same ranking as torch for a query over all texts.
    q, q_ref = emb.embed_query(QUERY), torch_emb.embed_query(QUERY)
    ranking, ref_ranking = list(np.argsort(-(vecs @ q))), list(np.argsort(-(torch_vectors @ q_ref)))
    assert ranking[:3] == ref_ranking[:3] == [0, 1, 2]
    if runtime in ("onnx", "openvino"):
        assert ranking == ref_ranking
    # Same identity as the torch model (a knowledge base opens with either); distinct cache keys.
    assert emb.name == torch_emb.name
    assert emb.cache_name != torch_emb.cache_name
    assert emb.max_tokens == torch_emb.max_tokens == 254 and emb.dim == 384
    text = "Tokenization splits words: ∀ x ∈ s, f x ≤ g x."
    assert emb.token_spans(text) == torch_emb.token_spans(text)


def test_long_texts_are_truncated_like_torch(export_dir: Path) -> None:
    long = " ".join(["the quick brown fox jumps over the lazy dog"] * 80)  # ~720 tokens
    ref = SentenceTransformerEmbedder().embed_documents([long, TEXTS[0]])
    vecs = OnnxEmbedder(runtime="onnx", export_dir=export_dir).embed_documents([long, TEXTS[0]])
    assert np.sum(vecs * ref, axis=1).min() > 0.9999


def test_export_is_cached_and_idempotent(export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = OnnxEmbedder(runtime="onnx-int8", export_dir=export_dir)
    emb.embed_query("warm up")
    folder = export_dir / emb.fingerprint
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert files == ["model.onnx", "model_int8_w.onnx", "source.json"]  # no temporary files left
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}

    # A second embedder (a new process) must reuse the files: exporting again would fail here.
    import agentrag.embed.onnx as onnx_mod

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_mod, "_export_fp32", boom)
    monkeypatch.setattr(onnx_mod, "_quantize_int8", boom)
    again = OnnxEmbedder(runtime="onnx-int8", export_dir=export_dir)
    assert np.allclose(again.embed_query(TEXTS[0]), emb.embed_query(TEXTS[0]), atol=1e-6)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} == stamps


def test_settings_choose_the_runtime(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrag.embed import onnx as onnx_mod

    probes: list[str] = []

    def probe() -> str:
        probes.append(preferred_cpu_runtime())
        return probes[-1]

    monkeypatch.setattr(onnx_mod, "preferred_cpu_runtime", probe)
    assert settings.embedder.runtime == "auto"
    emb = embedder_from_settings(settings)
    assert isinstance(emb, OnnxEmbedder) and probes == []  # building it does not probe the CPU
    assert emb.runtime == preferred_cpu_runtime() and len(probes) == 1
    assert emb.batch_size == (8 if emb.runtime == "openvino" else 64)
    assert emb.export_dir == settings.server.home / "onnx"  # one export per user, not per data dir
    torch_cfg = settings.embedder.model_copy(update={"runtime": "torch"})
    plain = embedder_from_settings(settings.model_copy(update={"embedder": torch_cfg}))
    assert type(plain) is SentenceTransformerEmbedder


def test_unsupported_module_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(default_model_path(), folder)
    (folder / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},'
        ' {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]'
    )
    with pytest.raises(EmbeddingError, match="Dense") as err:
        OnnxEmbedder(folder, export_dir=tmp_path / "x").embed_query("x")
    assert "runtime = 'torch'" in (err.value.hint or "")


# -- model identity by content ---------------------------------------------------------------


def _two_models_named_model(root: Path) -> tuple[Path, Path]:
    """MiniLM, and MiniLM with perturbed weights: both in folders named ``model``."""
    from safetensors.numpy import load_file, save_file

    first, second = root / "a" / "model", root / "b" / "model"
    shutil.copytree(default_model_path(), first)
    shutil.copytree(default_model_path(), second)
    weights = load_file(str(second / "model.safetensors"))
    rng = np.random.default_rng(0)
    for name, tensor in weights.items():
        if name.endswith("word_embeddings.weight"):
            weights[name] = (tensor + rng.normal(0, 0.05, tensor.shape)).astype(tensor.dtype)
    save_file(weights, str(second / "model.safetensors"))
    return first, second


def test_same_folder_name_different_weights_do_not_share_vectors(tmp_path: Path) -> None:
    first, second = _two_models_named_model(tmp_path)
    cache = tmp_path / "cache.sqlite"
    a = SentenceTransformerEmbedder(first, cache_path=cache)
    b = SentenceTransformerEmbedder(second, cache_path=cache)
    assert a.name.startswith("st:model@") and b.name.startswith("st:model@")
    assert a.name != b.name
    va = a.embed_documents(TEXTS)
    vb = b.embed_documents(TEXTS)  # same cache file, same texts: must run the second model
    assert a.cache is not None and a.cache.count(a.cache_name) == len(TEXTS)
    assert b.cache is not None and b.cache.count(b.cache_name) == len(TEXTS)
    assert np.sum(va * vb, axis=1).min() < 0.999  # the perturbed model's own vectors, not a's
    fresh_b = SentenceTransformerEmbedder(second).embed_documents(TEXTS)
    assert np.allclose(vb, fresh_b, atol=1e-5)
    # An identical copy elsewhere is the same model: same identity, shared cache.
    assert SentenceTransformerEmbedder(first).name == SentenceTransformerEmbedder().name.replace(
        "all-MiniLM-L6-v2", "model"
    )


def test_fingerprint_follows_content_and_is_memoised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    shutil.copytree(default_model_path(), folder)
    fp = model_fingerprint(folder)
    assert fp == model_fingerprint(default_model_path())  # content, not location
    (folder / "README.md").write_text("docs do not change vectors")
    assert model_fingerprint(folder) == fp

    import agentrag.embed.fingerprint as fpmod

    reads: list[Path] = []
    original = Path.open

    def counting(self: Path, *a: object, **k: object):  # type: ignore[no-untyped-def]
        reads.append(self)
        return original(self, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "open", counting)
    assert fpmod.model_fingerprint(folder) == fp
    assert reads == []  # unchanged files are not read again
    config = folder / "config.json"
    config.write_text(config.read_text().replace('"hidden_act": "gelu"', '"hidden_act": "relu"'))
    reads.clear()
    assert fpmod.model_fingerprint(folder) != fp
    assert reads == [config]  # only the changed file is hashed again


def test_missing_folder_fingerprint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match="does not exist"):
        model_fingerprint(tmp_path / "nope")


def test_kb_check_refuses_another_model_with_the_same_folder_name() -> None:
    check_embedder_name("st:model@aaa", "st:model@aaa", kb="k")
    with pytest.raises(EmbedderMismatchError, match="same folder name but different weights") as err:
        check_embedder_name("st:model@aaa", "st:model@bbb", kb="k")
    assert err.value.code == "kb.embedder_mismatch" and err.value.hint
    # Before fingerprints: the bundled model is unambiguous (its package pins the weights)...
    check_embedder_name("st:all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2@abc", kb="k")
    check_embedder_name("st:all-MiniLM-L6-v2|q=q: |d=", "st:all-MiniLM-L6-v2@abc|q=q: |d=", kb="k")
    # ... a folder given by path is not.
    with pytest.raises(EmbedderMismatchError):
        check_embedder_name("st:model", "st:model@abc", kb="k")
    with pytest.raises(EmbedderMismatchError, match="different model or prefixes"):
        check_embedder_name("st:all-MiniLM-L6-v2@abc", "st:all-MiniLM-L6-v2@abc|q=q: |d=", kb="k")


def test_knowledge_base_refuses_a_different_model_in_a_same_named_folder(settings, tmp_path: Path) -> None:
    from agentrag.ingest import Document
    from agentrag.kb import KnowledgeBase

    first, second = _two_models_named_model(tmp_path)
    kb = KnowledgeBase.open(settings, "k", embedder=SentenceTransformerEmbedder(first))
    kb.ingest_documents([Document(source="s1", text=TEXTS[4])])
    kb.close()
    with pytest.raises(EmbedderMismatchError, match="built with embedder 'st:model@"):
        KnowledgeBase.open(settings, "k", embedder=SentenceTransformerEmbedder(second))
    # The same weights under the ONNX runtime open it (vectors are interchangeable).
    KnowledgeBase.open(settings, "k", embedder=OnnxEmbedder(first, export_dir=tmp_path / "x")).close()


def test_openvino_compiled_model_is_cached(export_dir: Path) -> None:
    emb = OnnxEmbedder(runtime="openvino", export_dir=export_dir)
    first = emb.embed_documents(TEXTS[:3])
    cache = export_dir / emb.fingerprint / "openvino"
    assert any(cache.iterdir())  # OpenVINO's compiled blob, reused by the next process
    again = OnnxEmbedder(runtime="openvino", export_dir=export_dir).embed_documents(TEXTS[:3])
    assert np.allclose(first, again, atol=1e-6)
    # Each batch's output is copied out of the request's reused buffer.
    assert not np.allclose(emb.embed_query(TEXTS[0]), emb.embed_query(TEXTS[5]))


def test_auto_runtime_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import openvino

    from agentrag.embed import onnx as onnx_mod

    class NoBf16Core:
        def get_property(self, device: str, name: str) -> list[str]:
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return ["FP32", "INT8", "EXPORT_IMPORT"]

    real_caps = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    onnx_mod.preferred_cpu_runtime.cache_clear()
    try:
        assert preferred_cpu_runtime() == ("openvino" if "BF16" in real_caps else "onnx-int8")
        onnx_mod.preferred_cpu_runtime.cache_clear()
        monkeypatch.setattr(openvino, "Core", NoBf16Core)
        assert preferred_cpu_runtime() == "onnx-int8"  # fp32 OpenVINO is slower than int8
        onnx_mod.preferred_cpu_runtime.cache_clear()
        monkeypatch.setitem(__import__("sys").modules, "openvino", None)  # not installed
        assert preferred_cpu_runtime() == "onnx-int8"
    finally:
        onnx_mod.preferred_cpu_runtime.cache_clear()


def test_openvino_runtime_without_the_package_says_so(
    export_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)
    emb = OnnxEmbedder(runtime="openvino", export_dir=export_dir)
    with pytest.raises(EmbeddingError) as err:
        emb.embed_query("x")
    assert "openvino" in str(err.value) and "onnx-int8" in (err.value.hint or "")


def test_openvino_many_texts_overlap_in_order(export_dir: Path, torch_vectors: np.ndarray) -> None:
    """More texts than one forward pass go through the async queue; order and values hold."""
    emb = OnnxEmbedder(runtime="openvino", export_dir=export_dir)
    assert emb.batch_size == 8
    texts = TEXTS * 3  # 27 texts: 4 forward passes, finishing out of order on 2 streams
    many = emb.embed_documents(texts)
    one_by_one = np.stack([emb.embed_documents([t])[0] for t in texts])
    assert np.sum(many * one_by_one, axis=1).min() > 0.9999
    assert np.sum(many * np.tile(torch_vectors, (3, 1)), axis=1).min() > 0.9999


def test_openvino_failure_in_a_batch_is_raised(export_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = OnnxEmbedder(runtime="openvino", export_dir=export_dir)
    emb.embed_query("load")
    calls = 0
    real_pool = emb._pool

    def pool_fails_once(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise MemoryError("no room for this batch")
        return real_pool(hidden, mask)

    monkeypatch.setattr(emb, "_pool", pool_fails_once)
    with pytest.raises(MemoryError):
        emb.embed_documents(TEXTS * 2)
    monkeypatch.setattr(emb, "_pool", real_pool)
    assert emb.embed_documents(TEXTS * 2).shape == (18, 384)  # the queue is usable afterwards
