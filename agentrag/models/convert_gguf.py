"""Dequantize a GGUF checkpoint into a Hugging Face model folder that vLLM can load.

Runs inside the vLLM server's own virtual environment (which has transformers, gguf,
accelerate and safetensors), so it imports nothing from agentrag. Invoked by
`agentrag models setup` as ``python convert_gguf.py GGUF_FILE OUT_DIR [--dtype DTYPE]``.

vLLM 0.32 cannot load GGUF directly. ``save_pretrained`` refuses a GGUF-quantized
model, so the weights are written with safetensors directly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DTYPES = ("bfloat16", "float32")


def convert(gguf_file: Path, out_dir: Path, dtype: str = "float32") -> None:
    """Write a safetensors model folder (config, tokenizer, chat template) in ``dtype`` to ``out_dir``.

    ``dtype`` is the one the server will run: bfloat16 on CPUs with native bf16 instructions
    (AVX512-BF16 / AMX), float32 elsewhere (emulated bf16 is several times slower there).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise SystemExit(f"dtype must be one of {DTYPES}, not {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # Loading straight into the target dtype keeps one copy of the weights in memory.
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    # Tied embeddings share storage; safetensors refuses shared tensors, so keep one copy
    # and let the config's tie_word_embeddings restore the other at load time.
    state = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if ptr in seen and getattr(model.config, "tie_word_embeddings", False):
            continue
        seen.add(ptr)
        # No .clone(): the model's own tensors are written as they are (a copy of every
        # weight would double peak memory: ~9 instead of ~16 GB for a 1.5B model in fp32).
        state[key] = tensor.detach().to(torch_dtype).contiguous()
    tmp = out_dir / "model.safetensors.partial"
    save_file(state, str(tmp), metadata={"format": "pt"})
    del state
    # The loaded config remembers it came from a GGUF file; the folder we write is plain
    # safetensors, and vLLM would otherwise try to load it as GGUF.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.dtype = dtype
    model.config.save_pretrained(str(out_dir))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    tmp.rename(out_dir / "model.safetensors")
    (out_dir / "agentrag-source.json").write_text(json.dumps({"gguf": str(gguf_file), "dtype": dtype}) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf_file", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    args = parser.parse_args()
    convert(args.gguf_file, args.out_dir, args.dtype)
