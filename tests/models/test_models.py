"""Local model serving: setup steps, the vLLM command line, and the serve/status/stop lifecycle.

The lifecycle tests run a real subprocess standing in for vLLM (a tiny HTTP server behind the
server venv's `python`), so start-up waiting, health checks, process-group stop and start-up
failures are exercised for real without vLLM's 35 s start. The real vLLM path is covered by
the `vllm_server` fixture (which starts the server through `serve`) and the status test below.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentrag.errors import ModelServerError
from agentrag.models import setup as setup_mod
from agentrag.models.server import _server_env, build_command, cpu_bind, serve, status, stop
from agentrag.settings import ServerSettings

FAKE_VLLM = textwrap.dedent(
    """\
    #!{python}
    # Stands in for the server venv's python: `python -m vllm... --port P --served-model-name N`.
    import json, os, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    args = sys.argv[1:]
    port = int(args[args.index("--port") + 1])
    name = args[args.index("--served-model-name") + 1]
    if os.environ.get("FAKE_VLLM_FAIL"):
        print("RuntimeError: Engine core initialization failed", flush=True)
        sys.exit(1)
    time.sleep(float(os.environ.get("FAKE_VLLM_DELAY", "0")))
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            body = b"{{}}" if self.path == "/health" else json.dumps(
                {{"data": [{{"id": name}}]}}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
    print("fake vllm up", flush=True)
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fake_home(tmp_path: Path) -> ServerSettings:
    home = tmp_path / "home"
    py = home / "vllm-venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(FAKE_VLLM.format(python=sys.executable))
    py.chmod(py.stat().st_mode | stat.S_IEXEC)
    server = ServerSettings(home=home, port=free_port(), startup_timeout_s=20)
    model = setup_mod.model_dir(server, server.model)
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"")  # what `is_prepared` looks for
    return server


def test_build_command_cpu_and_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n")
    monkeypatch.setattr(setup_mod, "CPUINFO", cpuinfo)
    cpu = ServerSettings(home=tmp_path)
    cmd = build_command(cpu, model_path=tmp_path / "m", served_name="x", port=1234)
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert {"--enforce-eager", "--enable-prefix-caching"} <= set(cmd)
    assert cmd[cmd.index("--dtype") + 1] == "bfloat16"  # the CPU has native bf16
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
    # Guided decoding: xgrammar with no free whitespace, as one JSON value vLLM parses.
    structured = json.loads(cmd[cmd.index("--structured-outputs-config") + 1])
    assert structured == {"backend": "xgrammar", "disable_any_whitespace": True}
    # The setting overrides what the CPU suggests.
    forced = build_command(
        cpu.model_copy(update={"dtype": "float32"}), model_path=tmp_path / "m", served_name="x", port=1
    )
    assert forced[forced.index("--dtype") + 1] == "float32"
    # Embedding/scoring servers stay float32 (their outputs are compared with local fp32 models).
    pooling = build_command(cpu, model_path=tmp_path / "m", served_name="x", port=1, embedding=True)
    assert pooling[pooling.index("--dtype") + 1] == "float32"
    gpu = ServerSettings(home=tmp_path, vllm_spec="vllm==0.32.0", extra_args=["--tensor-parallel-size", "2"])
    cmd = build_command(
        gpu, model_path=tmp_path / "m", served_name="x", port=1, embedding=True, max_model_len=256
    )
    assert "--enforce-eager" not in cmd and "--dtype" not in cmd
    assert "--enable-prefix-caching" not in cmd and cmd[cmd.index("--runner") + 1] == "pooling"
    assert "--structured-outputs-config" not in cmd  # a pooling model decodes nothing
    assert cmd[cmd.index("--max-model-len") + 1] == "256"
    assert cmd[-2:] == ["--tensor-parallel-size", "2"]


def test_server_env_binds_threads_to_the_cpus_we_may_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {1, 0, 3})
    auto = ServerSettings(home=tmp_path)
    one = ServerSettings(home=tmp_path, cpus="one")
    # Alone: every allowed CPU (no idle core). Beside our other servers, or with "one": one CPU
    # of its own, the least used by them, not vLLM's "auto" (every server on the first core).
    assert cpu_bind(auto) == "0,1,3"
    assert cpu_bind(one) == "0"
    assert cpu_bind(auto, taken=["0"]) == cpu_bind(one, taken=["0"]) == "1"
    assert cpu_bind(auto, taken=["0", "1"]) == "3"
    assert cpu_bind(auto, taken=["0-1", "3", "0"]) == "1"
    assert cpu_bind(auto, taken=["0,1,3"]) == "0"
    assert cpu_bind(ServerSettings(home=tmp_path, cpus="all")) == "0,1,3"
    assert cpu_bind(ServerSettings(home=tmp_path, cpus="2-3")) == "2-3"
    env = _server_env(auto, cpus="1")
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "1"
    assert "OMP_NUM_THREADS" not in env  # would override the binding's thread count
    assert env["VLLM_HOST_IP"] == "127.0.0.1"
    assert _server_env(one)["VLLM_CPU_OMP_THREADS_BIND"] == "0"
    gpu = _server_env(ServerSettings(home=tmp_path, vllm_spec="vllm==0.32.0"))
    assert "VLLM_CPU_OMP_THREADS_BIND" not in gpu


