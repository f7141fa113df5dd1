"""A real Arize Phoenix server for end-to-end tests, started once per test session.

The `phoenix` fixture (session scope) installs Phoenix into `.venv-phoenix` when needed
(`scripts/install_phoenix.sh`, pinned version), starts `phoenix serve` on free loopback ports
with a throw-away working directory, waits for `GET /healthz`, and yields a `PhoenixServer`.
Teardown stops the server by its process id and removes the temporary directory.

Only `LIVEKIT_OTEL_SKIP_E2E=1` turns the fixture into a skip. Any other failure to install or
start Phoenix is raised, so the test shows as an ERROR rather than being silently skipped.

Spans returned by `PhoenixServer.spans` are the objects of Phoenix's REST endpoint
`GET /v1/projects/{project}/spans`, unchanged, plus two convenience keys copied from their
`context`: `span_id` and `trace_id`. In that shape:

- `name`, `parent_id` (hex span id, or None for a root), `context` (`trace_id`, `span_id`, hex),
  `id` (Phoenix's own GlobalID of the row), `start_time` / `end_time` (ISO 8601 strings);
- `span_kind`: the value of the `openinference.span.kind` attribute (e.g. "LLM", "TOOL"), or
  "UNKNOWN" when the span had none; that key is removed from `attributes`;
- `status_code`: "OK", "ERROR" or "UNSET"; `status_message`: a string, "" when unset;
- `attributes`: a flat dict keyed by the dotted OpenTelemetry attribute names
  (`"llm.token_count.prompt": 12`); values keep their JSON type (ints stay ints, lists of
  primitives stay lists);
- `events`: a list of `{"name", "timestamp", "attributes"}`.

Only the standard library is used for HTTP (urllib), so the fixture adds no dependency.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_phoenix.sh"
SKIP_ENV = "LIVEKIT_OTEL_SKIP_E2E"
VENV_ENV = "LIVEKIT_OTEL_PHOENIX_VENV"
START_TIMEOUT_ENV = "LIVEKIT_OTEL_PHOENIX_START_TIMEOUT"

DEFAULT_START_TIMEOUT_S = 90.0
"""Time allowed for `phoenix serve` to answer /healthz. It is ready in about 18 s on this
machine, nearly all of it spent importing Python modules; the margin covers a loaded CI box."""

STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 60
HTTP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.2

# Settings that keep Phoenix local, quiet and small. Phoenix reads them all from the
# environment (phoenix/config.py of the pinned version).
_QUIET_LOCAL_SETTINGS: dict[str, str] = {
    # No FullStory / Scarf.sh pixels in the UI.
    "PHOENIX_TELEMETRY_ENABLED": "false",
    # No request to the public internet on Phoenix's own initiative: web fonts, telemetry,
    # and the CPython WASM sandbox binary that is otherwise downloaded at start-up.
    "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
    # The LLM assistant, its docs MCP client, web and GitHub tools and server-side bash.
    "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    "PHOENIX_AGENTS_DISABLE_WEB_ACCESS": "true",
    "PHOENIX_AGENTS_DISABLE_GITHUB": "true",
    "PHOENIX_AGENTS_DISABLE_BASH": "true",
    # The in-process MCP server at /mcp is not needed by tests.
    "PHOENIX_ENABLE_MCP_SERVER": "false",
    # Without this every migration statement is echoed (about 350 kB of log per start).
    "PHOENIX_LOG_MIGRATIONS": "false",
}

# Inherited variables that must not reach the server: an OTEL_* endpoint could make Phoenix
# instrument itself and export to it, and stray PHOENIX_* settings would change the server.
_STRIPPED_ENV_PREFIXES = ("OTEL_", "PHOENIX_")


class PhoenixError(RuntimeError):
    """Phoenix could not be installed, started or queried."""


def _free_port(host: str) -> int:
    """Return a TCP port that is free on `host` right now (bind to port 0, read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last `lines` lines of the server log, or a note when it cannot be read."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<no log at {log_path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def _parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time as Phoenix writes it (Python 3.10 rejects a trailing "Z")."""
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    return datetime.fromisoformat(value)


def phoenix_venv() -> Path:
    """Return the Phoenix virtual environment directory (`.venv-phoenix` unless overridden)."""
    return Path(os.environ.get(VENV_ENV, str(REPO_ROOT / ".venv-phoenix")))


def ensure_installed() -> Path:
    """Run the (idempotent) install script and return the path of the `phoenix` executable.

    The script returns at once when the pinned version is already installed; a first install
    takes about two minutes and 850 MB.
    """
    venv = phoenix_venv()
    env = dict(os.environ, PHOENIX_VENV=str(venv))
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
        raise PhoenixError(
            f"{INSTALL_SCRIPT} failed with exit code {proc.returncode}:\n" + "\n".join(output)
        )
    executable = venv / "bin" / "phoenix"
    if not executable.is_file():
        raise PhoenixError(f"{INSTALL_SCRIPT} succeeded but {executable} does not exist")
    return executable


class PhoenixServer:
    """A running `phoenix serve` process and a small stdlib client for its REST API."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        host: str,
        port: int,
        grpc_port: int,
        root_dir: Path,
        log_path: Path,
        startup_seconds: float,
    ) -> None:
        """Wrap an already started and healthy server; use `start_phoenix` to make one."""
        self.process = process
        self.host = host
        self.port = port
        self.grpc_port = grpc_port
        self.root_dir = root_dir
        self.log_path = log_path
        self.startup_seconds = startup_seconds
        self.base_url = f"http://{host}:{port}"
        self.otlp_traces_endpoint = f"{self.base_url}/v1/traces"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.process.pid

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the last lines of the server's combined stdout/stderr log."""
        return _log_tail(self.log_path, lines)

    def get_json(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """GET `path` (e.g. "/v1/projects") with optional query parameters; return the JSON.

        A query value that is a list or tuple is sent as a repeated parameter. Raises
        `urllib.error.HTTPError` for a non-2xx answer.
        """
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}, doseq=True
            )
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return json.loads(response.read().decode("utf-8"))

    def project_id(self, project: str = "default") -> str | None:
        """Return the GlobalID of project `project` (as used in UI URLs), None if absent."""
        try:
            body = self.get_json(f"/v1/projects/{urllib.parse.quote(project, safe='')}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        project_id: str = body["data"]["id"]
        return project_id

    def trace_url(self, trace_id_hex: str, project: str = "default") -> str:
        """Return the UI URL of a trace: its project's trace list with the trace opened."""
        project_id = self.project_id(project)
        if project_id is None:
            return f"{self.base_url}/redirects/traces/{trace_id_hex}"
        return f"{self.base_url}/projects/{project_id}/traces/{trace_id_hex}"

    def fetch_spans(self, trace_id_hex: str, project: str = "default") -> list[dict[str, Any]]:
        """Return every span of one trace stored so far (all pages), oldest start first.

        An unknown project (no span has reached it yet) gives an empty list.
        """
        spans: list[dict[str, Any]] = []
        cursor: str | None = None
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        while True:
            query = {"trace_id": trace_id_hex, "limit": 1000, "cursor": cursor}
            try:
                body = self.get_json(path, query)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    return []
                raise
            for span in body["data"]:
                span["span_id"] = span["context"]["span_id"]
                span["trace_id"] = span["context"]["trace_id"]
                spans.append(span)
            cursor = body.get("next_cursor")
            if not cursor:
                break
        spans.sort(key=lambda span: (_parse_time(span["start_time"]), span["span_id"]))
        return spans

    def spans(
        self,
        trace_id_hex: str,
        project: str = "default",
        expect: int = 1,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll until at least `expect` spans of the trace are stored, then return them all.

        Phoenix inserts received spans in batches, so spans become readable a moment after
        the exporter's request returns. Raises `AssertionError` (listing what was found) when
        fewer than `expect` spans are there after `timeout` seconds. See the module docstring
        for the shape of each span.
        """
        trace_id_hex = trace_id_hex.lower()
        deadline = time.monotonic() + timeout
        spans: list[dict[str, Any]] = []
        while True:
            spans = self.fetch_spans(trace_id_hex, project)
            if len(spans) >= expect:
                return spans
            if self.process.poll() is not None:
                raise PhoenixError(
                    f"Phoenix exited with code {self.process.returncode} while polling:\n"
                    + self.log_tail()
                )
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL_S)
        names = [span["name"] for span in spans]
        raise AssertionError(
            f"Phoenix project {project!r} has {len(spans)} span(s) of trace {trace_id_hex} "
            f"after {timeout:.0f}s, expected at least {expect}: {names}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server: SIGTERM its process, then SIGKILL after `timeout` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def _server_env(host: str, port: int, grpc_port: int, working_dir: Path) -> dict[str, str]:
    """Build the server's environment: inherited (minus OTEL_*/PHOENIX_*) plus our settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV_PREFIXES)}
    env.update(_QUIET_LOCAL_SETTINGS)
    env.update(
        {
            "PHOENIX_HOST": host,
            "PHOENIX_PORT": str(port),
            # Phoenix's OTLP/gRPC listener binds every interface; a free port avoids clashes.
            "PHOENIX_GRPC_PORT": str(grpc_port),
            "PHOENIX_WORKING_DIR": str(working_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _healthy(base_url: str) -> bool:
    """Return True when `GET {base_url}/healthz` answers 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2.0) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _start_once(
    executable: Path, root_dir: Path, attempt: int, timeout: float
) -> tuple[PhoenixServer | None, str]:
    """Start one server on fresh ports; return it when healthy, else (None, reason)."""
    host = "127.0.0.1"
    port = _free_port(host)
    grpc_port = _free_port("0.0.0.0")
    while grpc_port == port:
        grpc_port = _free_port("0.0.0.0")
    working_dir = root_dir / f"working-{attempt}"
    working_dir.mkdir()
    log_path = root_dir / f"phoenix-{attempt}.log"
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(executable), "serve"],
            cwd=root_dir,
            env=_server_env(host, port, grpc_port, working_dir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = PhoenixServer(
        process,
        host=host,
        port=port,
        grpc_port=grpc_port,
        root_dir=root_dir,
        log_path=log_path,
        startup_seconds=0.0,
    )
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None, f"phoenix serve exited with code {process.returncode}"
        if _healthy(server.base_url):
            server.startup_seconds = time.monotonic() - started
            return server, ""
        time.sleep(POLL_INTERVAL_S)
    server.stop()
    return None, f"phoenix serve did not answer {server.base_url}/healthz within {timeout:.0f}s"


def start_phoenix(root_dir: Path, timeout: float | None = None) -> PhoenixServer:
    """Install Phoenix if needed and start a server whose files all live under `root_dir`.

    Retries on fresh ports when a start fails because a port was taken in the meantime.
    Raises `PhoenixError`, including the tail of the server log, when it cannot start.
    """
    if timeout is None:
        timeout = float(os.environ.get(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S))
    executable = ensure_installed()
    reason = ""
    log_path = root_dir / "phoenix-0.log"
    for attempt in range(3):
        server, reason = _start_once(executable, root_dir, attempt, timeout)
        if server is not None:
            return server
        log_path = root_dir / f"phoenix-{attempt}.log"
        tail = _log_tail(log_path).lower()
        if "address already in use" not in tail and "failed to bind" not in tail:
            break
    raise PhoenixError(f"{reason}; last lines of {log_path}:\n{_log_tail(log_path)}")


@pytest.fixture(scope="session")
def phoenix() -> Iterator[PhoenixServer]:
    """A Phoenix server for the whole test session (see the module docstring)."""
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: end-to-end tests against Arize Phoenix are turned off")
    root_dir = Path(tempfile.mkdtemp(prefix="livekit-otel-phoenix-"))
    try:
        server = start_phoenix(root_dir)
    except BaseException:
        shutil.rmtree(root_dir, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(root_dir, ignore_errors=True)
