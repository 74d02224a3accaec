"""Dequantize a GGUF checkpoint into a Hugging Face model folder that vLLM can load.

Runs inside the vLLM server's own virtual environment (which has transformers, gguf,
accelerate and safetensors), so it imports nothing from agentrag. Invoked by
`agentrag models setup` as ``python convert_gguf.py GGUF_FILE OUT_DIR``.

vLLM 0.32 cannot load GGUF directly. ``save_pretrained`` refuses a GGUF-quantized
model, so the weights are written with safetensors directly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def convert(gguf_file: Path, out_dir: Path) -> None:
    """Write a float32 safetensors model folder (config, tokenizer, chat template) to ``out_dir``."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # Tied embeddings share storage; safetensors refuses shared tensors, so keep one copy
    # and let the config's tie_word_embeddings restore the other at load time.
    state = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        ptr = tensor.data_ptr()
        if ptr in seen and getattr(model.config, "tie_word_embeddings", False):
            continue
        seen.add(ptr)
        state[key] = tensor.detach().to(torch.float32).contiguous().clone()
    tmp = out_dir / "model.safetensors.partial"
    save_file(state, str(tmp), metadata={"format": "pt"})
    # The loaded config remembers it came from a GGUF file; the folder we write is plain
    # safetensors, and vLLM would otherwise try to load it as GGUF.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # float32, not bfloat16: on CPUs without native bf16 (AVX2) vLLM runs bf16 several times
    # slower and stops batching concurrent requests (measured: 0.86 s vs 0.29 s per call).
    model.config.dtype = "float32"
    model.config.save_pretrained(str(out_dir))
    if model.generation_config is not None:
        model.generation_config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    tmp.rename(out_dir / "model.safetensors")
    (out_dir / "agentrag-source.json").write_text(json.dumps({"gguf": str(gguf_file)}) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: convert_gguf.py GGUF_FILE OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