def test_servers_started_side_by_side_get_different_cpus(
    fake_home: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    other = fake_home.model_copy(update={"port": free_port()})
    first = serve(fake_home)
    try:
        second = serve(other, served_name="second")
        try:
            # The first ran alone (every core); the second got one core of its own.
            assert first.cpus == "0,1" and second.cpus in {"0", "1"}
        finally:
            stop(other)
    finally:
        stop(fake_home)


def test_setup_plan_pins_torch_first_and_fixes_cpu_wheels(tmp_path: Path) -> None:
    steps = setup_mod.plan_setup(ServerSettings(home=tmp_path))
    assert [s.name for s in steps] == [
        "venv",
        "torch",
        "vllm",
        "convert-deps",
        "model-qwen2.5-coder-1.5b-download",
        "model-qwen2.5-coder-1.5b-verify",
        "model-qwen2.5-coder-1.5b-convert",
    ]
    assert steps[1].spec == "torch==2.13.0"
    assert "cpu-fixups" in steps[2].spec
    assert [s.name for s in setup_mod.plan_setup(ServerSettings(home=tmp_path), default_model=False)] == [
        "venv",
        "torch",
        "vllm",
    ]
    two = setup_mod.plan_setup(ServerSettings(home=tmp_path), models=["smollm2-135m", "qwen2.5-coder-1.5b"])
    assert [s.name for s in two if s.name.endswith("-convert")] == [
        "model-smollm2-135m-convert",
        "model-qwen2.5-coder-1.5b-convert",
    ]


def test_run_setup_is_idempotent_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ServerSettings(home=tmp_path)
    ran: list[str] = []
    fail = {"b"}

    def plan(_server: ServerSettings, **_: object) -> list[setup_mod.SetupStep]:
        def action(name: str):
            def run(_log: Path) -> None:
                ran.append(name)
                if name in fail:
                    raise ModelServerError(f"{name} failed")

            return run

        return [setup_mod.SetupStep(name=n, description=n, spec=f"{n}-1", action=action(n)) for n in "abc"]

    monkeypatch.setattr(setup_mod, "plan_setup", plan)
    with pytest.raises(ModelServerError):
        setup_mod.run_setup(server)
    assert ran == ["a", "b"]
    fail.clear()
    events: list[tuple[str, str]] = []
    setup_mod.run_setup(server, on_step=lambda s, what, _t: events.append((s.name, what)))
    assert ran == ["a", "b", "b", "c"]  # a was done; b and c run
    assert ("a", "skipped") in events and ("c", "done") in events
    setup_mod.run_setup(server)
    assert ran == ["a", "b", "b", "c"]  # nothing left to do
    setup_mod.run_setup(server, force=True)
    assert ran[-3:] == ["a", "b", "c"]


def test_failed_command_reports_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "setup.log"
    with pytest.raises(ModelServerError) as info:
        setup_mod._run([sys.executable, "-c", "print('no matching distribution'); raise SystemExit(3)"], log)
    assert "no matching distribution" in info.value.message
    assert "exit code 3" in info.value.message
    assert str(log) in info.value.hint


def test_serve_status_stop_lifecycle(fake_home: ServerSettings) -> None:
    info = serve(fake_home)
    try:
        assert info.pid > 0 and info.url.endswith(f":{fake_home.port}/v1")
        [row] = status(fake_home, port=fake_home.port)
        assert row.running and row.healthy and row.served == [fake_home.served_name]
        # Serving again is a no-op that returns the recorded server.
        assert serve(fake_home).pid == info.pid
        # A different name on a taken port is refused.
        with pytest.raises(ModelServerError, match="taken"):
            serve(fake_home, served_name="other")
    finally:
        assert stop(fake_home)
    [row] = status(fake_home, port=fake_home.port)
    assert not row.running and not row.healthy
    assert not stop(fake_home)  # nothing left to stop


def test_serve_reports_a_crash_during_startup(
    fake_home: ServerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_FAIL", "1")
    with pytest.raises(ModelServerError) as info:
        serve(fake_home)
    assert "Engine core initialization failed" in info.value.message
    assert "log" in info.value.hint


def test_serve_times_out_and_cleans_up(fake_home: ServerSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_VLLM_DELAY", "30")
    slow = fake_home.model_copy(update={"startup_timeout_s": 1.5})
    with pytest.raises(ModelServerError, match="not healthy"):
        serve(slow)
    assert not (slow.home / "run" / f"vllm-{slow.port}.json").exists()


def test_serve_without_setup_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(ModelServerError) as info:
        serve(ServerSettings(home=tmp_path))
    assert "agentrag models setup" in info.value.hint


def test_cli_lifecycle(fake_home: ServerSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrag.cli import app
    from agentrag.cli._common import state

    monkeypatch.setenv("AGENTRAG_SERVER__HOME", str(fake_home.home))
    monkeypatch.setenv("AGENTRAG_SERVER__PORT", str(fake_home.port))
    monkeypatch.setattr(state, "_settings", None)
    runner = CliRunner()
    result = runner.invoke(app, ["models", "serve"])
    assert result.exit_code == 0, result.output
    assert "started" in result.output
    result = runner.invoke(app, ["models", "status", "--json"])
    rows = json.loads(result.output)
    assert rows[0]["healthy"] and rows[0]["served"] == ["qwen2.5-coder-1.5b"]
    result = runner.invoke(app, ["models", "stop"])
    assert result.exit_code == 0 and "stopped" in result.output


def test_cli_error_is_rendered_with_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentrag.cli import app
    from agentrag.cli._common import state

    monkeypatch.setenv("AGENTRAG_SERVER__HOME", str(tmp_path))
    monkeypatch.setattr(state, "_settings", None)
    result = CliRunner().invoke(app, ["models", "serve"])
    assert result.exit_code == 1
    assert "models.server" in result.output and "agentrag models setup" in result.output


def test_status_of_the_real_server(vllm_server: str, server_settings: ServerSettings) -> None:
    [row] = status(server_settings, port=server_settings.port)
    assert row.healthy and server_settings.served_name in row.served
