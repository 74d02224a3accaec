"""The same sentence-transformers model run on CPU by ONNX Runtime (fp32, int8) or OpenVINO.

Why not ``SentenceTransformer(backend="onnx")``: it loads through ``optimum-onnx``, whose only
release pins ``transformers<4.58`` (this project runs transformers 5), and ``optimum-intel``
(OpenVINO) pulls a CUDA torch and downgrades transformers. So the export is done here with the
two well-kept pieces underneath them: ``torch.onnx.export`` (once, offline, from the local
folder) and ONNX Runtime's own dynamic int8 quantizer. Inference then needs only
``onnxruntime`` (or ``openvino``), ``tokenizers`` and numpy: no torch import, no
sentence-transformers import.

The ``openvino`` runtime reads the same fp32 export with OpenVINO's own ``Core`` and runs it at
the CPU's best float precision: bf16 where the CPU has bf16 instructions (AVX512-BF16, AMX),
fp32 elsewhere. On a bf16 CPU it is both faster than ONNX Runtime int8 and closer to the fp32
model (measured in ``bench/embed_runtimes.py``); :func:`preferred_cpu_runtime` makes that choice
for ``[embedder] runtime = "auto"``.

The exported files live under ``<export_dir>/<model fingerprint>/``; an export that exists is
reused (idempotent), a new one is written to a temporary file and renamed into place (a crash or
a concurrent export never leaves half a model).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from agentrag.embed.local import SentenceTransformerEmbedder
from agentrag.errors import EmbeddingError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["OnnxEmbedder", "OnnxRuntimeKind", "export_onnx_model", "preferred_cpu_runtime"]

log = logging.getLogger(__name__)

OnnxRuntimeKind = Literal["onnx", "onnx-int8", "openvino"]

# OpenVINO reads the fp32 export itself (its compiled form is cached under ``openvino/``).
_FILES: dict[str, str] = {"onnx": "model.onnx", "onnx-int8": "model_int8_w.onnx", "openvino": "model.onnx"}
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# One forward pass's inputs by name, and its attention mask (for pooling).
_Batch = tuple[dict[str, "NDArray[np.int64]"], "NDArray[np.int64]"]
# One export per target file at a time within a process (threads of one ingest).
_export_lock = threading.Lock()


@functools.cache
def preferred_cpu_runtime() -> OnnxRuntimeKind:
    """The fastest CPU runtime here: ``openvino`` on a CPU with bf16 instructions, else ``onnx-int8``.

    Measured on a 2-core AMD EPYC with AVX512-BF16 (``bench/embed_runtimes.py``): OpenVINO bf16
    1.5x (Mathlib declarations) to 1.7x (SciFact abstracts) ONNX Runtime int8, with vectors at
    cosine 0.9999 of fp32 (int8: 0.98-0.99). Without bf16, OpenVINO computes in fp32, which is
    slower than int8: ONNX Runtime int8 then.
    """
    try:
        import openvino as ov
    except ImportError:
        return "onnx-int8"
    try:
        caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception as exc:  # a broken OpenVINO install must not stop embedding
        log.warning("OpenVINO cannot query the CPU (%s); using onnx-int8", exc)
        return "onnx-int8"
    return "openvino" if "BF16" in caps else "onnx-int8"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data


def _pipeline(model_dir: Path) -> tuple[str, bool, int]:
    """(pooling, normalize module present, max_seq_length) of a sentence-transformers folder."""
    modules = (
        json.loads((model_dir / "modules.json").read_text(encoding="utf-8"))
        if (model_dir / "modules.json").exists()
        else []
    )
    pooling = "mean"
    has_norm = False
    for mod in modules:
        kind = str(mod.get("type", ""))
        if kind.endswith("Transformer"):
            continue
        if kind.endswith("Pooling"):
            cfg = _read_json(model_dir / str(mod.get("path", "")) / "config.json")
            if cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif not cfg.get("pooling_mode_mean_tokens", True) or any(
                cfg.get(k) for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
            ):
                raise EmbeddingError(
                    f"the ONNX runtime supports mean or CLS pooling only ({model_dir})",
                    hint="set [embedder] runtime = 'torch' for this model",
                )
        elif kind.endswith("Normalize"):
            has_norm = True
        else:
            raise EmbeddingError(
                f"the ONNX runtime cannot run the {kind or 'unknown'} module of {model_dir}",
                hint="set [embedder] runtime = 'torch' for this model",
            )
    st_cfg = _read_json(model_dir / "sentence_bert_config.json")
    max_len = int(
        st_cfg.get("max_seq_length")
        or _read_json(model_dir / "config.json").get("max_position_embeddings")
        or 512
    )
    return pooling, has_norm, max_len


def _atomic_target(target: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    return Path(tmp)


def _export_fp32(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # a one-off load needs no bar
    base = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    accepts_types = "token_type_ids" in base.forward.__code__.co_varnames

    class _Hidden(torch.nn.Module):
        """Keyword call of the transformer returning the last hidden state (a traceable forward)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            return self.inner(**kwargs).last_hidden_state

    names = list(_INPUTS if accepts_types else _INPUTS[:2])
    # A padded example, so the traced graph keeps the masking path.
    ids = torch.ones(2, 16, dtype=torch.long)
    mask = torch.ones(2, 16, dtype=torch.long)
    mask[1, 8:] = 0
    args = (ids, mask, torch.zeros(2, 16, dtype=torch.long))[: len(names)]
    axes = {n: {0: "batch", 1: "seq"} for n in [*names, "last_hidden_state"]}
    tmp = _atomic_target(target)
    try:
        # The tracer warns about shape-dependent Python branches in the masking code; the
        # export is checked against torch on padded batches (tests/embed/test_runtimes.py).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(base),
                args,
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _quantize_int8(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _atomic_target(target)
    try:
        # Matrix products only, per channel: the embedding tables stay fp32 (quantizing them
        # costs quality and saves no time).
        quantize_dynamic(
            str(source),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            # Weight products only: attention's activation x activation products stay fp32
            # (quantizing them moved some vectors to cosine 0.98 of the fp32 model).
            extra_options={"MatMulConstBOnly": True},
        )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_onnx_model(model_dir: Path, export_dir: Path, runtime: OnnxRuntimeKind, fingerprint: str) -> Path:
    """The ONNX file for ``model_dir`` (exported on first call, reused after).

    Args:
        model_dir: The local sentence-transformers folder (the source weights).
        export_dir: Root of the export cache; files go to ``export_dir/<fingerprint>/``.
        runtime: ``onnx`` (fp32), ``onnx-int8`` (dynamic int8 quantization of the fp32 export) or
            ``openvino`` (the fp32 export, which OpenVINO reads).
        fingerprint: The model's content fingerprint (see :func:`model_fingerprint`).

    Returns:
        The path of the ``.onnx`` file.

    Raises:
        EmbeddingError: The export failed (the message says why).
    """
    folder = export_dir / fingerprint
    target = folder / _FILES[runtime]
    if target.exists():
        return target
    with _export_lock:
        if target.exists():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        fp32 = folder / _FILES["onnx"]
        started = time.perf_counter()
        try:
            if not fp32.exists():
                log.info("exporting %s to ONNX (once) under %s", model_dir, folder)
                _export_fp32(model_dir, fp32)
            if runtime == "onnx-int8":
                _quantize_int8(fp32, target)
        except EmbeddingError:
            raise
        except Exception as exc:
            raise EmbeddingError(
                f"cannot export {model_dir} to ONNX: {exc}",
                hint="set [embedder] runtime = 'torch', or check that torch and onnx are installed",
            ) from exc
        (folder / "source.json").write_text(
            json.dumps({"model": str(model_dir), "fingerprint": fingerprint}, indent=1), encoding="utf-8"
        )
        log.info("ONNX export %s ready in %.1fs", target.name, time.perf_counter() - started)
    return target


class OnnxEmbedder(SentenceTransformerEmbedder):
    """A sentence-transformers model run on CPU by ONNX Runtime (fp32 or dynamic int8) or OpenVINO.

    Same identity (``name``) as :class:`SentenceTransformerEmbedder` over the same folder, so a
    knowledge base built with either opens with the other; the vector cache keys add the runtime
    (``cache_name``), because int8 vectors are close to, not equal to, fp32 ones.

    Args:
        model: A local model folder. ``None``: the bundled all-MiniLM-L6-v2.
        runtime: ``onnx`` (fp32), ``onnx-int8``, ``openvino`` (bf16 where the CPU has it) or
            ``auto`` (:func:`preferred_cpu_runtime`, resolved on first use).
        export_dir: Where exported models are cached (``<export_dir>/<fingerprint>/``).
        batch_size: Texts per forward pass (None: 8 for ``openvino``, 64 otherwise).
        threads: ONNX Runtime intra-op threads (None: one per core).
        normalize: L2-normalise vectors.
        cache_path: SQLite file for the vector cache (None: no cache).
        query_prefix: Prepended to queries.
        document_prefix: Prepended to documents.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        runtime: OnnxRuntimeKind | Literal["auto"] = "onnx-int8",
        export_dir: Path,
        batch_size: int | None = None,
        threads: int | None = None,
        normalize: bool = True,
        cache_path: Path | None = None,
        query_prefix: str = "",
        document_prefix: str = "",
    ) -> None:
        super().__init__(
            model,
            device="cpu",
            batch_size=batch_size,  # type: ignore[arg-type]  # None: the runtime's own (property)
            threads=threads,
            normalize=normalize,
            cache_path=cache_path,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
        )
        if runtime != "auto" and runtime not in _FILES:
            raise EmbeddingError(
                f"unknown ONNX runtime {runtime!r}", hint="use 'auto', 'onnx', 'onnx-int8' or 'openvino'"
            )
        self._runtime = runtime
        self.export_dir = export_dir
        self._tokenizer: Any = None
        self._pooling = "mean"
        self._max_len = 256
        self._dim = 0
        self._feeds: list[str] = []
        self._forward: Callable[[Iterable[_Batch]], list[NDArray[np.float32]]]
        self._forward_one: Callable[[_Batch], NDArray[np.float32]]

    @property
    def runtime(self) -> OnnxRuntimeKind:
        """The runtime in use (``auto`` resolved here, on first use).

        Probing the CPU costs ~0.2 s, which a knowledge base opened only for its stats or a BM25
        search should not pay.
        """
        if self._runtime == "auto":
            self._runtime = preferred_cpu_runtime()
        return self._runtime

    @property
    def batch_size(self) -> int:
        """Texts per forward pass; unset: 8 for ``openvino``, 64 otherwise."""
        # Small forward passes suit OpenVINO on CPU (measured: 8 → 117 texts/s, 64 → 97).
        return self._batch_size or (8 if self.runtime == "openvino" else 64)

    @batch_size.setter
    def batch_size(self, value: int | None) -> None:
        self._batch_size = value

    @property
    def cache_name(self) -> str:
        """Cache key: the model identity plus the runtime (int8 vectors differ slightly)."""
        return f"{self.name}|rt={self.runtime}"

    def _load(self) -> Any:
        path = self.path
        if not path.exists():
            raise EmbeddingError(
                f"embedding model folder {path} does not exist",
                hint="set [embedder] model to a local sentence-transformers folder; nothing is downloaded",
            )
        pooling, has_norm, max_len = _pipeline(path)
        self._pooling = pooling
        self._normalize = self._normalize or has_norm
        onnx_file = export_onnx_model(path, self.export_dir, self.runtime, self.fingerprint)

        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tok_cfg = _read_json(path / "tokenizer_config.json")
        pad = tok_cfg.get("pad_token") or "[PAD]"
        pad = pad.get("content") if isinstance(pad, dict) else pad
        pad_id = tokenizer.token_to_id(str(pad))
        tokenizer.enable_truncation(max_length=max_len)
        tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token=str(pad))
        self._tokenizer = tokenizer
        self._max_len = max_len
        if self.runtime == "openvino":
            return self._load_openvino(onnx_file)

        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
        self._feeds = [i.name for i in session.get_inputs()]
        self._dim = int(session.get_outputs()[0].shape[-1])
        log.info("loaded %s (%s) from %s", path, self.runtime, onnx_file)

        def forward_one(batch: _Batch) -> NDArray[np.float32]:
            return self._pool(session.run(None, batch[0])[0], batch[1])

        self._forward_one = forward_one
        self._forward = lambda batches: [forward_one(b) for b in batches]
        return session

    def _load_openvino(self, onnx_file: Path) -> Any:
        try:
            import openvino as ov
        except ImportError as exc:
            raise EmbeddingError(
                "[embedder] runtime = 'openvino' needs the openvino package",
                hint="pip install openvino, or set [embedder] runtime = 'onnx-int8'",
            ) from exc
        core = ov.Core()
        # OpenVINO's own model cache: the compiled form is reused by later processes.
        core.set_property({"CACHE_DIR": str(onnx_file.parent / "openvino")})
        # Many batches: throughput streams (one per core on 2 cores) fed by an async queue, the
        # next batch tokenized while the others run (SciFact chunks, 2 cores: 118 texts/s against
        # 108 with one all-core stream). One batch (a query): one stream on all cores (1.3 ms a
        # query against 2.4 ms on a one-core stream). Two compiled copies: ~45 MB of bf16 each.
        threads = {"INFERENCE_NUM_THREADS": self.threads} if self.threads else {}
        try:
            compiled = core.compile_model(str(onnx_file), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"} | threads)
            single = core.compile_model(str(onnx_file), "CPU", {"PERFORMANCE_HINT": "LATENCY"} | threads)
        except Exception as exc:
            raise EmbeddingError(
                f"OpenVINO cannot compile {onnx_file}: {exc}",
                hint="set [embedder] runtime = 'onnx-int8'",
            ) from exc
        request = single.create_infer_request()
        queue = ov.AsyncInferQueue(compiled)  # the plugin's optimal number of requests
        self._feeds = [i.get_any_name() for i in compiled.inputs]
        self._dim = int(compiled.outputs[0].get_partial_shape()[-1].get_length())
        log.info(
            "loaded %s (openvino, %s, %d requests) from %s",
            self.path,
            compiled.get_property("INFERENCE_PRECISION_HINT"),
            len(queue),
            onnx_file,
        )

        def forward(batches: Iterable[_Batch]) -> list[NDArray[np.float32]]:
            out: dict[int, NDArray[np.float32]] = {}
            failed: list[BaseException] = []

            def done(request: Any, key: tuple[int, NDArray[np.int64]]) -> None:
                # Pooled here, while the request's output buffer is still this batch's.
                try:
                    out[key[0]] = self._pool(request.get_output_tensor(0).data, key[1])
                except BaseException as exc:  # re-raised on the caller's thread below
                    failed.append(exc)

            queue.set_callback(done)
            n = 0
            try:
                for n, (feeds, mask) in enumerate(batches, start=1):
                    queue.start_async(feeds, (n - 1, mask))
            finally:  # a failure while queueing still lets the queued batches finish first
                queue.wait_all()
            if failed:
                raise failed[0]
            return [out[i] for i in range(n)]

        def forward_one(batch: _Batch) -> NDArray[np.float32]:
            return self._pool(request.infer(batch[0])[0], batch[1])

        self._forward, self._forward_one = forward, forward_one
        return compiled

    @property
    def dim(self) -> int:
        """Vector dimension (384 for the default model)."""
        _ = self.model
        return self._dim

    @property
    def max_tokens(self) -> int:
        """The model's max sequence length minus [CLS]/[SEP] (254 for MiniLM)."""
        _ = self.model
        return self._max_len - 2

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model tokenizer's tokens (no truncation)."""
        _ = self.model
        tok = self._tokenizer
        with self._run_lock:  # truncation is tokenizer state: switch it off for this call only
            tok.no_truncation()
            try:
                enc = tok.encode(text, add_special_tokens=False)
            finally:
                tok.enable_truncation(max_length=self._max_len)
        return [(int(a), int(b)) for a, b in enc.offsets]

    def _encode(self, texts: list[str]) -> _Batch:
        encs = self._tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {k: feeds[k] for k in self._feeds}, mask

    def _pool(self, hidden: NDArray[np.float32], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        if self._pooling == "cls":
            return np.array(hidden[:, 0], dtype=np.float32)
        m = mask[:, :, None].astype(np.float32)
        return np.asarray((hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None), dtype=np.float32)

    def _embed_sorted(self, texts: list[str]) -> NDArray[np.float32]:
        # All at once: _embed_batch cuts them into forward passes and OpenVINO overlaps those.
        return self._embed_batch(texts)

    def _embed_batch(self, texts: list[str]) -> NDArray[np.float32]:
        _ = self.model  # loads, and sets self._forward
        with self._run_lock:
            size = self.batch_size
            if len(texts) <= size:
                out = [self._forward_one(self._encode(texts))]
            else:
                out = self._forward(self._encode(texts[i : i + size]) for i in range(0, len(texts), size))
        vectors = np.concatenate(out)
        if self._normalize:
            vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors
